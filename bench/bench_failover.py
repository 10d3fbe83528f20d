"""Write unavailability after a primary dies: from the kill -9 to the first write that commits.

PostgreSQL: the failover procedure (vextrus_nb/ha/postgres_failover.py: promote, repoint PgBouncer, a
write through the same pooler) driven at once, as the runbook drives it; Patroni's defaults on
paper for comparison (the leader key expires after ttl 30 s, noticed within loop_wait 10 s).
Redis: Sentinel's own automatic failover with down-after-milliseconds 1000 (the baseline, as the
sandbox configures it; Sentinel's default is 30000 on paper) against a failover asked for at once
(SENTINEL FAILOVER, as the runbook asks). Both on the same real servers in the same run."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import redis

from bench.common import report

PATRONI_TTL_S, PATRONI_LOOP_S = 30.0, 10.0
SENTINEL_DEFAULT_DOWN_AFTER_S = 30.0


def _postgres_window() -> float:
    from vextrus_nb.ha import postgres_failover
    from vextrus_nb.sandbox.ha_topology import pg_pair
    from vextrus_nb.sandbox.real_servers import LOOPBACK

    with pg_pair() as pair:
        ends = postgres_failover.Endpoints(
            pair.primary.dsn, pair.replica.dsn, pair.pooled_dsn, pair.config, LOOPBACK, pair.replica.port
        )
        pair.primary.kill_hard()
        died = time.monotonic()
        record = postgres_failover.switch(ends, "unplanned", primary_died_at=died)
    assert record.write_unavailable_s is not None
    return record.write_unavailable_s


def _redis_window(asked: bool) -> float:
    """Kill -9 the primary, then (asked) SENTINEL FAILOVER at once, or wait for Sentinel's own;
    until a SET on the primary the Sentinels name commits."""
    import os
    import signal

    from vextrus_nb.ha import sentinel
    from vextrus_nb.sandbox.ha_servers import SENTINEL_SERVICE
    from vextrus_nb.sandbox.ha_topology import redis_set

    with redis_set(Path(tempfile.mkdtemp(prefix="vextrus-bench-sentinel-"))) as group:
        os.kill(group.primary.main.pid, signal.SIGKILL)
        died = time.monotonic()
        if asked:
            sentinel.failover(group.addresses, SENTINEL_SERVICE, timeout_s=60)
        while time.monotonic() - died < 90:
            named = sentinel.view(group.addresses, SENTINEL_SERVICE, timeout_s=0.5).agreed_primary()
            if named and named != f"127.0.0.1:{group.primary_port}":
                host, port = named.rsplit(":", 1)
                try:
                    redis.Redis(host=host, port=int(port), password=group.password, socket_timeout=0.5).set(
                        "bench", "written"
                    )
                    return time.monotonic() - died
                except redis.RedisError:
                    pass
            time.sleep(0.05)
    raise RuntimeError("no write within 90 s")


def main() -> None:
    postgres_s = _postgres_window()
    report(
        "failover_postgres",
        postgres_s,
        PATRONI_TTL_S,
        baseline_is="Patroni's defaults on paper (ttl 30 s; loop_wait 10 s: up to 40 s)",
        patroni_worst_s=PATRONI_TTL_S + PATRONI_LOOP_S,
    )
    asked_s = _redis_window(asked=True)
    automatic_s = _redis_window(asked=False)
    report(
        "failover_redis",
        asked_s,
        automatic_s,
        baseline_is="Sentinel's automatic failover, down-after-milliseconds 1000",
        sentinel_default_down_after_s=SENTINEL_DEFAULT_DOWN_AFTER_S,
    )


if __name__ == "__main__":
    main()
