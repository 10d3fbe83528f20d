"""High availability on the session sandbox itself (issue 20): the planted variant runs single
instances and the HA checks name the missing replicas (critical gap 3); the hardened one runs a
streaming replica behind PgBouncer and a Redis replica with three Sentinels, and each of the
sandbox's HA faults is caught by its check, named, and undone by heal. Then kill -9 of each
primary and `ha/failover` live through the CLI: a new primary, the old one rejoined as its
replica (the state's names follow the roles), every service ready again through PgBouncer and
Sentinel without a restart; a planned switchover back (no data lost; in-process, the engine and
the driver without a kernel) leaves the sandbox as it was for the tests after these."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from vextrus_nb import checks
from vextrus_nb.config import load_environment, load_inventory
from vextrus_nb.ha import postgres_failover, sentinel
from vextrus_nb.pg_conninfo import conninfo
from vextrus_nb.sandbox import ha_topology, manager
from vextrus_nb.sandbox.driver import LocalDriver
from vextrus_nb.sandbox.ha_servers import SENTINEL_SERVICE
from vextrus_nb.sandbox.supervisor import port_open, wait_for
from vextrus_nb.sandbox_state import SandboxState

from .helpers import ledger_entries, run_cli

HA_CHECKS = (
    "INF-PG-REPLICA",
    "INF-PG-REPLICA-LAG",
    "INF-PG-SLOTS",
    "INF-PGBOUNCER-POOLS",
    "INF-SENTINEL-QUORUM",
    "INF-REDIS-REPLICA",
)
READY_DEADLINE_S = 60.0


def ha_results() -> dict[str, tuple[str, list[str]]]:
    inventory = load_inventory()
    result = checks.run_checklist(
        load_environment("sandbox", inventory), inventory, checks.select(ids=HA_CHECKS)
    )
    return {r.check.id: (r.status, r.subjects) for r in result.results}


def failed(results: dict[str, tuple[str, list[str]]]) -> dict[str, list[str]]:
    return {check: subjects for check, (status, subjects) in results.items() if status != "passed"}


def ready(state: SandboxState, service: str) -> bool:
    try:
        return (
            httpx.get(f"http://127.0.0.1:{state.ports[service]}/health/ready", timeout=10).status_code == 200
        )
    except httpx.HTTPError:
        return False


def services_not_ready(state: SandboxState) -> list[str]:
    return [s.name for s in load_inventory().services() if not ready(state, s.name)]


def wait_all_ready(state: SandboxState) -> None:
    met, _ = wait_for(lambda: not services_not_ready(state), READY_DEADLINE_S, interval=0.2)
    assert met, f"not ready: {services_not_ready(state)}"


def failover(outputs: Path, *parameters: str) -> dict[str, Any]:
    options = [part for parameter in parameters for part in ("-p", parameter)]
    done = run_cli("run", "ha/failover", "--env", "sandbox", "-p", "dry_run=false", *options)
    assert done.returncode == 0, done.stderr[-2000:]
    entry = ledger_entries(outputs)[-1]
    assert [s["status"] for s in entry["steps"]] == ["passed"] * len(entry["steps"]), entry["steps"]
    return entry


def switch_postgres_back(state: SandboxState) -> postgres_failover.FailoverRecord:
    """A planned switchover in-process (the engine and the driver the runbook uses, without a
    kernel: the runbook's own path was just tested): the sandbox's roles as they were."""
    driver = LocalDriver.for_sandbox(state.root)
    password = state.secret("postgres_password")

    def dsn(port: int) -> str:
        return conninfo("127.0.0.1", port, manager.ADMIN_USER, password)

    ports = state.ports
    ends = postgres_failover.Endpoints(
        dsn(ports["postgres"]), dsn(ports["postgres-replica"]), dsn(ports["pgbouncer"]),
        ha_topology.pooler_config(state), "127.0.0.1", ports["postgres-replica"],
    )  # fmt: skip
    record = postgres_failover.switch(
        ends, "planned", stop_old_primary=lambda: driver.stop_datastore("postgres")
    )
    driver.rejoin_as_replica("postgres", "postgres-replica")
    return record


def switch_redis_back(state: SandboxState) -> None:
    sentinels = [f"127.0.0.1:{state.ports[name]}" for name in ha_topology.SENTINELS]
    sentinel.failover(sentinels, SENTINEL_SERVICE)
    LocalDriver.for_sandbox(state.root).rejoin_as_replica("redis", "redis-replica")


def test_the_planted_variant_runs_single_instances_and_the_ha_checks_name_the_replicas(
    healthy: SandboxState,
) -> None:
    assert manager.deployment_variant(healthy.root) == "planted"
    assert failed(ha_results()) == {
        "INF-PG-REPLICA": ["postgres-replica"],
        "INF-PG-REPLICA-LAG": ["postgres-replica"],
        "INF-REDIS-REPLICA": ["redis-replica"],
    }
    assert "postgres-replica" not in healthy.ports  # no address: an environment runs none
    rows = manager.status(healthy.root)["ha"]
    assert rows["pgbouncer"]["running"] and rows["sentinel-1"]["running"]
    assert not rows["postgres-replica"]["running"] and "planted" in rows["postgres-replica"]["server"]
    refused = run_cli("run", "ha/failover", "--env", "sandbox", "-p", "dry_run=false")
    assert refused.returncode == 2 and "declares postgres-replica but runs none" in refused.stderr, (
        refused.stderr
    )


@pytest.fixture(scope="module")
def hardened(sandbox: SandboxState) -> Iterator[SandboxState]:
    manager.use_deployment("hardened", sandbox.root)
    yield sandbox
    manager.heal(root=sandbox.root)
    manager.use_deployment("planted", sandbox.root)


@pytest.mark.parametrize(
    ("part", "mode", "caught"),
    [
        ("postgres-replica", "down", {"INF-PG-REPLICA", "INF-PG-REPLICA-LAG", "INF-PG-SLOTS"}),
        ("postgres-replica", "lagging", {"INF-PG-REPLICA-LAG"}),
        ("pgbouncer", "down", {"INF-PGBOUNCER-POOLS"}),
        ("redis-replica", "down", {"INF-REDIS-REPLICA"}),
        ("sentinel-2", "partitioned", {"INF-SENTINEL-QUORUM"}),
    ],
)
def test_each_ha_fault_is_caught_by_its_check_naming_the_part_and_heal_restores(
    hardened: SandboxState, part: str, mode: str, caught: set[str]
) -> None:
    manager.fault(part, mode, root=hardened.root)  # healthy before: the previous case ends so
    try:
        found = failed(ha_results())
        assert set(found) == caught, found
        named = {subject for subjects in found.values() for subject in subjects}
        # The slot is named by its own name (the replica's node), every other finding by the part.
        assert part in named and named <= {part, "redis", "pg_b_slot", "pg_a_slot"}, found
    finally:
        assert manager.heal(part, root=hardened.root) == [part]
    assert failed(ha_results()) == {}


def test_kill_9_of_the_postgres_primary_then_a_live_failover_and_a_planned_switchover_back(
    hardened: SandboxState, outputs: Path
) -> None:
    before = SandboxState.load(hardened.root)
    primary, replica = before.ports["postgres"], before.ports["postgres-replica"]
    manager.fault("postgres", "killed", root=hardened.root)
    assert not port_open(primary)  # gone: kill -9, no shutdown (what it does to the services: test_sandbox)

    entry = failover(outputs, "datastore=postgres", "mode=unplanned")
    assert entry["summary"]["new_primary"] == f"127.0.0.1:{replica}"
    after = SandboxState.load(hardened.root)
    # The names follow the roles: `postgres` is the promoted node, the old primary its replica.
    assert (after.ports["postgres"], after.ports["postgres-replica"]) == (replica, primary)
    assert after.services_pid == before.services_pid  # no restart: PgBouncer moved them
    wait_all_ready(after)
    assert failed(ha_results()) == {}
    with psycopg.connect(
        host="127.0.0.1", port=after.ports["pgbouncer"], user=manager.ADMIN_USER,
        password=after.secret("postgres_password"), dbname="postgres", prepare_threshold=None,
    ) as conn:  # fmt: skip
        assert conn.execute("SELECT NOT pg_is_in_recovery(), inet_server_port()").fetchone() == (
            True,
            replica,
        )

    assert switch_postgres_back(after).data_lost_bytes == 0
    restored = SandboxState.load(hardened.root)
    assert (restored.ports["postgres"], restored.ports["postgres-replica"]) == (primary, replica)
    wait_all_ready(restored)
    assert failed(ha_results()) == {}
    # Both nodes were replicas once (a clone, a rejoin): their stored primary_conninfo names a
    # password file, so a backup of either data directory holds no password.
    password = restored.secret("postgres_password")
    stored = list(Path(ha_topology.ha_record(restored)["pg_home"]).rglob("postgresql.auto.conf"))
    assert len(stored) == 2 and all("primary_conninfo" in c.read_text() for c in stored), stored
    assert not [c for c in stored if password in c.read_text()]


def test_kill_9_of_the_redis_primary_then_a_live_failover_through_the_sentinels_and_back(
    hardened: SandboxState, outputs: Path
) -> None:
    before = SandboxState.load(hardened.root)
    primary, replica = before.ports["redis"], before.ports["redis-replica"]
    manager.fault("redis", "killed", root=hardened.root)
    assert not port_open(primary)

    entry = failover(outputs, "datastore=redis", "mode=unplanned")
    assert entry["summary"]["new_primary"] == f"127.0.0.1:{replica}"
    after = SandboxState.load(hardened.root)
    assert (after.ports["redis"], after.ports["redis-replica"]) == (replica, primary)
    assert after.services_pid == before.services_pid  # no restart: they asked the Sentinels
    wait_all_ready(after)
    assert failed(ha_results()) == {}

    switch_redis_back(after)
    restored = SandboxState.load(hardened.root)
    assert (restored.ports["redis"], restored.ports["redis-replica"]) == (primary, replica)
    wait_all_ready(restored)
    assert failed(ha_results()) == {}
