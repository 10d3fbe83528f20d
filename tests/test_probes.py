"""Each probe kind against a real server, up and down, and the sweep's
concurrency: a hanging target costs its own timeout, nobody else's."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from vextrus_nb.probes import ProbeTarget, sweep
from vextrus_nb.sandbox.state import SandboxState, free_ports

LOCAL = "127.0.0.1"


@pytest.fixture
def closed_port() -> int:
    return free_ports(1)[0]


@pytest.fixture
def hanging_ports() -> Iterator[list[int]]:
    """Listening sockets that never accept or answer: the worst kind of dead target."""
    sockets = []
    for _ in range(3):
        sock = socket.socket()
        sock.bind((LOCAL, 0))
        sock.listen(16)
        sockets.append(sock)
    yield [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()


def _one(target: ProbeTarget, timeout: float = 2.0):
    return sweep([target], timeout=timeout)[0]


def test_http_probe_up_reads_the_terminus_body(sandbox: SandboxState) -> None:
    result = _one(ProbeTarget("finance", "http", LOCAL, sandbox.ports["finance"], path="/health/ready"))
    assert result.status == "up" and result.http_status == 200
    assert result.body and result.body["status"] == "ok" and "database" in result.body["info"]


def test_http_probe_down_when_refused(closed_port: int) -> None:
    result = _one(ProbeTarget("finance", "http", LOCAL, closed_port, path="/health"))
    assert result.status == "down" and "ConnectError" in result.detail


def test_http_probe_down_on_terminus_error(healthy: SandboxState) -> None:
    from vextrus_nb.sandbox import manager

    manager.fault("finance", "unhealthy", root=healthy.root)
    result = _one(ProbeTarget("finance", "http", LOCAL, healthy.ports["finance"], path="/health"))
    assert result.status == "down" and result.http_status == 503
    assert "process: fault injected: unhealthy" in result.detail


def test_http_probe_degraded_over_latency_budget(healthy: SandboxState) -> None:
    from vextrus_nb.sandbox import manager

    manager.fault("auth", "slow", root=healthy.root, delay_s=0.3)
    target = ProbeTarget("auth", "http", LOCAL, healthy.ports["auth"], path="/health/live")
    result = sweep([target], timeout=2.0, latency_budget_ms=100)[0]
    assert result.status == "degraded" and "budget 100 ms" in result.detail


def _pg(sandbox: SandboxState, port: int | None = None, password: str | None = None) -> ProbeTarget:
    return ProbeTarget(
        "postgres",
        "postgres",
        LOCAL,
        port or sandbox.ports["postgres"],
        database="postgres",
        user="vextrus_admin",
        password=password or sandbox.secret("postgres_password"),
    )


def test_postgres_probe_up(sandbox: SandboxState) -> None:
    result = _one(_pg(sandbox))
    assert result.status == "up" and "PostgreSQL 1" in result.detail


def test_postgres_probe_down_when_refused_or_wrong_password(sandbox: SandboxState, closed_port: int) -> None:
    assert _one(_pg(sandbox, port=closed_port)).status == "down"
    wrong = _one(_pg(sandbox, password="not-the-password"))
    assert wrong.status == "down" and "password authentication failed" in wrong.detail
    assert "not-the-password" not in wrong.detail


def test_redis_probe_up_with_auth_and_down_without(sandbox: SandboxState) -> None:
    port = sandbox.ports["redis"]
    up = _one(
        ProbeTarget("redis", "redis", LOCAL, port, user="default", password=sandbox.secret("redis_password"))
    )
    assert up.status == "up" and "PING" in up.detail
    no_auth = _one(ProbeTarget("redis", "redis", LOCAL, port))
    assert no_auth.status == "down" and "Authentication" in no_auth.detail


def test_tcp_probe_up_and_down(sandbox: SandboxState, closed_port: int) -> None:
    assert _one(ProbeTarget("kafka", "tcp", LOCAL, sandbox.ports["kafka"])).status == "up"
    assert _one(ProbeTarget("kafka", "tcp", LOCAL, closed_port)).status == "down"


def test_hanging_targets_do_not_delay_the_others(sandbox: SandboxState, hanging_ports: list[int]) -> None:
    timeout = 1.0
    healthy = [
        ProbeTarget(name, "http", LOCAL, sandbox.ports[name], path="/health/live")
        for name in ("auth", "finance", "hr", "crm", "scm", "audit", "workflow", "organization")
    ]
    dead = [
        ProbeTarget(f"dead-{i}", "http", LOCAL, port, path="/health") for i, port in enumerate(hanging_ports)
    ]
    started = time.perf_counter()
    results = sweep([*dead, *healthy], timeout=timeout, concurrency=32)
    elapsed = time.perf_counter() - started
    by_name = {r.component: r for r in results}
    assert all(
        by_name[t.component].status == "down" and "no answer within 1s" in by_name[t.component].detail
        for t in dead
    )
    assert all(by_name[t.component].status == "up" for t in healthy)
    # One after another, three hanging targets alone would take 3 timeouts.
    assert elapsed < 2 * timeout, elapsed
    assert max(by_name[t.component].latency_ms for t in healthy) < timeout * 1000


def test_results_keep_the_order_of_the_targets(sandbox: SandboxState, closed_port: int) -> None:
    targets = [
        ProbeTarget("b", "tcp", LOCAL, closed_port),
        ProbeTarget("a", "tcp", LOCAL, sandbox.ports["kafka"]),
    ]
    assert [r.component for r in sweep(targets)] == ["b", "a"]


def test_probe_target_never_shows_its_password() -> None:
    target = ProbeTarget("postgres", "postgres", LOCAL, 5432, user="u", password="pa55-word-xyz")
    assert "pa55-word-xyz" not in repr(target) and "pa55-word-xyz" not in target.address
