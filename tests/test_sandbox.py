"""The sandbox is real: health follows real dependencies, faults break what
they say, and the data set holds up to an accountant's eye."""

from __future__ import annotations

import time
from typing import Any

import httpx
import psycopg
import pytest
import redis

from vextrus_nb.config import load_environment, load_inventory
from vextrus_nb.errors import ConfigError, SandboxError
from vextrus_nb.probe_targets import probe_targets
from vextrus_nb.probes import sweep
from vextrus_nb.sandbox import manager
from vextrus_nb.sandbox_state import SandboxState

from .helpers import run_cli, wait_until

LOCAL = "127.0.0.1"


def _get(state: SandboxState, component: str, path: str, timeout: float = 3.0) -> httpx.Response:
    return httpx.get(f"http://{LOCAL}:{state.ports[component]}{path}", timeout=timeout)


def _service_sweep():
    inventory = load_inventory()
    env = load_environment("sandbox", inventory)
    # A service's readiness with PostgreSQL down answers after its own 2 s connect timeout (through
    # PgBouncer, whose auth_query needs the server); 18 services at once on two cores can take
    # longer than 3 s, and a probe that times out has no body naming the cause.
    return sweep(probe_targets(env, inventory, inventory.services(), all_health_paths=True), timeout=8.0)


def test_every_service_answers_all_three_health_paths(healthy: SandboxState) -> None:
    results = _service_sweep()
    assert len(results) == 18 * 3
    assert {r.status for r in results} == {"up"}, [r for r in results if r.status != "up"]
    assert all(r.body and r.body["status"] == "ok" and r.body["error"] == {} for r in results)


def test_stopping_postgres_turns_readiness_red_but_not_liveness(healthy: SandboxState) -> None:
    manager.fault("postgres", "down", root=healthy.root)
    with_db = {c.name for c in load_inventory().services() if c.database}

    def not_yet_an_outage() -> list[Any]:
        """The sweep's results that do not yet show a PostgreSQL outage (empty: all do). Waited on
        rather than read once: on a loaded 2-core machine one sweep can time out a probe right
        after the stop; a liveness that wrongly depended on the database stays wrong through
        every sweep, so the wait still catches it."""
        wrong = []
        for r in _service_sweep():
            readiness_wrong = r.check in ("health", "ready") and not (
                r.status == "down" and r.body is not None and "database" in r.body["error"]
            )
            if r.component in with_db and readiness_wrong:
                wrong.append(r)
            if r.check == "live" and not (r.status == "up" and "database" not in r.body["details"]):
                wrong.append(r)
        return wrong

    deadline = time.monotonic() + 60
    while last := not_yet_an_outage():
        assert time.monotonic() < deadline, last
    manager.heal("postgres", root=healthy.root)
    wait_until(lambda: {r.status for r in _service_sweep()} == {"up"}, "every probe up after the heal")


def test_a_simulated_dependency_down_shows_in_its_dependents(healthy: SandboxState) -> None:
    manager.fault("minio", "down", root=healthy.root)
    body = wait_until(
        lambda: (b := _get(healthy, "file-storage", "/health/ready").json())["status"] == "error" and b,
        "file-storage's readiness to report minio down",
    )
    assert "minio" in body["error"]
    assert _get(healthy, "finance", "/health/ready").json()["status"] == "ok"


def test_fault_down_refuses_connections_and_heal_restores(healthy: SandboxState) -> None:
    manager.fault("finance", "down", root=healthy.root)
    with pytest.raises(httpx.ConnectError):
        _get(healthy, "finance", "/health")
    assert manager.heal("finance", root=healthy.root) == ["finance"]
    assert _get(healthy, "finance", "/health").status_code == 200


def test_fault_unhealthy_reports_terminus_error(healthy: SandboxState) -> None:
    manager.fault("workflow", "unhealthy", root=healthy.root)
    response = _get(healthy, "workflow", "/health")
    assert response.status_code == 503 and response.json()["error"]["process"]["status"] == "down"
    assert _get(healthy, "workflow", "/health/live").status_code == 200
    es = _get(healthy, "elasticsearch", "/_cluster/health").json()
    assert es["status"] == "green"
    manager.fault("elasticsearch", "unhealthy", root=healthy.root)
    assert _get(healthy, "elasticsearch", "/_cluster/health").json()["status"] == "red"


def test_fault_slow_delays_answers(healthy: SandboxState) -> None:
    manager.fault("hr", "slow", root=healthy.root, delay_s=2.0)
    with pytest.raises(httpx.ReadTimeout):
        _get(healthy, "hr", "/health/live", timeout=0.5)
    manager.heal("hr", root=healthy.root)
    assert _get(healthy, "hr", "/health/live", timeout=0.5).status_code == 200


def test_redis_fault_down_stops_the_real_server(healthy: SandboxState) -> None:
    manager.fault("redis", "down", root=healthy.root)
    client = redis.Redis(host=LOCAL, port=healthy.ports["redis"], password=healthy.secret("redis_password"))
    with pytest.raises(redis.ConnectionError):
        client.ping()
    assert "redis" in _get(healthy, "auth", "/health/ready").json()["error"]
    manager.heal("redis", root=healthy.root)
    assert client.ping()
    assert _get(healthy, "auth", "/health/ready").json()["status"] == "ok"


def test_bad_fault_requests_are_refused_by_name(sandbox: SandboxState) -> None:
    with pytest.raises(ConfigError, match="unknown component 'finanse'"):
        manager.fault("finanse", "down", root=sandbox.root)
    with pytest.raises(SandboxError, match="unknown fault mode 'exploded'"):
        manager.fault("finance", "exploded", root=sandbox.root)
    with pytest.raises(SandboxError, match=r"kafka cannot be made 'unhealthy'.*supports: down"):
        manager.fault("kafka", "unhealthy", root=sandbox.root)


def test_redis_needs_a_password_and_acl_users_keep_to_their_prefix(sandbox: SandboxState) -> None:
    port = sandbox.ports["redis"]
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=LOCAL, port=port).ping()
    auth = redis.Redis(host=LOCAL, port=port, username="svc-auth", password=sandbox.secret("redis_auth"))
    auth.set("auth:session:1", "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        auth.set("finance:ledger", "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        auth.flushall()


def test_metrics_and_gateway_graphql(healthy: SandboxState) -> None:
    _get(healthy, "crm", "/health")
    metrics = _get(healthy, "crm", "/metrics").text
    assert 'http_requests_total{code="200",method="GET",path="/health"}' in metrics
    subgraphs = httpx.post(
        f"http://{LOCAL}:{healthy.ports['api-gateway']}/graphql",
        json={"query": "{ _gateway { subgraphs { name status } } }"},
    ).json()
    assert {s["name"] for s in subgraphs["data"]["_gateway"]["subgraphs"]} == set(
        load_inventory().get("api-gateway").subgraphs
    )
    manager.fault("finance", "down", root=healthy.root)
    degraded = httpx.post(
        f"http://{LOCAL}:{healthy.ports['api-gateway']}/graphql", json={"query": "{}"}
    ).json()
    assert {s["name"]: s["status"] for s in degraded["data"]["_gateway"]["subgraphs"]}["finance"] == "down"
    assert "finance" in degraded["errors"][0]["message"]


def test_seeded_erp_data_is_consistent(sandbox: SandboxState) -> None:
    def query(db: str, sql: str):
        with psycopg.connect(
            host=LOCAL,
            port=sandbox.ports["postgres"],
            dbname=db,
            user="vextrus_admin",
            password=sandbox.secret("postgres_password"),
        ) as conn:
            return conn.execute(sql).fetchone()

    count, wrong_vat = query(
        "vextrus_finance",
        "SELECT count(*), count(*) FILTER "
        "(WHERE vat_amount <> round(net_amount * 0.15, 2) OR gross_amount <> net_amount + vat_amount) "
        "FROM invoices",
    )
    assert count > 0 and wrong_vat == 0
    debit, credit = query("vextrus_finance", "SELECT sum(debit), sum(credit) FROM journal_lines")
    assert debit == credit > 0
    assert query("vextrus_auth", "SELECT count(*) FROM users")[0] > 0
    assert query("vextrus_scm", "SELECT count(*) FROM purchase_orders")[0] > 0
    assert query("vextrus_master_data", "SELECT count(*) FROM customers")[0] > 0
    databases = {c.database for c in load_inventory().services() if c.database}
    for db in databases:
        assert query(db, "SELECT count(*) FROM outbox_events")[0] > 0


def test_cli_status_fault_and_heal(healthy: SandboxState) -> None:
    assert run_cli("sandbox", "fault", "scm", "down").returncode == 0
    status = run_cli("sandbox", "status")
    assert status.returncode == 0 and "scm" in status.stdout and "down" in status.stdout
    bad = run_cli("sandbox", "fault", "scm", "melted")
    assert bad.returncode == 2 and "unknown fault mode 'melted'" in bad.stderr
    healed = run_cli("sandbox", "heal")
    assert healed.returncode == 0 and "scm" in healed.stdout


def test_up_is_idempotent(sandbox: SandboxState) -> None:
    again = manager.up(sandbox.root)
    assert again.services_pid == sandbox.services_pid and again.ports == sandbox.ports
