"""Each probe kind against a real server, up and down, and the sweep's
concurrency: a hanging target costs its own timeout, nobody else's."""

from __future__ import annotations

import http.server
import json
import socketserver
import threading
from collections.abc import Iterator
from contextlib import suppress

import pytest

from vextrus_nb.ports import free_ports
from vextrus_nb.probes import ProbeTarget, sweep
from vextrus_nb.sandbox_state import SandboxState

LOCAL = "127.0.0.1"


@pytest.fixture
def closed_port() -> int:
    return free_ports(1)[0]


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


class _HangingServers:
    """HTTP targets that take a request and never answer it, until the prober gives up and hangs up.

    They count how many of their connections are hanging at once, and `witness` is a healthy HTTP
    target that answers only once all of them hang together: if the sweep probed a hanging target's
    neighbours only after it had given up on it, the witness would never be answered."""

    def __init__(self, count: int, witness_wait_s: float) -> None:
        self.hanging = 0
        self.peak = 0
        self.seen_by_witness: list[int] = []
        self._changed = threading.Condition()
        outer = self

        class Hang(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._count(+1)
                try:
                    while self.request.recv(4096):  # read, never answer, until the client hangs up
                        pass
                except OSError:
                    pass
                finally:
                    outer._count(-1)

        class Witness(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer._changed:
                    outer._changed.wait_for(lambda: outer.hanging == count, timeout=witness_wait_s)
                    outer.seen_by_witness.append(outer.hanging)
                body = json.dumps({"status": "ok", "info": {}, "error": {}, "details": {}}).encode()
                with suppress(OSError):  # the prober may have given up on us
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.servers: list[socketserver.ThreadingTCPServer] = [
            socketserver.ThreadingTCPServer((LOCAL, 0), Hang) for _ in range(count)
        ]
        for server in self.servers:
            server.daemon_threads = True
        self.witness = http.server.ThreadingHTTPServer((LOCAL, 0), Witness)
        self.threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for s in [*self.servers, self.witness]
        ]
        for thread in self.threads:
            thread.start()

    def _count(self, change: int) -> None:
        with self._changed:
            self.hanging += change
            self.peak = max(self.peak, self.hanging)
            self._changed.notify_all()

    @property
    def ports(self) -> list[int]:
        return [s.server_address[1] for s in self.servers]

    def close(self) -> None:
        for server in [*self.servers, self.witness]:
            server.shutdown()
            server.server_close()


@pytest.fixture
def hanging_servers() -> Iterator[_HangingServers]:
    servers = _HangingServers(3, witness_wait_s=10.0)
    yield servers
    servers.close()


def test_hanging_targets_do_not_delay_the_others(
    sandbox: SandboxState, hanging_servers: _HangingServers
) -> None:
    timeout = 2.0
    healthy = [
        ProbeTarget(name, "http", LOCAL, sandbox.ports[name], path="/health/live")
        for name in ("auth", "finance", "hr", "crm", "scm", "audit", "workflow", "organization")
    ]
    witness = ProbeTarget("witness", "http", LOCAL, hanging_servers.witness.server_address[1], path="/")
    dead = [
        ProbeTarget(f"dead-{i}", "http", LOCAL, port, path="/health")
        for i, port in enumerate(hanging_servers.ports)
    ]
    results = sweep([*dead, witness, *healthy], timeout=timeout, concurrency=32)
    by_name = {r.component: r for r in results}
    for target in dead:  # each hang is reported as such, by name: timed out, not refused
        result = by_name[target.component]
        assert (result.status, result.timed_out) == ("down", True), result
        assert "no answer within 2s" in result.detail
    assert all(by_name[t.component].status == "up" for t in healthy)
    assert not any(by_name[t.component].timed_out for t in healthy)
    # The three hung at the same time (one timeout for all, not one after another), and a healthy
    # target was answered while all three were hanging: nobody waited for them.
    assert hanging_servers.peak == len(dead)
    assert hanging_servers.seen_by_witness == [len(dead)]
    assert by_name["witness"].status == "up", by_name["witness"]


def test_results_keep_the_order_of_the_targets(sandbox: SandboxState, closed_port: int) -> None:
    targets = [
        ProbeTarget("b", "tcp", LOCAL, closed_port),
        ProbeTarget("a", "tcp", LOCAL, sandbox.ports["kafka"]),
    ]
    assert [r.component for r in sweep(targets)] == ["b", "a"]


def test_probe_target_never_shows_its_password() -> None:
    target = ProbeTarget("postgres", "postgres", LOCAL, 5432, user="u", password="pa55-word-xyz")
    assert "pa55-word-xyz" not in repr(target) and "pa55-word-xyz" not in target.address


class _OneAtATime:
    """An HTTP target that answers one request at a time, each after `answer_s`: probes sent
    together queue behind each other, as they do on the sandbox's one services process."""

    def __init__(self, answer_s: float) -> None:
        class Slow(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                threading.Event().wait(answer_s)  # the server's own work: what latency should show
                body = json.dumps({"status": "ok"}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Sequential(http.server.HTTPServer):
            request_queue_size = 64  # every probe's connection waits in the backlog, none is refused

        self.server = Sequential((LOCAL, 0), Slow)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def targets(self, count: int) -> list[ProbeTarget]:
        port = self.server.server_address[1]
        return [ProbeTarget(f"svc-{i}", "http", LOCAL, port, path="/health") for i in range(count)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_probe_slow_only_for_waiting_its_turn_is_measured_again_alone() -> None:
    server = _OneAtATime(answer_s=0.08)
    try:
        results = sweep(server.targets(8), timeout=2.0, latency_budget_ms=250)
    finally:
        server.close()
    # Eight at once on a one-at-a-time server: the later ones waited 300-640 ms in the queue.
    remeasured = [r for r in results if "measured alone" in r.detail]
    assert len(remeasured) >= 3, results
    assert all(r.status == "up" and r.latency_ms < 250 for r in results), results
    assert all("within the sweep" in r.detail for r in remeasured)


def test_a_component_slow_on_its_own_stays_degraded() -> None:
    server = _OneAtATime(answer_s=0.4)
    try:
        [result] = sweep(server.targets(1), timeout=2.0, latency_budget_ms=250)
    finally:
        server.close()
    assert result.status == "degraded" and result.over_budget and result.latency_ms >= 400
    assert "budget 250 ms" in result.detail and "measured alone" in result.detail


def test_measuring_alone_stays_within_one_timeout_and_never_calls_slow_down() -> None:
    # Two components that take 0.65 of the timeout on their own: there is time to measure the
    # first alone, not the second; the second keeps the sweep's figure (slow, still answering).
    first, second = _OneAtATime(answer_s=0.65), _OneAtATime(answer_s=0.65)
    try:
        results = sweep([*first.targets(1), *second.targets(1)], timeout=1.0, latency_budget_ms=250)
    finally:
        first.close()
        second.close()
    remeasured = [r for r in results if "measured alone" in r.detail]
    assert len(remeasured) == 1, results
    assert all(r.status == "degraded" and r.over_budget for r in results), results
