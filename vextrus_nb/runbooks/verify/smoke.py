"""The steps of notebooks/verify/smoke.ipynb: the smoke sweep (vextrus_nb/smoke_sweep.py) against
the run's environment, judged.

Verdict: the run fails when any component of criticality `critical` is down;
anything else down or degraded is reported as a warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vextrus_nb.probes import check_probe_settings
from vextrus_nb.smoke_sweep import SmokeResult, sweep_environment

if TYPE_CHECKING:
    from vextrus_nb.config import Environment
    from vextrus_nb.run.session import Runbook


def validate(env: Environment, parameters: dict[str, Any]) -> None:
    """Refuse bad parameters before anything is probed (the runner exits 2, before a kernel)."""
    check_probe_settings(parameters)


def run_sweep(rb: Runbook) -> SmokeResult:
    """Probe every component in scope (dev tools excluded). Read-only."""
    return sweep_environment(
        rb.env,
        rb.inventory,
        timeout_s=rb.parameters.get("timeout_s"),
        concurrency=rb.parameters.get("concurrency"),
        scrubber=rb.scrubber,
    )


def judge(rb: Runbook, result: SmokeResult) -> None:
    """Put the figures in the run record and register the failures."""
    rb.summary.update(result.summary())
    if result.critical_down:
        rb.fail(f"critical component(s) down: {', '.join(result.critical_down)}")


# -- Evidence: what the report and the metrics read of this runbook's runs ---------------------
# Plain data (evidence/declared.py): read from this source without importing the module, so it
# names only the declaration types (as declared.X) and literals.
from vextrus_nb.evidence import declared  # noqa: E402

EVIDENCE = declared.Evidence(
    figures=(
        declared.Figure("critical_down", "critical components down"),
        declared.Figure("down"),
        declared.Figure("degraded"),
        declared.Figure("up"),
    ),
)
