"""Triage's high-availability collectors (vextrus_nb/triage/ha.py) and rules on the real HA
topology (vextrus_nb/sandbox/ha_topology.py): a PostgreSQL primary, its streaming replica and
PgBouncer; a Redis primary, its replica and three Sentinels; and one real service process
(auth, whose readiness checks both datastores) so a dead primary has something to take down.

Each rule is silent on the healthy topology and fires with its fault injected: replay paused,
then writes past the lag bound; the replica stopped; the primary killed with -9 (it ranks as
the root cause above the service); a Sentinel frozen (SIGSTOP), then two stopped; the Redis
primary killed. The module owns its topology: the Redis faults come last and stay."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis
import yaml

from vextrus_nb import triage
from vextrus_nb.config import Environment, load_environment, load_inventory
from vextrus_nb.ha import postgres
from vextrus_nb.ports import free_ports
from vextrus_nb.sandbox import supervisor
from vextrus_nb.sandbox.component import PORTS_VAR
from vextrus_nb.sandbox.ha_servers import SENTINEL_SERVICE, wait_for_sentinels_to_see_replicas
from vextrus_nb.sandbox.ha_topology import PgPair, RedisSet
from vextrus_nb.triage import Finding, TriageResult, TriageSettings

from .helpers import awkward_admin, ha_environment_document, wait_until

ENV = "ha-triage-test"
SERVICE = "auth"  # depends on postgres and redis only: its readiness names whichever is down
IN_SCOPE = {"postgres", "redis", SERVICE}
LAG_BOUND_BYTES = 256 * 1024
# Generous: a loaded machine's healthy answers must not read as slow or hung.
SETTINGS = TriageSettings(timeout_s=3.0, latency_budget_ms=4000.0)


@pytest.fixture(scope="module", autouse=True)
def no_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The local driver reads the sandbox's state: pointed at an empty directory, it reads none
    (another module's sandbox is not this environment's)."""
    saved = os.environ.get("VEXTRUS_SANDBOX_DIR")
    os.environ["VEXTRUS_SANDBOX_DIR"] = str(tmp_path_factory.mktemp("no-sandbox"))
    yield
    if saved is None:
        os.environ.pop("VEXTRUS_SANDBOX_DIR", None)
    else:
        os.environ["VEXTRUS_SANDBOX_DIR"] = saved


@pytest.fixture(scope="module")
def service_port(
    pair: PgPair, redis_set: RedisSet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """The auth service as its own process (what a compose container runs), its dependency
    checks pointed at the topology's primaries."""
    (port,) = free_ports(1)
    ports = {SERVICE: port, "postgres": pair.primary.port, "redis": redis_set.primary_port}
    process = supervisor.start_ready(
        SERVICE,
        [sys.executable, "-m", "vextrus_nb.sandbox.component", SERVICE],
        tmp_path_factory.mktemp("service"),
        probe=lambda: supervisor.port_open(port),
        timeout=30,
        env={PORTS_VAR: json.dumps(ports)},
    )
    yield port
    process.stop()


def _write_environment(
    folder: Path, secrets_dir: Path, pair: PgPair, redis_set: RedisSet, service_port: int
) -> Environment:
    document = ha_environment_document(
        ENV,
        pair,
        redis_set,
        secrets_dir,
        {"max_lag_bytes": LAG_BOUND_BYTES},
        ports={SERVICE: service_port},
        exclude=sorted(set(load_inventory().components) - IN_SCOPE),
    )
    (folder / "environments" / f"{ENV}.yaml").write_text(yaml.safe_dump(document))
    return load_environment(ENV)


@pytest.fixture(scope="module")
def environment(
    own_parameters: Path,
    tmp_path_factory: pytest.TempPathFactory,
    pair: PgPair,
    redis_set: RedisSet,
    service_port: int,
) -> Environment:
    return _write_environment(
        own_parameters, tmp_path_factory.mktemp("secrets"), pair, redis_set, service_port
    )


def run_triage(env: Environment) -> TriageResult:
    return triage.triage(env, load_inventory(), SETTINGS)


def findings(result: TriageResult) -> dict[tuple[str, str], Finding]:
    return {(f.component, f.symptom): f for f in result.findings}


HA_SYMPTOMS = {
    "pg_primary_down",
    "pg_no_replica",
    "pg_replica_not_streaming",
    "pg_replication_lag",
    "pg_replay_paused",
    "redis_primary_down",
    "sentinel_quorum_lost",
    "sentinel_disagree",
    "sentinel_unreachable",
}


def test_a_healthy_topology_gives_no_finding(environment: Environment) -> None:
    result = run_triage(environment)
    assert result.findings == [], [f.as_row() for f in result.findings]
    replication, sentinels = result.report("replication"), result.report("sentinels")
    assert (replication.status, sentinels.status) == ("ok", "ok"), (replication.detail, sentinels.detail)
    assert "1 replica(s) connected" in replication.detail and "in recovery" in replication.detail
    assert "3 of 3 Sentinel(s) answer" in sentinels.detail
    assert [row["flags"] for row in sentinels.data["sentinels"]] == ["master"] * 3


def test_an_admin_password_libpq_must_quote_reaches_both_nodes(
    own_parameters: Path, tmp_path: Path, pair: PgPair, redis_set: RedisSet, service_port: int
) -> None:
    name = f"{ENV}-awkward"
    document = ha_environment_document(
        name,
        pair,
        redis_set,
        tmp_path,
        {"max_lag_bytes": LAG_BOUND_BYTES},
        ports={SERVICE: service_port},
        postgres_login=awkward_admin(pair),
        exclude=sorted(set(load_inventory().components) - IN_SCOPE),
    )
    (own_parameters / "environments" / f"{name}.yaml").write_text(yaml.safe_dump(document))
    result = run_triage(load_environment(name))
    replication = result.report("replication")
    assert replication.status == "ok", replication.detail
    assert "1 replica(s) connected" in replication.detail and "in recovery" in replication.detail
    assert result.findings == [], [f.as_row() for f in result.findings]


def test_an_environment_without_ha_has_no_ha_signal(environment: Environment) -> None:
    result = run_triage(environment.model_copy(update={"ha": None}))
    assert not {"replication", "sentinels"} & {r.name for r in result.reports}
    assert not {f.symptom for f in result.findings} & HA_SYMPTOMS


def test_a_replica_declared_but_not_deployed_is_no_finding(environment: Environment) -> None:
    """As on the sandbox's planted deployment: `ha:` names a replica that has no address."""
    assert environment.ha is not None and environment.ha.postgres is not None
    postgres_ha = environment.ha.postgres.model_copy(update={"replica": "nowhere"})
    undeployed = environment.model_copy(
        update={"ha": environment.ha.model_copy(update={"postgres": postgres_ha})}
    )
    result = run_triage(undeployed)
    assert result.findings == [], [f.as_row() for f in result.findings]
    assert "replica nowhere: declared, but not deployed here" in result.report("replication").detail


def test_paused_replay_is_named_then_writes_past_the_bound_make_the_replica_lag(
    environment: Environment, pair: PgPair
) -> None:
    postgres.set_replay_paused(pair.replica.dsn, True)
    try:
        paused = findings(run_triage(environment))
        assert set(paused) == {("postgres-replica", "pg_replay_paused")}, list(paused)
        assert paused[("postgres-replica", "pg_replay_paused")].severity == "medium"
        with psycopg.connect(pair.primary.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS ballast (pad text)")
            conn.execute("INSERT INTO ballast SELECT repeat('x', 1000) FROM generate_series(1, 1000)")
        wait_until(
            lambda: postgres.primary_view(pair.primary.dsn).standbys[0].lag_bytes > LAG_BOUND_BYTES,
            "the replica to fall past the bound",
            10,
        )
        result = run_triage(environment)
        lagging = findings(result)
        # The pause is the lag's evidence (merge_into), not a row of its own.
        assert set(lagging) == {("postgres-replica", "pg_replication_lag")}, list(lagging)
        lag = lagging[("postgres-replica", "pg_replication_lag")]
        assert lag.severity == "high" and lag.root_cause and result.incident == [lag]
        assert f"bound {LAG_BOUND_BYTES} bytes" in lag.evidence[0], lag.evidence
        assert any("replay PAUSED" in line for line in lag.evidence), lag.evidence
        assert any(f"-p {pair.replica.port}" in command for command in lag.commands), lag.commands
    finally:
        postgres.set_replay_paused(pair.replica.dsn, False)
    wait_until(
        lambda: postgres.primary_view(pair.primary.dsn).standbys[0].lag_bytes == 0,
        "the replica to catch up",
        20,
    )


def test_a_stopped_replica_is_not_streaming_and_its_slot_is_named(
    environment: Environment, pair: PgPair
) -> None:
    pair.replica.stop()
    try:
        found = findings(run_triage(environment))
        assert set(found) == {("postgres-replica", "pg_replica_not_streaming")}, list(found)
        [evidence] = found[("postgres-replica", "pg_replica_not_streaming")].evidence
        assert "no replica connected" in evidence and "slot replica_slot inactive" in evidence, evidence
        assert "replica postgres-replica: " in evidence and "refused" in evidence, evidence
        # Its slot dropped too: no trace of a replica left, as a single-instance deployment.
        with psycopg.connect(pair.primary.dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_drop_replication_slot('replica_slot')")
            never = findings(run_triage(environment))
            conn.execute("SELECT pg_create_physical_replication_slot('replica_slot')")
        assert set(never) == {("postgres-replica", "pg_no_replica")}, list(never)
        assert never[("postgres-replica", "pg_no_replica")].severity == "medium"
    finally:
        pair.replica.start()
    wait_until(lambda: postgres.primary_view(pair.primary.dsn).streaming(), "the replica to stream again", 20)


def test_a_primary_refusing_the_login_is_a_gap_not_a_dead_primary(
    own_parameters: Path, tmp_path: Path, pair: PgPair, redis_set: RedisSet, service_port: int
) -> None:
    wrong = _write_environment(own_parameters, tmp_path, pair, redis_set, service_port)
    (tmp_path / "postgres_password").write_text("not-the-password")
    result = run_triage(wrong)
    replication = result.report("replication")
    assert replication.status == "error" and "password authentication failed" in replication.detail
    assert replication.signals == []
    shown = json.dumps([f.as_row() for f in result.findings]) + json.dumps(
        [(r.name, r.detail) for r in result.reports]
    )
    assert "not-the-password" not in shown and pair.password not in shown


def test_a_killed_primary_ranks_as_the_root_cause_above_the_service_it_takes_down(
    environment: Environment, pair: PgPair
) -> None:
    pair.primary.kill_hard()
    try:
        result = run_triage(environment)
        top = result.findings[0]
        assert (top.component, top.symptom, top.root_cause) == ("postgres", "pg_primary_down", True)
        assert top.severity == "critical" and "postgres-replica can be promoted" in top.title
        assert SERVICE in top.affected
        # Health's `down` of the same component is this finding's evidence, not a row of its own.
        assert ("postgres", "down") not in findings(result)
        assert any("refused" in line for line in top.evidence[1:]), top.evidence
        service = findings(result)[(SERVICE, "dependency_down")]
        assert service.explained_by == ["postgres"] and not service.root_cause
        assert any("ha/failover" in command for command in top.commands), top.commands
    finally:
        pair.primary.start()
    wait_until(lambda: postgres.primary_view(pair.primary.dsn).streaming(), "the replica to stream again", 30)


def _monitor(sentinel_port: int, redis_port: int, password: str) -> None:
    """Point one Sentinel at another Redis as the primary it monitors (what a partition's
    minority ends up believing), with the settings the topology gave it."""
    client = redis.Redis(port=sentinel_port, socket_timeout=3)
    client.execute_command("SENTINEL", "REMOVE", SENTINEL_SERVICE)
    client.execute_command("SENTINEL", "MONITOR", SENTINEL_SERVICE, "127.0.0.1", redis_port, 2)
    for option, value in (("auth-pass", password), ("down-after-milliseconds", 1000)):
        client.execute_command("SENTINEL", "SET", SENTINEL_SERVICE, option, value)


def test_a_sentinel_naming_another_primary_is_a_split_view(
    environment: Environment, redis_set: RedisSet
) -> None:
    minority = redis_set.sentinels[2]
    _monitor(minority.port, redis_set.replica.port, redis_set.password)
    try:
        found = findings(run_triage(environment))
    finally:
        _monitor(minority.port, redis_set.primary_port, redis_set.password)
    assert set(found) == {("sentinels", "sentinel_disagree")}, list(found)
    split = found[("sentinels", "sentinel_disagree")]
    assert split.severity == "high"
    assert f"127.0.0.1:{redis_set.primary_port} (2)" in split.title
    assert f"127.0.0.1:{redis_set.replica.port} (1)" in split.title
    wait_for_sentinels_to_see_replicas([s.port for s in redis_set.sentinels], 1)


def test_a_frozen_sentinel_is_named_while_the_others_hold_the_quorum(
    environment: Environment, redis_set: RedisSet
) -> None:
    frozen = redis_set.sentinels[0]
    os.kill(frozen.main.pid, signal.SIGSTOP)
    try:
        found = findings(run_triage(environment))
    finally:
        os.kill(frozen.main.pid, signal.SIGCONT)
    assert set(found) == {("sentinels", "sentinel_unreachable")}, list(found)
    unreachable = found[("sentinels", "sentinel_unreachable")]
    assert unreachable.severity == "medium" and f"127.0.0.1:{frozen.port}" in unreachable.title


def test_two_stopped_sentinels_lose_the_quorum(environment: Environment, redis_set: RedisSet) -> None:
    for lost in redis_set.sentinels[1:]:
        lost.stop()  # for the rest of the module
    found = findings(run_triage(environment))
    assert set(found) == {("sentinels", "sentinel_quorum_lost")}, list(found)
    quorum = found[("sentinels", "sentinel_quorum_lost")]
    assert quorum.severity == "high" and "1 of 3 answer" in quorum.title
    # Each silent Sentinel is named in the quorum's evidence (merge_into).
    assert all(
        any(f"127.0.0.1:{s.port}" in line for line in quorum.evidence) for s in redis_set.sentinels[1:]
    )


def test_a_killed_redis_primary_ranks_as_the_root_cause_above_the_service(
    environment: Environment, redis_set: RedisSet
) -> None:
    # The replica stopped first, so no Sentinel can promote it: the primary stays the named one.
    redis_set.replica.stop()
    os.kill(redis_set.primary.main.pid, signal.SIGKILL)
    wait_until(lambda: not supervisor.port_open(redis_set.primary_port), "the Redis primary to die", 10)
    result = run_triage(environment)
    top = result.findings[0]
    assert (top.component, top.symptom, top.root_cause) == ("redis", "redis_primary_down", True)
    assert (
        top.title == f"Redis primary 127.0.0.1:{redis_set.primary_port} is down" and SERVICE in top.affected
    )
    assert ("redis", "down") not in findings(result)
    service = findings(result)[(SERVICE, "dependency_down")]
    assert service.explained_by == ["redis"] and not service.root_cause
