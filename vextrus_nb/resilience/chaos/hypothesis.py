"""The steady-state probes: each answers held or not, with a detail that says why, and never
raises (a probe's failure is a finding). Dependencies are reached where the context says they
are, so a probe of a dependency behind a fault proxy goes through it."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from vextrus_nb.probes import describe_error, sweep
from vextrus_nb.resilience.chaos.context import ChaosContext
from vextrus_nb.resilience.chaos.experiment import SERVICES, HealthProbe, LatencyProbe, Probe, WriteProbe

if TYPE_CHECKING:
    import redis

REDIS_PROBE_KEY = "vextrus:chaos:probe"
POSTGRES_PROBE_TABLE = "vextrus_chaos_probe"


@dataclass(frozen=True)
class ProbeCheck:
    probe: str
    held: bool
    detail: str
    seconds: float


def check(probe: Probe, ctx: ChaosContext) -> ProbeCheck:
    started = time.perf_counter()
    try:
        if isinstance(probe, HealthProbe):
            held, detail = _health(probe, ctx)
        elif isinstance(probe, LatencyProbe):
            held, detail = _latency(probe, ctx)
        else:
            held, detail = _write(probe, ctx)
    except Exception as exc:  # every failure of a probe is a finding, not a crash
        held, detail = False, describe_error(exc, ctx.timeout_s)
    return ProbeCheck(probe.name, held, detail, round(time.perf_counter() - started, 3))


def check_all(probes: list[Probe], ctx: ChaosContext) -> list[ProbeCheck]:
    return [check(p, ctx) for p in probes]


def _health(probe: HealthProbe, ctx: ChaosContext) -> tuple[bool, str]:
    from vextrus_nb.probe_targets import probe_targets

    names = [n for c in probe.components for n in (ctx.service_names() if c == SERVICES else [c])]
    targets = [
        dataclasses.replace(t, host=ctx.where[t.component][0], port=ctx.where[t.component][1])
        for t in probe_targets(ctx.env, ctx.inventory, [ctx.inventory.get(n) for n in names])
    ]
    results = sweep(targets, timeout=ctx.timeout_s)
    down = [f"{r.component} ({r.detail})" for r in results if not r.ok]
    if down:
        return False, f"{len(down)} of {len(results)} not up: {'; '.join(down[:5])}"
    return True, f"{len(results)} up"


def _latency(probe: LatencyProbe, ctx: ChaosContext) -> tuple[bool, str]:
    host, port = ctx.where[probe.component]
    url = f"http://{host}:{port}{probe.path}"
    durations, failed = [], 0
    with httpx.Client(timeout=ctx.timeout_s) as client:
        for _ in range(probe.requests):
            started = time.perf_counter()
            try:
                failed += not client.get(url).is_success
            except httpx.HTTPError:
                failed += 1
            durations.append((time.perf_counter() - started) * 1000)
    p95 = sorted(durations)[max(0, round(0.95 * len(durations)) - 1)]
    detail = f"p95 {p95:.1f} ms over {probe.requests} requests (tolerance {probe.p95_ms:g} ms)"
    if failed:
        return False, f"{failed} of {probe.requests} requests failed; {detail}"
    return p95 < probe.p95_ms, detail


def _write(probe: WriteProbe, ctx: ChaosContext) -> tuple[bool, str]:
    started = time.perf_counter()
    if probe.datastore == "postgres":
        _postgres_write(ctx)
    else:
        _redis_write(ctx)
    ms = (time.perf_counter() - started) * 1000
    if probe.max_ms is not None and ms > probe.max_ms:
        return False, f"committed in {ms:.0f} ms, over the tolerance of {probe.max_ms:g} ms"
    return True, f"committed in {ms:.0f} ms"


def _postgres_write(ctx: ChaosContext) -> None:
    import psycopg

    login = ctx.env.postgres
    if login is None:
        raise LookupError(f"environment '{ctx.env.name}' gives no postgres login")
    host, port = ctx.where["postgres"]
    with psycopg.connect(
        host=host,
        port=port,
        dbname="postgres",
        user=login.user,
        password=ctx.secret(login.password_secret),
        connect_timeout=max(1, int(ctx.timeout_s)),
        autocommit=True,
        options=f"-c statement_timeout={int(ctx.timeout_s * 1000)}",
    ) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {POSTGRES_PROBE_TABLE} (at timestamptz NOT NULL)")
        conn.execute(f"INSERT INTO {POSTGRES_PROBE_TABLE} VALUES (now())")
        # Only the newest rows are kept: the probe runs every poll of every experiment.
        conn.execute(f"DELETE FROM {POSTGRES_PROBE_TABLE} WHERE at < now() - interval '1 hour'")


def redis_client(ctx: ChaosContext) -> redis.Redis:
    """A client that tries once: a probe (or a fault) sees the datastore as it is, not after retries."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    login = ctx.env.redis
    if login is None:
        raise LookupError(f"environment '{ctx.env.name}' gives no redis login")
    host, port = ctx.where["redis"]
    return redis.Redis(
        host=host,
        port=port,
        username=login.user,
        password=ctx.secret(login.password_secret),
        socket_timeout=ctx.timeout_s,
        socket_connect_timeout=ctx.timeout_s,
        retry=Retry(NoBackoff(), 0),
    )


def _redis_write(ctx: ChaosContext) -> None:
    client = redis_client(ctx)
    try:
        client.set(REDIS_PROBE_KEY, str(time.time()), ex=600)
    finally:
        client.close()
