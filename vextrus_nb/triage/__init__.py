"""Incident triage: collectors, the rule table, ranking on the dependency graph, the timeline.

result = triage.triage(env, inventory, settings)   # collect everything at once, then diagnose
result.findings_table(); result.figure(); result.timeline_table()

The incident/triage runbook's steps are in vextrus_nb/runbooks/incident/triage.py.
"""

from vextrus_nb.triage.context import TriageSettings
from vextrus_nb.triage.investigate import settings_for, triage
from vextrus_nb.triage.model import CollectorReport, Finding, Signal, TimelineEvent
from vextrus_nb.triage.results import TriageResult
from vextrus_nb.triage.rules import load_rules

__all__ = [
    "CollectorReport",
    "Finding",
    "Signal",
    "TimelineEvent",
    "TriageResult",
    "TriageSettings",
    "load_rules",
    "settings_for",
    "triage",
]
