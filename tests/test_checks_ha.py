"""The checklist's high-availability checks (checks/ha.py) against a real replica, PgBouncer and
Sentinels (vextrus_nb/sandbox/ha_topology.py): each passes on the healthy topology and fails naming the part
when it is broken: the replica stopped (and so its slot inactive), replay paused past the lag
bound, a wrong console password, the replica of Redis gone, two of three Sentinels lost."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vextrus_nb import checks
from vextrus_nb.checks import CheckResult
from vextrus_nb.config import Environment, load_environment, load_inventory
from vextrus_nb.ha import postgres
from vextrus_nb.sandbox.ha_topology import PgPair, RedisSet

from .helpers import AWKWARD_PASSWORD, awkward_admin, ha_environment_document, wait_until

ENV = "ha-checks-test"
HA_CHECKS = (
    "INF-PG-REPLICA",
    "INF-PG-REPLICA-LAG",
    "INF-PG-SLOTS",
    "INF-PGBOUNCER-POOLS",
    "INF-SENTINEL-QUORUM",
    "INF-REDIS-REPLICA",
)


def _write_environment(
    folder: Path, secrets_dir: Path, pair: PgPair, redis_set: RedisSet, **ha: object
) -> Environment:
    document = ha_environment_document(ENV, pair, redis_set, secrets_dir, ha, probe={"timeout_s": 3.0})
    (folder / "environments" / f"{ENV}.yaml").write_text(yaml.safe_dump(document))
    return load_environment(ENV)


@pytest.fixture(scope="module")
def environment(
    own_parameters: Path, tmp_path_factory: pytest.TempPathFactory, pair: PgPair, redis_set: RedisSet
) -> Environment:
    return _write_environment(own_parameters, tmp_path_factory.mktemp("secrets"), pair, redis_set)


def run_all(env: Environment, *check_ids: str) -> dict[str, CheckResult]:
    result = checks.run_checklist(env, load_inventory(), checks.select(ids=check_ids or HA_CHECKS))
    return {r.check.id: r for r in result.results}


def test_a_healthy_topology_passes_every_ha_check(environment: Environment) -> None:
    results = run_all(environment)
    assert {i: r.status for i, r in results.items()} == dict.fromkeys(HA_CHECKS, "passed"), {
        i: r.evidence for i, r in results.items()
    }
    assert "replica streaming" in results["INF-PG-REPLICA"].evidence
    assert "3 of 3 Sentinel(s) answer" in results["INF-SENTINEL-QUORUM"].evidence


def test_an_admin_password_libpq_must_quote_reaches_both_nodes(
    own_parameters: Path, tmp_path: Path, pair: PgPair, redis_set: RedisSet
) -> None:
    name = f"{ENV}-awkward"
    document = ha_environment_document(
        name, pair, redis_set, tmp_path, probe={"timeout_s": 3.0}, postgres_login=awkward_admin(pair)
    )
    (own_parameters / "environments" / f"{name}.yaml").write_text(yaml.safe_dump(document))
    replication = ("INF-PG-REPLICA", "INF-PG-REPLICA-LAG", "INF-PG-SLOTS")
    results = run_all(load_environment(name), *replication)
    assert {i: r.status for i, r in results.items()} == dict.fromkeys(replication, "passed"), {
        i: r.evidence for i, r in results.items()
    }
    assert AWKWARD_PASSWORD not in str([r.as_row() for r in results.values()])


def test_an_environment_without_ha_has_nothing_to_check(environment: Environment) -> None:
    single = environment.model_copy(update={"ha": None})
    results = run_all(single)
    assert {r.status for r in results.values()} == {"not_applicable"}


def test_a_stopped_replica_fails_replication_and_leaves_its_slot_inactive(
    environment: Environment, pair: PgPair
) -> None:
    pair.replica.stop()
    try:
        results = run_all(environment, "INF-PG-REPLICA", "INF-PG-SLOTS", "INF-PG-REPLICA-LAG")
        assert results["INF-PG-REPLICA"].status == "failed"
        assert set(results["INF-PG-REPLICA"].subjects) == {"postgres-replica"}
        assert results["INF-PG-SLOTS"].status == "failed" and results["INF-PG-SLOTS"].subjects == [
            "replica_slot"
        ]
        assert results["INF-PG-REPLICA-LAG"].status == "failed"
    finally:
        pair.replica.start()
    wait_until(lambda: postgres.primary_view(pair.primary.dsn).streaming(), "the replica to stream again", 20)


def test_replay_paused_beyond_the_bound_fails_the_lag_check_naming_the_replica(
    own_parameters: Path, tmp_path: Path, pair: PgPair, redis_set: RedisSet
) -> None:
    strict = _write_environment(own_parameters, tmp_path, pair, redis_set, max_lag_bytes=0)
    postgres.set_replay_paused(pair.replica.dsn, True)
    try:
        import psycopg

        with psycopg.connect(pair.primary.dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO heartbeat DEFAULT VALUES")
        wait_until(
            lambda: postgres.primary_view(pair.primary.dsn).standbys[0].lag_bytes > 0, "lag to show", 10
        )
        result = run_all(strict, "INF-PG-REPLICA-LAG")["INF-PG-REPLICA-LAG"]
        assert result.status == "failed" and result.subjects == ["replica"], result.evidence
        assert "bytes" in result.findings[0].detail and "bound 0 bytes" in result.findings[0].detail
    finally:
        postgres.set_replay_paused(pair.replica.dsn, False)


def test_a_wrong_console_password_fails_pgbouncer_without_showing_it(
    own_parameters: Path, tmp_path: Path, pair: PgPair, redis_set: RedisSet
) -> None:
    wrong = _write_environment(own_parameters, tmp_path, pair, redis_set)
    (tmp_path / "postgres_password").write_text("not-the-password")
    result = run_all(wrong, "INF-PGBOUNCER-POOLS")["INF-PGBOUNCER-POOLS"]
    assert result.status == "failed" and result.subjects == ["pgbouncer"], result.evidence
    assert "not-the-password" not in str(result.as_row())


def test_a_pool_whose_clients_keep_waiting_fails_pgbouncer_and_a_drained_one_passes(
    environment: Environment, pair: PgPair
) -> None:
    import threading

    import psycopg

    from vextrus_nb.ha import pgbouncer

    # Transaction pooling: a client inside a transaction holds one of the pool's 10 server
    # connections until it ends, so ten open transactions leave an eleventh client queued.
    holders = [psycopg.connect(pair.pooled_dsn) for _ in range(10)]
    for holder in holders:
        holder.execute("SELECT 1")  # opens the transaction (autocommit off), holding a server
    queued = threading.Thread(target=lambda: psycopg.connect(pair.pooled_dsn).execute("SELECT 1").close())
    try:
        queued.start()
        wait_until(
            lambda: any(
                p.max_wait_s >= pgbouncer.SATURATED_AFTER_S for p in pgbouncer.pools(pair.console_dsn, 3)
            ),
            "the queued client to have waited past the saturation threshold",
        )
        result = run_all(environment, "INF-PGBOUNCER-POOLS")["INF-PGBOUNCER-POOLS"]
        assert result.status == "failed" and result.subjects == ["pgbouncer"], result.evidence
        assert "client(s) waiting" in result.findings[0].detail
    finally:
        for holder in holders:
            holder.close()  # ends each transaction: the queued client gets its server
        queued.join(timeout=30)
    assert not queued.is_alive()
    assert run_all(environment, "INF-PGBOUNCER-POOLS")["INF-PGBOUNCER-POOLS"].status == "passed"


def test_losing_the_redis_replica_and_two_sentinels_fails_naming_them(
    environment: Environment, redis_set: RedisSet
) -> None:
    redis_set.replica.stop()
    lost = redis_set.sentinels[1:]
    for sentinel in lost:
        sentinel.stop()
    results = run_all(environment, "INF-REDIS-REPLICA", "INF-SENTINEL-QUORUM")
    replica = results["INF-REDIS-REPLICA"]
    assert replica.status == "failed" and replica.subjects == ["redis-replica"], replica.evidence
    quorum = results["INF-SENTINEL-QUORUM"]
    assert quorum.status == "failed", quorum.evidence
    # Named as the environment names them (sentinel-2, sentinel-3), their addresses in the detail.
    assert set(quorum.subjects) == {"sentinel-2", "sentinel-3", "redis"}, quorum.subjects
    details = " ".join(f.detail for f in quorum.findings)
    assert all(f"127.0.0.1:{s.port}" in details for s in lost), details
    assert "redis" in quorum.subjects and "1 of 3 Sentinel(s) answer" in quorum.evidence
