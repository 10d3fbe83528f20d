"""Incident triage: collectors, the rule table, ranking on the dependency graph, the timeline.

result = triage.run(rb, window_minutes=30)   # collect everything at once, then diagnose
result.findings_table(); result.figure(); result.timeline_table()
"""

from vextrus_nb.triage.context import TriageSettings
from vextrus_nb.triage.model import CollectorReport, Finding, Signal, TimelineEvent
from vextrus_nb.triage.results import TriageResult
from vextrus_nb.triage.rules import load_rules
from vextrus_nb.triage.steps import judge, run, settings_for, triage, validate

__all__ = [
    "CollectorReport",
    "Finding",
    "Signal",
    "TimelineEvent",
    "TriageResult",
    "TriageSettings",
    "judge",
    "load_rules",
    "run",
    "settings_for",
    "triage",
    "validate",
]
