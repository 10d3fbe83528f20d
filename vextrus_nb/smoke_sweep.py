"""The smoke sweep: every component of an environment probed once, and what that found.

An engine beside `probes` and `probe_targets`, taking an environment rather than a run, so that
verify/smoke sweeps the environment it runs against and dr/platform-drill sweeps the second
platform it restored, with the same probes and the same verdict.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from vextrus_nb.config import Environment, Inventory
from vextrus_nb.display import Shown, table
from vextrus_nb.evidence import scrub
from vextrus_nb.figures import Figure, bars
from vextrus_nb.probe_targets import probe_targets
from vextrus_nb.probes import ProbeResult, sweep

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


def sweep_environment(
    env: Environment,
    inventory: Inventory,
    timeout_s: float | None = None,
    concurrency: int | None = None,
    scrubber: scrub.Scrubber | None = None,
) -> SmokeResult:
    """Probe every component in scope (dev tools excluded), each once, all at once. Read-only.
    None leaves the environment's probe setting; the protocol logins the probes use are added to
    `scrubber`, so no detail a server echoes shows them."""
    settings = env.probe
    targets = probe_targets(env, inventory)
    if scrubber is not None:
        scrubber.add([t.password for t in targets if t.password])
    started = time.perf_counter()
    results = sweep(
        targets,
        timeout=settings.timeout_s if timeout_s is None else timeout_s,
        concurrency=settings.concurrency if concurrency is None else concurrency,
        latency_budget_ms=settings.latency_budget_ms,
    )
    return SmokeResult(results, time.perf_counter() - started)
