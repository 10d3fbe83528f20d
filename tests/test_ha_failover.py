"""The PostgreSQL failover procedure (vextrus_nb/ha/postgres_failover.py) on a real primary, replica and
PgBouncer: refused when it would be wrong (the primary still answers an unplanned failover, the
replica lags beyond the bound or its replay is paused), a planned switchover losing nothing, then
an unplanned one after kill -9, the write-unavailability window measured from the death to the
first write through the same pooler, and each old primary rewound and rejoined as a replica."""

from __future__ import annotations

import time

import psycopg
import pytest

from vextrus_nb.ha import pgbouncer, postgres, postgres_failover
from vextrus_nb.sandbox import ha_servers
from vextrus_nb.sandbox.ha_topology import PgPair
from vextrus_nb.sandbox.real_servers import LOOPBACK

from .helpers import wait_until

BOUND = 16 * 2**20


def endpoints(pair: PgPair) -> postgres_failover.Endpoints:
    return postgres_failover.Endpoints(
        pair.primary.dsn, pair.replica.dsn, pair.pooled_dsn, pair.config, LOOPBACK, pair.replica.port
    )


def _write(dsn: str) -> int:
    with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as conn:
        row = conn.execute("INSERT INTO heartbeat DEFAULT VALUES RETURNING id").fetchone()
    assert row is not None
    return int(row[0])


def _ids(dsn: str) -> set[int]:
    with psycopg.connect(dsn, connect_timeout=2) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM heartbeat")}


def _streams(primary_dsn: str) -> bool:
    return bool(postgres.primary_view(primary_dsn).streaming())


def test_preflight_refuses_an_unplanned_failover_while_the_primary_answers(pair: PgPair) -> None:
    planned = postgres_failover.preflight(endpoints(pair), "planned", BOUND, 30)
    assert planned.ok, planned.refusals
    unplanned = postgres_failover.preflight(endpoints(pair), "unplanned", BOUND, 30)
    assert not unplanned.ok and "still answers" in unplanned.refusals[0]


def test_preflight_refuses_a_lagging_or_paused_replica_naming_the_bound(pair: PgPair) -> None:
    postgres.set_replay_paused(pair.replica.dsn, True)
    try:
        _write(pair.primary.dsn)
        wait_until(lambda: postgres.primary_view(pair.primary.dsn).standbys[0].lag_bytes > 0, "lag", 10)
        refused = postgres_failover.preflight(endpoints(pair), "planned", 0, 30)
        assert any("beyond the bound of 0" in r for r in refused.refusals), refused.refusals
        assert any("replay is paused" in r for r in refused.refusals), refused.refusals
    finally:
        postgres.set_replay_paused(pair.replica.dsn, False)


def test_a_planned_switchover_loses_nothing_and_the_old_primary_rejoins(pair: PgPair) -> None:
    written = _write(pair.pooled_dsn)
    record = postgres_failover.switch(endpoints(pair), "planned", stop_old_primary=pair.primary.stop)
    assert record.data_lost_bytes == 0, record
    assert written in _ids(pair.replica.dsn)
    assert pgbouncer.backend(pair.config) == (LOOPBACK, pair.replica.port)
    assert set(record.steps) == {
        "fence the old primary",
        "stop the old primary cleanly",
        "replica replays its last LSN",
        "promote the replica",
        "repoint the pooler",
        "a write through the pooler",
    }
    with pytest.raises(psycopg.OperationalError):  # fenced and stopped: it takes no write
        _write(pair.primary.dsn)

    ha_servers.rejoin_as_replica(pair.primary, pair.replica)
    wait_until(lambda: _streams(pair.replica.dsn), "the old primary to stream from the new one", 15)
    pair.primary, pair.replica = pair.replica, pair.primary  # the roles, swapped


def test_a_planned_switchover_without_a_way_to_stop_the_primary_is_refused(pair: PgPair) -> None:
    with pytest.raises(ValueError, match="stop the old primary"):
        postgres_failover.switch(endpoints(pair), "planned")


def test_kill_9_then_an_unplanned_failover_through_the_same_pooler(pair: PgPair) -> None:
    last_before = _write(pair.pooled_dsn)
    wait_until(lambda: postgres.primary_view(pair.primary.dsn).standbys[0].lag_bytes == 0, "catch-up", 10)

    pair.primary.kill_hard()
    died = time.monotonic()
    ready = postgres_failover.preflight(endpoints(pair), "unplanned", BOUND, 30)
    assert ready.ok and not ready.primary_answers, ready.refusals
    record = postgres_failover.switch(endpoints(pair), "unplanned", primary_died_at=died)
    assert record.write_unavailable_s is not None and record.write_unavailable_s < 30
    assert last_before in _ids(pair.replica.dsn), "a write acknowledged before the kill was lost"
    assert record.data_lost_bytes is None  # the dead primary's last LSN is not knowable by SQL

    ha_servers.rejoin_as_replica(pair.primary, pair.replica)
    assert pair.primary.in_recovery()
    after = _write(pair.pooled_dsn)
    wait_until(lambda: after in _ids(pair.primary.dsn), "the rejoined node to replay a new write", 15)
