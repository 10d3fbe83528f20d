"""The steps of the verify/checklist runbook: run the checks, judge, export.

Verdict: the run fails when the readiness score is below the threshold or any
check of severity critical failed (or could not run); every other failed check
lowers the score and is listed, with its remediation, but does not fail the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vextrus_nb import checks
from vextrus_nb.checks import ChecklistResult
from vextrus_nb.errors import ConfigError, RunRefused
from vextrus_nb.probes import check_probe_settings

if TYPE_CHECKING:
    from vextrus_nb.config import Environment
    from vextrus_nb.run.session import Runbook

REPORT_FORMATS = {"junit": ".junit.xml", "json": ".checklist.json"}


def choose(only: str) -> list[checks.Check]:
    """Checks named by a comma-separated list of ids and/or categories; empty means all."""
    names = [n.strip() for n in only.split(",") if n.strip()]
    ids = [n for n in names if n.upper() == n]
    return checks.select(ids=ids, categories=[n for n in names if n not in ids])


def validate(env: Environment, parameters: dict[str, Any]) -> None:
    """Refuse bad parameters before anything is measured (the runner exits 2, before a kernel)."""
    report_format = parameters.get("report_format", "")
    if report_format and report_format not in REPORT_FORMATS:
        raise RunRefused(
            f"report_format must be one of {', '.join(REPORT_FORMATS)} or empty, not {report_format!r}"
        )
    threshold = parameters.get("threshold", checks.DEFAULT_THRESHOLD)
    if not 0 <= threshold <= 100:
        raise RunRefused(f"threshold must be between 0 and 100, not {threshold:g}")
    check_probe_settings(parameters)
    try:
        choose(parameters.get("only", ""))
    except ConfigError as exc:
        raise RunRefused(str(exc)) from None


def run(rb: Runbook) -> ChecklistResult:
    """Measure every chosen check against the live environment. Read-only."""
    chosen = rb.parameters
    return checks.run_checklist(
        rb.env,
        rb.inventory,
        choose(chosen.get("only", "")),
        timeout_s=chosen.get("timeout_s"),
        concurrency=chosen.get("concurrency"),
        latency_budget_ms=chosen.get("latency_budget_ms"),
        scrubber=rb.scrubber,
    )


def judge(rb: Runbook, result: ChecklistResult) -> None:
    """Score and failed check ids into the run record; fail below threshold or on a critical failure."""
    threshold = rb.parameters.get("threshold", checks.DEFAULT_THRESHOLD)
    rb.summary.update(result.summary(threshold))
    if result.score < threshold:
        rb.fail(f"readiness score {result.score:.1f} is below the threshold {threshold:g}")
    critical = result.critical_failures()
    if critical:
        rb.fail(f"critical check(s) failed: {', '.join(critical)}")


def export(rb: Runbook, result: ChecklistResult) -> Path | None:
    """Write the JUnit XML / JSON file beside the output notebook, and name it in the run record."""
    report_format = rb.parameters.get("report_format", "")
    if not report_format:
        return None
    threshold = rb.parameters.get("threshold", checks.DEFAULT_THRESHOLD)
    path = result.export(rb.artifact_path(REPORT_FORMATS[report_format]), report_format, threshold)
    rb.add_artifact(path)
    return path


# -- Evidence: what the report and the metrics read of this runbook's runs ---------------------
# Plain data (evidence/declared.py): read from this source without importing the module, so it
# names only the declaration types (as declared.X) and literals.
from vextrus_nb.evidence import declared  # noqa: E402

EVIDENCE = declared.Evidence(
    figures=(
        declared.Figure("score", "readiness score", "of 100"),
        declared.Figure("failed_checks", "failed checks"),
        declared.Figure("critical_failed", "critical checks failed"),
    ),
    trends=(
        declared.Trend(
            "Production readiness score",
            plots=(declared.Plot("score"),),
            per_environment=False,
            sealed_only=False,
            line_title="figure",
        ),
    ),
    kinds=(
        declared.Kind(
            "checklist",
            figure="score",
            gauges=(
                declared.Gauge(
                    "vextrus_readiness_score",
                    "The newest sealed readiness checklist's score (0-100)",
                    "figure",
                ),
                declared.Gauge(
                    "vextrus_readiness_last_run_timestamp_seconds",
                    "When the newest scored readiness checklist ended",
                    "ended_at",
                ),
            ),
        ),
    ),
)
