"""Performance: answers within the latency budget, memory below its ceiling."""

from __future__ import annotations

import asyncio

from vextrus_nb.checks.context import CheckContext, describe_error
from vextrus_nb.checks.model import Finding, Outcome, check

MEMORY_CEILING = 0.80  # of maxmemory


@check(
    "PERF-HEALTH-LATENCY",
    "performance",
    "medium",
    title="Every service answers readiness within the latency budget",
    probes="the latency of every service's /health/ready (the same request SVC-READY reads); "
    "one over the budget in the checklist's first sweep is measured again alone, before any check runs",
    criterion="latency at or below the environment's latency budget (probe.latency_budget_ms), "
    "measured alone",
    remediation="Look for a slow dependency in the service's readiness indicators, event-loop lag "
    "(nodejs_eventloop_lag_seconds) or CPU throttling against its limit.",
)
async def health_latency(ctx: CheckContext) -> Outcome:
    services = ctx.services()
    budget = ctx.latency_budget_ms
    results = await asyncio.gather(*(ctx.probe(s.name, "ready") for s in services))
    findings = [
        Finding(
            r.component,
            f"{r.latency_ms:.0f} ms > {budget:g} ms"
            if r.status != "down" or r.http_status
            else f"{r.detail} (budget {budget:g} ms)",
        )
        for r in results
        if r.latency_ms > budget
    ]
    slowest = max(results, key=lambda r: r.latency_ms, default=None)
    evidence = f"{len(results) - len(findings)} of {len(results)} within {budget:g} ms" + (
        f"; slowest {slowest.component} {slowest.latency_ms:.0f} ms" if slowest else ""
    )
    return Outcome.of(evidence, findings)


@check(
    "PERF-REDIS-MEMORY",
    "performance",
    "high",
    title="Redis memory bounded and below 80% of maxmemory",
    probes="INFO memory: used_memory against maxmemory",
    criterion="maxmemory is set and used_memory < 80% of it",
    remediation="Set maxmemory and an eviction policy for cache data; find big keys "
    "(`redis-cli --bigkeys`); Bull queues that never drain are the usual suspect.",
)
async def redis_memory(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("redis") or ctx.env.redis is None:
        return Outcome.not_applicable("the environment runs no Redis")
    client = ctx.redis_client()
    try:
        info = await ctx.bounded(client.info("memory"))
    except Exception as exc:
        return Outcome.of(
            "could not read INFO memory", [Finding("redis", describe_error(exc, ctx.timeout_s))]
        )
    finally:
        await client.aclose()
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    if limit == 0:
        evidence = f"used {used / 2**20:.1f} MiB, maxmemory not set"
        return Outcome.of(
            evidence, [Finding("redis", "maxmemory is not set: Redis can take the host's memory")]
        )
    ratio = used / limit
    evidence = f"used {used / 2**20:.1f} MiB of maxmemory {limit / 2**20:.0f} MiB ({ratio:.0%})"
    return Outcome.of(evidence, [Finding("redis", evidence)] if ratio >= MEMORY_CEILING else [])
