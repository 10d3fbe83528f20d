"""Health of every component on all its health paths, read as symptoms.

A refused connection is `down`; a connection that never answers is `hung`;
a red readiness that names dependency indicators is `dependency_down` and
points at those dependencies; a red answer naming only its own checks is
`unhealthy`; a red liveness is `liveness_failing` (an orchestrator would
restart it); an answer over the latency budget is `slow`.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

from vextrus_nb import probes
from vextrus_nb.config import Inventory
from vextrus_nb.probe_targets import probe_targets
from vextrus_nb.probes import ProbeResult
from vextrus_nb.triage.context import TriageContext
from vextrus_nb.triage.model import CollectorReport, Signal

# Terminus indicator keys that are not named after the component they check.
INDICATOR_COMPONENTS = {"database": "postgres", "db": "postgres", "typeorm": "postgres", "cache": "redis"}


async def collect_health(ctx: TriageContext) -> CollectorReport:
    targets = probe_targets(ctx.env, ctx.inventory, ctx.components(), all_health_paths=True)
    for target in targets:
        if target.password:
            ctx.scrubber.add([target.password])

    async def one(target: probes.ProbeTarget) -> ProbeResult:
        async with ctx.gate:
            return await probes.probe(target, ctx.settings.timeout_s, ctx.client)

    results = list(await asyncio.gather(*(one(t) for t in targets)))
    signals = health_signals(results, ctx.inventory, ctx.settings.latency_budget_ms)
    up = sum(r.status == "up" for r in results)
    return CollectorReport(
        "health",
        detail=f"{len(results)} health endpoints of {len({r.component for r in results})} "
        f"components, {up} up",
        signals=signals,
        data={"results": results},
    )


def implicated(result: ProbeResult, inventory: Inventory) -> tuple[list[str], list[str]]:
    """The failing indicators of a Terminus body, split into dependencies (components) and own checks."""
    errors = (result.body or {}).get("error") or {}
    dependencies: list[str] = []
    own: list[str] = []
    for key in errors:
        name = INDICATOR_COMPONENTS.get(key, key)
        (dependencies if name in inventory.components else own).append(
            name if name in inventory.components else key
        )
    return dependencies, own


def health_signals(
    results: list[ProbeResult], inventory: Inventory, latency_budget_ms: float
) -> list[Signal]:
    by_component: dict[str, list[ProbeResult]] = defaultdict(list)
    for result in results:
        by_component[result.component].append(result)
    signals: list[Signal] = []
    for name, answers in by_component.items():
        signals += _component_signals(name, answers, inventory, latency_budget_ms)
    return signals


def _evidence(result: ProbeResult) -> str:
    return f"{result.check} ({result.address}): {result.detail}"


def _component_signals(
    name: str, answers: list[ProbeResult], inventory: Inventory, latency_budget_ms: float
) -> list[Signal]:
    def signal(
        symptom: str,
        evidence: list[ProbeResult],
        subject: str = "",
        implicates: tuple[str, ...] = (),
        magnitude: float = 0.0,
    ) -> Signal:
        text = "; ".join(_evidence(r) for r in evidence)
        return Signal(symptom, name, text, "health", subject, implicates, magnitude=magnitude)

    failed = [r for r in answers if r.status == "down"]
    timed_out = [r for r in failed if r.timed_out]
    unanswered = [r for r in failed if r.http_status is None and not r.timed_out]
    if failed and len(unanswered) == len(answers):
        return [signal("down", unanswered)]
    if timed_out:
        return [signal("hung", timed_out, magnitude=max(r.latency_ms for r in timed_out))]
    signals: list[Signal] = []
    dependencies: set[str] = set()
    own: set[str] = set()
    red = [r for r in failed if r.check != "live"]
    for result in red:
        deps, checks = implicated(result, inventory)
        dependencies.update(deps)
        own.update(checks)
    if dependencies:
        signals.append(
            signal(
                "dependency_down",
                red,
                implicates=tuple(sorted(dependencies)),
                subject=", ".join(sorted(dependencies)),
                magnitude=len(dependencies),
            )
        )
    elif red or unanswered:
        signals.append(
            signal("unhealthy", red or unanswered, subject=", ".join(sorted(own)) or "its health check")
        )
    live = [r for r in failed if r.check == "live"]
    if live:
        deps, _ = implicated(live[0], inventory)
        signals.append(signal("liveness_failing", live, implicates=tuple(sorted(deps))))
    slow = [r for r in answers if r.status != "down" and r.latency_ms > latency_budget_ms]
    if slow:
        worst = max(r.latency_ms for r in slow)
        signals.append(signal("slow", slow, subject=f"{worst:.0f} ms", magnitude=worst))
    degraded = [r for r in answers if r.status == "degraded" and r.latency_ms <= latency_budget_ms]
    if degraded:
        signals.append(signal("degraded", degraded))
    return signals
