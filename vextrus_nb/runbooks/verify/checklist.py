"""The steps of the verify/checklist runbook: run the checks, judge, export.

Verdict: the run fails when the readiness score is below the threshold or any
check of severity critical failed (or could not run); every other failed check
lowers the score and is listed, with its remediation, but does not fail the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vextrus_nb import checks
from vextrus_nb.checks import ChecklistResult
from vextrus_nb.errors import ConfigError, RunRefused

if TYPE_CHECKING:
    from vextrus_nb.runbook import Runbook

REPORT_FORMATS = {"junit": ".junit.xml", "json": ".checklist.json"}


def choose(only: str) -> list[checks.Check]:
    """Checks named by a comma-separated list of ids and/or categories; empty means all."""
    names = [n.strip() for n in only.split(",") if n.strip()]
    ids = [n for n in names if n.upper() == n]
    return checks.select(ids=ids, categories=[n for n in names if n not in ids])


def validate(report_format: str, threshold: float, only: str) -> None:
    """Refuse bad parameters before anything is measured (the runner exits 2)."""
    if report_format and report_format not in REPORT_FORMATS:
        raise RunRefused(
            f"report_format must be one of {', '.join(REPORT_FORMATS)} or empty, not {report_format!r}"
        )
    if not 0 <= threshold <= 100:
        raise RunRefused(f"threshold must be between 0 and 100, not {threshold:g}")
    try:
        choose(only)
    except ConfigError as exc:
        raise RunRefused(str(exc)) from None


def run(
    rb: Runbook,
    only: str = "",
    timeout_s: float | None = None,
    concurrency: int | None = None,
    latency_budget_ms: float | None = None,
) -> ChecklistResult:
    """Measure every chosen check against the live environment. Read-only."""
    return checks.run_checklist(
        rb.env,
        rb.inventory,
        choose(only),
        timeout_s=timeout_s,
        concurrency=concurrency,
        latency_budget_ms=latency_budget_ms,
        scrubber=rb.scrubber,
    )


def judge(rb: Runbook, result: ChecklistResult, threshold: float = checks.DEFAULT_THRESHOLD) -> None:
    """Score and failed check ids into the run record; fail below threshold or on a critical failure."""
    rb.summary.update(result.summary(threshold))
    if result.score < threshold:
        rb.fail(f"readiness score {result.score:.1f} is below the threshold {threshold:g}")
    critical = result.critical_failures()
    if critical:
        rb.fail(f"critical check(s) failed: {', '.join(critical)}")


def export(rb: Runbook, result: ChecklistResult, report_format: str, threshold: float) -> Path | None:
    """Write the JUnit XML / JSON file beside the output notebook, and name it in the run record."""
    if not report_format:
        return None
    path = result.export(rb.artifact_path(REPORT_FORMATS[report_format]), report_format, threshold)
    rb.add_artifact(path)
    return path
