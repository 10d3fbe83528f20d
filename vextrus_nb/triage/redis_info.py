"""Inside Redis, from INFO alone (read-only): memory against maxmemory and the
eviction policy, evicted keys, connected, blocked and rejected clients, OOM
errors, and whether the last background save worked."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from vextrus_nb.triage.context import TriageContext
from vextrus_nb.triage.model import CollectorReport, Signal

SHOWN = (
    "redis_version",
    "used_memory_human",
    "maxmemory_human",
    "maxmemory_policy",
    "evicted_keys",
    "connected_clients",
    "blocked_clients",
    "rejected_connections",
    "errorstat_OOM",
    "rdb_last_bgsave_status",
)


def _mib(value: int) -> str:
    return f"{value / 2**20:.1f} MiB"


async def collect_redis(ctx: TriageContext) -> CollectorReport:
    login = ctx.env.redis
    if login is None or "redis" not in {c.name for c in ctx.components()}:
        return CollectorReport("redis", "skipped", detail="the environment has no Redis login")
    host, port = ctx.where["redis"]
    client = aioredis.Redis(
        host=host,
        port=port,
        username=login.user,
        password=ctx.secret(login.password_secret),
        socket_timeout=ctx.settings.timeout_s,
        socket_connect_timeout=ctx.settings.timeout_s,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        info: dict[str, Any] = await ctx.bounded(client.info("all"))
    finally:
        await client.aclose()
    signals = redis_signals(info, ctx.settings.redis_memory_ratio)
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    return CollectorReport(
        "redis",
        detail=f"{_mib(used)} used of {_mib(limit) if limit else 'no limit'}, "
        f"{info.get('connected_clients')} clients",
        signals=signals,
        data={"info": {key: _shown(info, key) for key in SHOWN}},
    )


def _shown(info: dict[str, Any], key: str) -> Any:
    value = info.get(key, "")
    if isinstance(value, dict):  # errorstat_OOM: {'count': 3}
        return value.get("count", value)
    return value


def redis_signals(info: dict[str, Any], memory_ratio: float) -> list[Signal]:
    signals: list[Signal] = []
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    policy = str(info.get("maxmemory_policy", ""))
    oom_errors = _shown(info, "errorstat_OOM") or 0
    if limit and used >= memory_ratio * limit:
        usage = f"{_mib(used)} of {_mib(limit)}, policy {policy}"
        if policy == "noeviction":
            signals.append(
                Signal(
                    "redis_oom",
                    "redis",
                    f"used_memory {_mib(used)} >= {memory_ratio:.0%} of maxmemory {_mib(limit)} "
                    f"with maxmemory-policy noeviction; OOM errors so far: {oom_errors}",
                    "redis",
                    subject=usage,
                    magnitude=used / limit,
                )
            )
        elif int(info.get("evicted_keys", 0)):
            signals.append(
                Signal(
                    "redis_evicting",
                    "redis",
                    f"{info['evicted_keys']} keys evicted; used_memory {usage}",
                    "redis",
                    subject=f"{info['evicted_keys']} keys",
                    magnitude=int(info["evicted_keys"]),
                )
            )
    if int(info.get("rejected_connections", 0)):
        signals.append(
            Signal(
                "redis_rejected_connections",
                "redis",
                f"rejected_connections {info['rejected_connections']} with {info.get('connected_clients')} "
                f"clients connected (maxclients {info.get('maxclients', '?')})",
                "redis",
                subject=str(info["rejected_connections"]),
                magnitude=int(info["rejected_connections"]),
            )
        )
    if str(info.get("rdb_last_bgsave_status", "ok")) != "ok":
        signals.append(
            Signal(
                "redis_bgsave_failed",
                "redis",
                f"rdb_last_bgsave_status {info['rdb_last_bgsave_status']}, "
                f"{info.get('rdb_changes_since_last_save', '?')} changes not saved",
                "redis",
            )
        )
    return signals
