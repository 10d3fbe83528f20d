"""The smoke sweep: probe every component of an environment once.

Verdict: the run fails when any component of criticality `critical` is down;
anything else down or degraded is reported as a warning.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vextrus_nb.display import Shown, table
from vextrus_nb.figures import Figure, bars
from vextrus_nb.probe_targets import probe_targets
from vextrus_nb.probes import ProbeResult, check_probe_settings, sweep

if TYPE_CHECKING:
    from vextrus_nb.config import Environment
    from vextrus_nb.run.session import Runbook

STATUS_COLOURS = {"up": "#1a7f37", "degraded": "#bf8700", "down": "#cf222e"}
FAILING_CRITICALITY = ("critical",)
COLUMNS = ["component", "check", "kind", "status", "latency_ms", "criticality", "detail", "address"]
# What the latency figure measures: every probe is in flight at once, so a round trip includes
# waiting its turn in the probing process; one over the budget is measured again alone
# (probes.measured_alone) and that figure is the one shown and judged.
LATENCY_AXIS = "probe round trip (ms): all at once; over budget, measured alone"


@dataclass
class SmokeResult:
    results: list[ProbeResult]
    seconds: float

    @property
    def critical_down(self) -> list[str]:
        return [
            r.component for r in self.results if r.status == "down" and r.criticality in FAILING_CRITICALITY
        ]

    @property
    def other_problems(self) -> list[str]:
        return [
            r.component for r in self.results if r.status != "up" and r.component not in self.critical_down
        ]

    def table(self) -> Shown:
        """Problems first, then by component; status cells coloured."""
        order = {"down": 0, "degraded": 1, "up": 2}
        rows = sorted((r.as_row() for r in self.results), key=lambda r: (order[r["status"]], r["component"]))
        return table(
            rows,
            COLUMNS,
            {"status": lambda v: f"color: white; background-color: {STATUS_COLOURS.get(v, '#57606a')}"},
        )

    def figure(self) -> Figure:
        rows = [r.as_row() for r in self.results]
        return bars(
            rows,
            x="component",
            y="latency_ms",
            colour="status",
            colours=STATUS_COLOURS,
            hover=["check", "detail", "criticality"],
            title="Component health and probe latency",
            y_title=LATENCY_AXIS,
            tick_angle=-45,
        )

    def summary(self) -> dict[str, Any]:
        counts = Counter(r.status for r in self.results)
        return {
            "components": len({r.component for r in self.results}),
            "up": counts.get("up", 0),
            "degraded": counts.get("degraded", 0),
            "down": counts.get("down", 0),
            "critical_down": self.critical_down,
            "sweep_seconds": round(self.seconds, 2),
        }


def validate(env: Environment, parameters: dict[str, Any]) -> None:
    """Refuse bad parameters before anything is probed (the runner exits 2, before a kernel)."""
    check_probe_settings(parameters)


def run_sweep(rb: Runbook) -> SmokeResult:
    """Probe every component in scope (dev tools excluded). Read-only."""
    import time

    settings = rb.env.probe
    timeout_s, concurrency = rb.parameters.get("timeout_s"), rb.parameters.get("concurrency")
    targets = probe_targets(rb.env, rb.inventory)
    for target in targets:
        if target.password:
            rb.scrubber.add([target.password])
    started = time.perf_counter()
    results = sweep(
        targets,
        timeout=settings.timeout_s if timeout_s is None else timeout_s,
        concurrency=settings.concurrency if concurrency is None else concurrency,
        latency_budget_ms=settings.latency_budget_ms,
    )
    return SmokeResult(results, time.perf_counter() - started)


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
