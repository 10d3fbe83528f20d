"""The high-availability engines on real servers (issue 20, the foundation): a PostgreSQL
primary with a streaming replica behind PgBouncer, and a Redis primary with a replica and three
Sentinels. Each view is seen healthy and broken (replay paused, the wrong role, a wrong
password, Sentinels lost), and Sentinel's failover promotes the replica. The PostgreSQL failover
procedure itself is tests/test_ha_failover.py."""

from __future__ import annotations

import psycopg
import pytest
import redis

from vextrus_nb.errors import PoolerError, ReplicationError, SentinelError
from vextrus_nb.ha import pgbouncer, postgres, sentinel
from vextrus_nb.ports import free_ports
from vextrus_nb.sandbox.ha_servers import SENTINEL_SERVICE
from vextrus_nb.sandbox.ha_topology import PgPair, RedisSet
from vextrus_nb.sandbox.real_servers import LOOPBACK

from .helpers import wait_until


def _write(dsn: str) -> int:
    with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as conn:
        row = conn.execute("INSERT INTO heartbeat DEFAULT VALUES RETURNING id").fetchone()
    assert row is not None
    return int(row[0])


def _write_succeeds(dsn: str) -> bool:
    try:
        return _write(dsn) > 0
    except psycopg.OperationalError:
        return False


def _ids(dsn: str) -> set[int]:
    with psycopg.connect(dsn, connect_timeout=2) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM heartbeat")}


def _caught_up(pair: PgPair) -> bool:
    view = postgres.primary_view(pair.primary.dsn)
    return bool(view.streaming()) and all(s.lag_bytes == 0 for s in view.standbys)


def test_the_primary_sees_its_replica_streaming_through_an_active_slot(pair: PgPair) -> None:
    _write(pair.primary.dsn)
    wait_until(lambda: _caught_up(pair), "the replica to catch up", 10)
    view = postgres.primary_view(pair.primary.dsn)
    assert [(s.name, s.state) for s in view.standbys] == [("replica", "streaming")]
    assert [(s.name, s.active) for s in view.slots] == [("replica_slot", True)]
    replica = postgres.replica_view(pair.replica.dsn)
    assert replica.in_recovery and not replica.replay_paused and replica.replay_lsn


def test_a_paused_replay_shows_as_lag_and_resumes_to_zero(pair: PgPair) -> None:
    postgres.set_replay_paused(pair.replica.dsn, True)
    try:
        wait_until(lambda: postgres.replica_view(pair.replica.dsn).replay_paused, "replay to pause", 5)
        written = _write(pair.primary.dsn)
        wait_until(
            lambda: postgres.primary_view(pair.primary.dsn).standbys[0].lag_bytes > 0, "lag to show", 5
        )
        assert written not in _ids(pair.replica.dsn)
    finally:
        postgres.set_replay_paused(pair.replica.dsn, False)
    wait_until(lambda: _caught_up(pair), "the replica to catch up after resuming", 10)
    assert written in _ids(pair.replica.dsn)


def test_views_and_promotion_refuse_the_wrong_role_naming_it(pair: PgPair) -> None:
    with pytest.raises(ReplicationError, match="is a replica"):
        postgres.primary_view(pair.replica.dsn)
    with pytest.raises(ReplicationError, match="already a primary"):
        postgres.promote(pair.primary.dsn)
    with pytest.raises(ReplicationError, match="cannot connect"):
        postgres.primary_view(
            pair.primary.dsn.replace(f"port={pair.primary.port}", f"port={free_ports(1)[0]}")
        )


def test_the_pooler_answers_its_console_and_carries_writes(pair: PgPair) -> None:
    written = _write(pair.pooled_dsn)
    assert written in _ids(pair.primary.dsn)
    rows = pgbouncer.pools(pair.console_dsn)
    assert any(p.database == "postgres" and not p.saturated for p in rows), rows
    assert pgbouncer.backend(pair.config) == (LOOPBACK, pair.primary.port)
    wrong = pair.console_dsn.replace(pair.password, "not-the-password")
    with pytest.raises(PoolerError, match="console refused") as caught:
        pgbouncer.pools(wrong)
    assert pair.password not in str(caught.value)


# ---------------------------------------------------------------- Redis and Sentinel


def test_three_sentinels_agree_on_the_primary_with_a_quorum(redis_set: RedisSet) -> None:
    view = sentinel.view(redis_set.addresses, SENTINEL_SERVICE)
    assert view.agreed_primary() == f"{LOOPBACK}:{redis_set.primary_port}"
    assert view.has_quorum() and len(view.answering()) == 3


def test_sentinel_failover_promotes_the_replica_and_losing_two_sentinels_refuses_the_next(
    redis_set: RedisSet,
) -> None:
    redis.Redis(port=redis_set.primary_port, password=redis_set.password).set("kept", "before failover")
    new = sentinel.failover(redis_set.addresses, SENTINEL_SERVICE, timeout_s=30)
    assert new == f"{LOOPBACK}:{redis_set.replica.port}"
    promoted = redis.Redis(port=redis_set.replica.port, password=redis_set.password)
    wait_until(lambda: promoted.info("replication")["role"] == "master", "the replica to become primary", 10)
    assert promoted.get("kept") == b"before failover"

    for lost in redis_set.sentinels[1:]:
        lost.stop()
    view = sentinel.view(redis_set.addresses, SENTINEL_SERVICE)
    assert len(view.answering()) == 1 and view.agreed_primary() is None and not view.has_quorum()
    with pytest.raises(SentinelError, match="do not agree"):
        sentinel.failover(redis_set.addresses, SENTINEL_SERVICE, timeout_s=5)
