"""The verification checklist: checks as data, measured against the live
environment and its deployment files, scored with the reference weights.

    result = checks.run_checklist(env, inventory)
    result.score, result.table(), result.figure(), result.to_junit()
"""

from vextrus_nb.checks.execution import catalogue, run_checklist, select
from vextrus_nb.checks.model import (
    CATEGORY_TITLES,
    CATEGORY_WEIGHTS,
    SEVERITY_WEIGHTS,
    Check,
    CheckResult,
    Finding,
    Outcome,
)
from vextrus_nb.checks.results import DEFAULT_THRESHOLD, ChecklistResult

__all__ = [
    "CATEGORY_TITLES",
    "CATEGORY_WEIGHTS",
    "DEFAULT_THRESHOLD",
    "SEVERITY_WEIGHTS",
    "Check",
    "CheckResult",
    "ChecklistResult",
    "Finding",
    "Outcome",
    "catalogue",
    "run_checklist",
    "select",
]
