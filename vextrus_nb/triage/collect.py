"""Run every collector at once, each within its own deadline, so a hanging
component costs one timeout, not one per thing that asks it.

`one_after_another=True` is the baseline the bench compares with: the same
collectors awaited in turn, each probing one target at a time, as a script
checking things in order would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from vextrus_nb import probes
from vextrus_nb.asyncio_bridge import run_sync
from vextrus_nb.config import Environment, Inventory
from vextrus_nb.evidence import scrub
from vextrus_nb.live_context import MIN_POOL, http_client
from vextrus_nb.probes import describe_error
from vextrus_nb.triage.context import TriageContext, TriageSettings
from vextrus_nb.triage.ha import collect_replication, collect_sentinels
from vextrus_nb.triage.health import collect_health
from vextrus_nb.triage.metrics import collect_kafka_lag, collect_metrics
from vextrus_nb.triage.model import CollectorReport
from vextrus_nb.triage.platform import collect_driver, collect_ledger, collect_logs
from vextrus_nb.triage.postgres import collect_postgres
from vextrus_nb.triage.redis_info import collect_redis

# A collector makes a few rounds of requests (a login, then queries); past this it is reported, not awaited.
ROUNDS_PER_COLLECTOR = 2


async def _timed(name: str, work: Awaitable[CollectorReport], deadline_s: float | None) -> CollectorReport:
    started = time.perf_counter()
    try:
        report = await asyncio.wait_for(work, deadline_s)
    except Exception as exc:  # a collector that fails is a gap in the evidence, shown as such
        report = CollectorReport(name, "error", detail=describe_error(exc, deadline_s))
    report.seconds = round(time.perf_counter() - started, 3)
    return report


async def collect_async(ctx: TriageContext, one_after_another: bool = False) -> list[CollectorReport]:
    deadline = ROUNDS_PER_COLLECTOR * ctx.settings.timeout_s + 1.0
    # The protocol clients (temporalio, boto3, librdkafka, pika) imported before any probe's clock
    # starts: an import holds the loop every collector runs on (probes.preload_clients).
    probes.preload_clients({c.probe for c in ctx.components()} | {"kafka"})
    simple: list[tuple[str, Callable[[TriageContext], Awaitable[CollectorReport]]]] = [
        ("health", collect_health),
        ("driver", collect_driver),
        ("postgres", collect_postgres),
        ("redis", collect_redis),
        ("metrics", collect_metrics),
        ("kafka lag", collect_kafka_lag),
        ("ledger", collect_ledger),
    ]
    if ctx.env.ha is not None:  # without `ha:` there is no replica nor Sentinel to ask: no collector
        simple[4:4] = [("replication", collect_replication), ("sentinels", collect_sentinels)]
    if one_after_another:  # a script in order waits for each answer in turn: no overall deadline
        reports = [await _timed(name, collector(ctx), None) for name, collector in simple]
        health = asyncio.ensure_future(asyncio.sleep(0, reports[0]))
        reports.append(await _timed("logs", collect_logs(ctx, health), None))
        return reports
    tasks = {
        name: asyncio.ensure_future(_timed(name, collector(ctx), deadline)) for name, collector in simple
    }
    # Logs follow health (only unhealthy components' logs are read), within the same overall deadline.
    tasks["logs"] = asyncio.ensure_future(_timed("logs", collect_logs(ctx, tasks["health"]), 2 * deadline))
    return list(await asyncio.gather(*tasks.values()))


def collect(
    env: Environment,
    inventory: Inventory,
    settings: TriageSettings,
    scrubber: scrub.Scrubber | None = None,
    concurrency: int = MIN_POOL,
    one_after_another: bool = False,
) -> tuple[list[CollectorReport], float, datetime]:
    """All collectors over the environment; returns the reports, the seconds taken and when it ran."""
    now = datetime.now(UTC)

    async def main() -> list[CollectorReport]:
        async with http_client(concurrency) as client:
            ctx = TriageContext.open(
                env,
                inventory,
                settings,
                client,
                1 if one_after_another else max(concurrency, MIN_POOL),
                scrubber or scrub.Scrubber(),
                now,
            )
            return await collect_async(ctx, one_after_another)

    started = time.perf_counter()
    reports = run_sync(main())
    return reports, time.perf_counter() - started, now
