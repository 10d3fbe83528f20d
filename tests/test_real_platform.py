"""The sandbox runs every component that has a real server as that server (issue 18): status
says which are real, `fault X down` stops the real process (its port refuses), and `heal X`
brings it back on the same port with what it keeps on disk."""

from __future__ import annotations

import ipaddress
import re
import socket
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from vextrus_nb import checks, triage
from vextrus_nb.config import Environment, load_environment, load_inventory
from vextrus_nb.errors import SandboxError
from vextrus_nb.probe_targets import probe_targets
from vextrus_nb.probes import ProbeResult, sweep
from vextrus_nb.sandbox import manager, real_platform, real_servers, supervisor
from vextrus_nb.sandbox.real_platform import REAL_COMPONENTS, SERVED_BY
from vextrus_nb.sandbox.real_servers import LOOPBACK
from vextrus_nb.sandbox_state import SandboxState
from vextrus_nb.triage import TriageSettings

from .helpers import run_cli, wait_until

GIB = 2**30


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return False
    except OSError:
        return True


def test_status_says_which_components_are_real_and_the_whole_sandbox_fits_in_2_gib(
    healthy: SandboxState,
) -> None:
    info = manager.status(healthy.root)
    rows = info["components"]
    real = {name for name, row in rows.items() if row["real"]}
    assert real == {"postgres", "redis", "temporal-ui", *REAL_COMPONENTS}
    env = load_environment("sandbox")
    simulated = {name for name, row in rows.items() if row["server"] == "simulated"}
    assert simulated == set(env.simulated)
    assert all(row["running"] for row in rows.values()), [n for n, r in rows.items() if not r["running"]]
    assert all(rows[name]["rss_bytes"] > 0 for name in REAL_COMPONENTS)
    assert 0 < info["total_rss_bytes"] < 2 * GIB, info["total_rss_bytes"]


# Generous, as tests/test_triage.py's: a loaded CI machine's healthy answers are not findings.
STEADY = {"latency_budget_ms": 4000.0, "timeout_s": 10.0}
LIVE_CATEGORIES = ("infrastructure", "services", "observability", "security")


def _env() -> Environment:
    return load_environment("sandbox", load_inventory())


def _failed_checks_naming(component: str) -> list[str]:
    result = checks.run_checklist(_env(), load_inventory(), checks.select(categories=LIVE_CATEGORIES))
    return [r.check.id for r in result.results if r.status == "failed" and component in r.subjects]


def _sweep() -> list[ProbeResult]:
    inventory = load_inventory()
    env = load_environment("sandbox", inventory)
    return sweep(probe_targets(env, inventory), timeout=3.0)


def _dependents(component: str) -> list[str]:
    """The services whose readiness checks the component, in sweep (start) order."""
    inventory = load_inventory()
    return [
        name
        for name in inventory.start_order
        if inventory.components[name].kind == "service"
        and component in {d.name for d in inventory.infrastructure_dependencies(name)}
    ]


def test_a_healthy_sandbox_sweeps_up_in_every_real_servers_protocol(healthy: SandboxState) -> None:
    results = {r.component: r for r in _sweep()}
    assert all(r.status != "down" for r in results.values()), [
        r for r in results.values() if r.status == "down"
    ]
    kinds = {name: results[name].kind for name in ("kafka", "zookeeper", "rabbitmq", "minio", "temporal")}
    assert kinds == {
        "kafka": "kafka",
        "zookeeper": "zookeeper",
        "rabbitmq": "amqp",
        "minio": "s3",
        "temporal": "temporal",
    }
    assert "AMQP login as vextrus accepted" in results["rabbitmq"].detail


def _s3_keeps_an_object(state: SandboxState) -> Callable[[], None]:
    client = real_servers.s3_client(real_platform.server_handle(state, "minio"))
    bucket, key = f"survives-{uuid.uuid4().hex[:8]}", "evidence.txt"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key=key, Body=b"kept on disk")

    def after() -> None:
        fresh = real_servers.s3_client(real_platform.server_handle(state, "minio"))
        assert fresh.get_object(Bucket=bucket, Key=key)["Body"].read() == b"kept on disk"

    return after


def _rabbitmq_keeps_a_durable_message(state: SandboxState) -> Callable[[], None]:
    import pika

    queue = f"survives-{uuid.uuid4().hex[:8]}"
    connection = real_servers.amqp_connection(real_platform.server_handle(state, "rabbitmq"))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)
    channel.basic_publish("", queue, b"kept", pika.BasicProperties(delivery_mode=2))
    connection.close()

    def after() -> None:
        again = real_servers.amqp_connection(real_platform.server_handle(state, "rabbitmq"))
        _, _, body = again.channel().basic_get(queue, auto_ack=True)
        again.close()
        assert body == b"kept"

    return after


def _temporal_keeps_a_namespace(state: SandboxState) -> Callable[[], None]:
    import asyncio
    from datetime import timedelta

    from google.protobuf.duration_pb2 import Duration
    from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
    from temporalio.client import Client

    namespace = f"survives-{uuid.uuid4().hex[:8]}"
    address = f"{LOOPBACK}:{state.ports['temporal']}"

    async def register() -> None:
        client = await Client.connect(address)
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
            ),
            timeout=timedelta(seconds=10),
        )

    asyncio.run(register())

    def after() -> None:
        answer = real_servers.describe_namespace(address, namespace, timeout=10)
        assert answer.namespace_info.name == namespace

    return after


def _nothing_to_keep(state: SandboxState) -> Callable[[], None]:
    return lambda: None


KEEPS: dict[str, Callable[[SandboxState], Callable[[], None]]] = {
    "minio": _s3_keeps_an_object,
    "rabbitmq": _rabbitmq_keeps_a_durable_message,
    "temporal": _temporal_keeps_a_namespace,
}


@pytest.mark.parametrize("component", list(REAL_COMPONENTS))
def test_fault_down_stops_the_real_server_and_heal_brings_it_back_with_its_data(
    healthy: SandboxState, component: str
) -> None:
    after_heal = KEEPS.get(component, _nothing_to_keep)(healthy)
    port = healthy.ports[component]
    before = manager.status(healthy.root)["components"][component]

    manager.fault(component, "down", root=healthy.root)
    row = manager.status(healthy.root)["components"][component]
    assert not row["running"] and row["fault"]["mode"] == "down"
    assert _refuses(port), f"{component} still accepts connections on {port}"
    # The sweep (what smoke runs) names it, in its own protocol; exactly its dependents' readiness
    # turns red, naming it, and no other service's does.
    swept = {r.component: r for r in _sweep()}
    assert swept[component].status == "down", swept[component]
    same_server = [n for n, served_by in SERVED_BY.items() if served_by == component and n != component]
    assert [n for n, r in swept.items() if r.status == "down" and n != component] == [
        n for n in swept if n in same_server or n in _dependents(component)
    ], {n: r.detail for n, r in swept.items() if r.status == "down"}
    for name in _dependents(component):
        assert component in swept[name].detail, swept[name]
    # The checklist's checks for it fail naming it; triage ranks it the root cause over its dependents.
    failed = _failed_checks_naming(component)
    assert failed, f"no check failed naming {component}"
    result = triage.triage(_env(), load_inventory(), TriageSettings(**STEADY))  # type: ignore[arg-type]
    causes = [f.component for f in result.incident if f.root_cause]
    assert causes == [component], [(f.component, f.symptom, f.root_cause) for f in result.incident]
    assert set(_dependents(component)) <= set(result.top.affected), result.top  # type: ignore[union-attr]

    manager.heal(component, root=healthy.root)
    row = manager.status(healthy.root)["components"][component]
    assert row["running"] and row["port"] == port and not _refuses(port)
    assert row.get("rss_bytes", 0) > 0 and before["port"] == port
    after_heal()


def test_a_port_of_another_server_cannot_be_faulted_alone(healthy: SandboxState) -> None:
    with pytest.raises(SandboxError, match="temporal-ui is served by temporal's real server"):
        manager.fault("temporal-ui", "down", root=healthy.root)
    with pytest.raises(SandboxError, match=r"kafka cannot be made 'slow'.*supports: down"):
        manager.fault("kafka", "slow", root=healthy.root)
    assert load_inventory().get("kafka").probe == "kafka"


def _loopback(address: str) -> bool:
    """127.0.0.0/8, ::1, or 127.x mapped into IPv6 (a JVM's listener: [::ffff:127.0.0.1])."""
    host = ipaddress.ip_address(address.rsplit(":", 1)[0].strip("[]"))
    mapped = getattr(host, "ipv4_mapped", None)
    return host.is_loopback or bool(mapped and mapped.is_loopback)


def test_every_socket_the_sandbox_listens_on_is_loopback(healthy: SandboxState) -> None:
    """What `ss` sees of every process the sandbox runs (PostgreSQL, Redis, the services process
    and every real server under it, each server's helpers: epmd, JVMs, the Erlang node)."""
    postmaster = int((Path(healthy.pg_datadir) / "postmaster.pid").read_text().split()[0])
    ours = set().union(
        *(supervisor.descendants(p) for p in (healthy.services_pid, healthy.redis_pid, postmaster) if p)
    )
    listing = subprocess.run(["ss", "-Hltnup"], capture_output=True, text=True, check=True).stdout
    listening: dict[str, set[int]] = {}
    for line in listing.splitlines():
        fields = line.split()
        pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
        if pids & ours:
            listening[fields[4]] = pids & ours
    assert len(listening) > 40, listening  # every component, entrypoint and helper
    outside = {address: pids for address, pids in listening.items() if not _loopback(address)}
    assert outside == {}, outside


def test_phase_2_creates_the_domain_topics_on_the_real_broker(healthy: SandboxState, outputs: Path) -> None:
    from confluent_kafka.admin import AdminClient

    from vextrus_nb.deploy import kafka_topics

    admin = AdminClient({"bootstrap.servers": f"{LOOPBACK}:{healthy.ports['kafka']}", "log_level": 0})
    wanted = kafka_topics.wanted_topics(load_inventory())
    for future in admin.delete_topics(wanted, operation_timeout=10).values():
        future.result(10)
    wait_until(lambda: not set(wanted) & set(admin.list_topics(timeout=5).topics), what="topics deleted")
    try:
        done = run_cli("run", "deploy/02-message-queues", "--env", "sandbox", "-p", "dry_run=false")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        settings = kafka_topics.topic_settings()
        topics = admin.list_topics(timeout=5).topics  # a Kafka client of its own, not the runbook's
        assert set(wanted) <= set(topics)
        for name in wanted:
            assert len(topics[name].partitions) == settings.partitions, name
            assert all(
                len(p.replicas) == settings.replication_factor for p in topics[name].partitions.values()
            )
    finally:  # the sandbox's variant settles the topics again (planted: replication factor 1)
        manager.use_deployment(manager.deployment_variant(healthy.root) or "planted", healthy.root)
