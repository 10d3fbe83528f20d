"""The real servers' own probe kinds (kafka, s3, temporal, amqp, zookeeper), each against its real
server from vextrus_nb.sandbox.real_servers: up when healthy, and down, named, when the server is
stopped, the login is wrong, or the port is held by a listener that hangs or speaks something else.
Then probe_targets: which kind each component gets from an environment's logins and simulations."""

from __future__ import annotations

import shutil
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from vextrus_nb.config import load_environment, load_inventory
from vextrus_nb.ports import free_ports
from vextrus_nb.probe_targets import probe_targets
from vextrus_nb.probes import ProbeResult, ProbeTarget, sweep
from vextrus_nb.sandbox import real_servers as rs

from .helpers import REPO

pytestmark = pytest.mark.servers

LOCAL = "127.0.0.1"
TIMEOUT = 2.0
PROTOCOL_KINDS = ("kafka", "s3", "temporal", "amqp", "zookeeper")


def _one(target: ProbeTarget, timeout: float = TIMEOUT) -> ProbeResult:
    return sweep([target], timeout=timeout)[0]


def _assert_no_secret(result: ProbeResult, *secrets: str) -> None:
    shown = repr(result) + repr(result.as_row())
    for secret in secrets:
        assert secret not in shown


# ---------------------------------------------------------------- the servers (one each per module)


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rs.RealServer]:
    with rs.running("kafka", tmp_path_factory.mktemp("kafka")) as server:
        yield server


@pytest.fixture(scope="module")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rs.RealServer]:
    with rs.running("zookeeper", tmp_path_factory.mktemp("zookeeper")) as server:
        yield server


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rs.RealServer]:
    with rs.running("minio", tmp_path_factory.mktemp("s3")) as server:
        rs.s3_client(server).create_bucket(Bucket="backups")
        yield server


@pytest.fixture(scope="module")
def temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rs.RealServer]:
    with rs.running("temporal", tmp_path_factory.mktemp("temporal"), ui=False) as server:
        yield server


@pytest.fixture(scope="module")
def rabbitmq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rs.RealServer]:
    with rs.running("rabbitmq", tmp_path_factory.mktemp("rabbitmq")) as server:
        yield server


def _target(kind: str, port: int, **login: Any) -> ProbeTarget:
    return ProbeTarget(kind, kind, LOCAL, port, **login)  # type: ignore[arg-type]


def _s3_target(server: rs.RealServer, port: int | None = None, **keys: str) -> ProbeTarget:
    keys = {
        "access_key": server.credentials["access_key"],
        "secret_key": server.credentials["secret_key"],
        **keys,
    }
    return _target("s3", port or server.port, **keys)


def _amqp_target(server: rs.RealServer, port: int | None = None, password: str | None = None) -> ProbeTarget:
    login = {"user": server.credentials["user"], "password": password or server.credentials["password"]}
    return _target("amqp", port or server.port, **login)


# ---------------------------------------------------------------- listeners that are not the server


class _Listener:
    """A TCP listener on loopback that is no real server: `hang` accepts and never answers (reads
    until the prober hangs up), `chatter` answers whatever it is sent with an HTTP 400 and closes."""

    def __init__(self, behaviour: str) -> None:
        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                try:
                    if behaviour == "hang":
                        while self.request.recv(4096):
                            pass
                    else:
                        self.request.recv(4096)
                        self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass

        self.server = socketserver.ThreadingTCPServer((LOCAL, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def hanging() -> Iterator[_Listener]:
    listener = _Listener("hang")
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def chatter() -> Iterator[_Listener]:
    listener = _Listener("chatter")
    yield listener
    listener.close()


def _login_free_targets(port: int) -> list[ProbeTarget]:
    """One target per protocol kind on one port, with a login where the kind takes one."""
    login = {
        "s3": {"access_key": "AKTEST", "secret_key": "s3-secret-xyz"},
        "amqp": {"user": "u", "password": "pw-xyz"},
    }
    return [_target(kind, port, **login.get(kind, {})) for kind in PROTOCOL_KINDS]


# ---------------------------------------------------------------- healthy


def test_kafka_probe_up_reads_the_metadata(kafka: rs.RealServer) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka.extra["bootstrap"], "log_level": 0})
    admin.create_topics([NewTopic("orders", num_partitions=1, replication_factor=1)])["orders"].result(10)
    del admin  # Tansu waits for open connections when it stops
    result = _one(_target("kafka", kafka.port))
    assert (result.status, result.detail) == ("up", "Kafka metadata: 1 broker, 1 topic"), result
    assert result.address == f"kafka://{LOCAL}:{kafka.port}"


def test_zookeeper_probe_up_names_the_mode(zookeeper: rs.RealServer) -> None:
    result = _one(_target("zookeeper", zookeeper.port))
    assert result.status == "up", result
    assert result.detail.startswith("ZooKeeper 3.") and result.detail.endswith(
        "answered imok, mode standalone"
    )
    assert result.address == f"zookeeper://{LOCAL}:{zookeeper.port}"


def test_s3_probe_up_lists_the_buckets(s3: rs.RealServer) -> None:
    result = _one(_s3_target(s3))
    assert (result.status, result.detail) == ("up", "S3 answered ListBuckets: 1 bucket(s)"), result
    assert result.address == f"http://{LOCAL}:{s3.port}"
    _assert_no_secret(result, s3.credentials["secret_key"], s3.credentials["access_key"])


def test_temporal_probe_up_names_the_namespace_state(temporal: rs.RealServer) -> None:
    result = _one(_target("temporal", temporal.port))
    assert (result.status, result.detail) == ("up", "Temporal namespace default: REGISTERED"), result
    assert result.address == f"temporal://{LOCAL}:{temporal.port}/default"


def test_amqp_probe_up_logs_in(rabbitmq: rs.RealServer) -> None:
    result = _one(_amqp_target(rabbitmq))
    user = rabbitmq.credentials["user"]
    assert result.status == "up", result
    assert result.detail.startswith(f"AMQP login as {user} accepted (RabbitMQ 3."), result
    assert result.address == f"amqp://{user}@{LOCAL}:{rabbitmq.port}"
    _assert_no_secret(result, rabbitmq.credentials["password"])


# ---------------------------------------------------------------- broken: wrong login or configuration


def test_s3_probe_down_with_wrong_keys_names_the_s3_error(s3: rs.RealServer) -> None:
    wrong_secret = _one(_s3_target(s3, secret_key="not-the-secret-key"))
    assert wrong_secret.status == "down" and not wrong_secret.timed_out
    assert wrong_secret.detail == "S3 refused ListBuckets: SignatureDoesNotMatch (HTTP 403)", wrong_secret
    assert wrong_secret.http_status == 403
    unknown_key = _one(_s3_target(s3, access_key="AKNOSUCHKEY0"))
    assert unknown_key.status == "down" and "InvalidAccessKeyId" in unknown_key.detail, unknown_key
    _assert_no_secret(wrong_secret, "not-the-secret-key", s3.credentials["secret_key"])
    _assert_no_secret(unknown_key, "AKNOSUCHKEY0", s3.credentials["secret_key"])


def test_s3_probe_down_without_keys(s3: rs.RealServer) -> None:
    result = _one(_target("s3", s3.port))
    assert result.status == "down" and "no S3 access and secret key" in result.detail


def test_amqp_probe_down_with_wrong_password(rabbitmq: rs.RealServer) -> None:
    result = _one(_amqp_target(rabbitmq, password="not-the-password"))
    assert result.status == "down" and not result.timed_out
    assert "ACCESS_REFUSED" in result.detail, result
    _assert_no_secret(result, "not-the-password", rabbitmq.credentials["password"])


def test_temporal_probe_down_for_an_unknown_namespace(temporal: rs.RealServer) -> None:
    target = ProbeTarget("temporal", "temporal", LOCAL, temporal.port, namespace="no-such-namespace")
    result = _one(target)
    assert result.status == "down" and "NOT_FOUND" in result.detail and "no-such-namespace" in result.detail


def test_probe_targets_never_show_their_secrets() -> None:
    target = ProbeTarget(
        "minio", "s3", LOCAL, 9000, password="pa55-xyz", access_key="AK-xyz-123", secret_key="sk-xyz-456"
    )
    for secret in ("pa55-xyz", "AK-xyz-123", "sk-xyz-456"):
        assert secret not in repr(target) and secret not in target.address


# ---------------------------------------------------------------- broken: stopped, hung, something else


@pytest.mark.parametrize("component", ["kafka", "zookeeper", "minio", "temporal"])
def test_probe_up_then_down_when_its_server_stops(component: str, tmp_path: Path) -> None:
    """A server of its own (cheap to start), stopped under the probe: refused, named, not a hang."""
    kwargs = {"ui": False} if component == "temporal" else {}
    with rs.running(component, tmp_path, **kwargs) as server:
        target = _s3_target(server) if component == "minio" else _target(component, server.port)
        assert _one(target).status == "up"
    down = _one(target)
    assert (down.status, down.timed_out) == ("down", False), down
    assert "refused" in down.detail.lower() or "Could not connect" in down.detail, down


def test_amqp_probe_down_when_refused(rabbitmq: rs.RealServer) -> None:
    # RabbitMQ takes ~8 s to start: a port nothing listens on stands for the stopped server.
    result = _one(_amqp_target(rabbitmq, port=free_ports(1)[0]))
    assert (result.status, result.timed_out) == ("down", False), result
    assert "ConnectionRefusedError" in result.detail


def test_a_listener_that_never_answers_times_out_for_every_kind(hanging: _Listener) -> None:
    """All five at once against one hanging port: each costs the one timeout, each says it hung."""
    results = sweep(_login_free_targets(hanging.port), timeout=1.0)
    for result in results:
        assert (result.status, result.timed_out) == ("down", True), result
        assert result.detail == "no answer within 1s", result


def test_a_listener_speaking_something_else_is_named_for_every_kind(chatter: _Listener) -> None:
    by_kind = {r.kind: r for r in sweep(_login_free_targets(chatter.port), timeout=TIMEOUT)}
    assert all(r.status == "down" and not r.timed_out for r in by_kind.values()), by_kind
    assert "Invalid response size" in by_kind["kafka"].detail
    assert by_kind["s3"].detail == "S3 refused ListBuckets: 400 (HTTP 400)"
    assert "h2 protocol error" in by_kind["temporal"].detail
    assert "IncompatibleProtocolError" in by_kind["amqp"].detail
    assert by_kind["zookeeper"].detail == "ZooKeeper ruok answered 'HTTP/1.1 400 Bad Request', not 'imok'"
    for result in by_kind.values():
        _assert_no_secret(result, "s3-secret-xyz", "pw-xyz")


def test_zookeeper_that_is_not_serving_is_down(zookeeper: rs.RealServer) -> None:
    """The state ZooKeeper is in before it serves (imok, but srvr says it is not serving), told by
    a stand-in: the real one passes through it too fast to catch."""
    answers = {b"ruok": b"imok", b"srvr": b"This ZooKeeper instance is not currently serving requests\n"}

    class NotServing(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(answers.get(self.request.recv(4), b""))

    server = socketserver.ThreadingTCPServer((LOCAL, 0), NotServing)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        result = _one(_target("zookeeper", server.server_address[1]))
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert result.status == "down" and not result.timed_out
    assert (
        "srvr reports no Mode: 'This ZooKeeper instance is not currently serving requests'" in result.detail
    )


# ---------------------------------------------------------------- probe_targets: which kind for whom


@pytest.fixture
def parameters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A parameters dir of this test's own (the real inventory, environments written by the test)."""
    folder = tmp_path / "parameters"
    (folder / "environments").mkdir(parents=True)
    shutil.copy(REPO / "parameters" / "inventory.yaml", folder / "inventory.yaml")
    monkeypatch.setenv("VEXTRUS_PARAMETERS_DIR", str(folder))
    return folder


def _write_environment(parameters: Path, name: str, secrets: dict[str, str], **settings: Any) -> None:
    """An environment on loopback whose secrets are files holding `secrets`' values."""
    refs = {}
    for secret, value in secrets.items():
        path = parameters / f"{secret}.secret"
        path.write_text(value)
        refs[secret] = {"file": str(path)}
    document = {"name": name, "driver": "compose", "default_host": LOCAL, "secrets": refs, **settings}
    (parameters / "environments" / f"{name}.yaml").write_text(yaml.safe_dump(document))


_LOGINS = {
    "rabbitmq": {"user": "vextrus", "password_secret": "rabbitmq_password"},
    "object_store": {"access_key_secret": "minio_access_key", "secret_key_secret": "minio_secret_key"},
}
_SECRET_VALUES = {
    "rabbitmq_password": "rabbit-pw-123",
    "minio_access_key": "AKMINIO123",
    "minio_secret_key": "minio-sk-456",
}
_INFRASTRUCTURE = ["zookeeper", "kafka", "rabbitmq", "minio", "temporal", "elasticsearch"]


def _kinds(name: str) -> dict[str, tuple[str, str | None]]:
    inventory = load_inventory()
    env = load_environment(name, inventory)
    targets = probe_targets(env, inventory, [inventory.get(c) for c in _INFRASTRUCTURE])
    for target in targets:
        for secret in _SECRET_VALUES.values():
            assert secret not in repr(target) and secret not in target.address
    return {t.component: (t.kind, t.path) for t in targets}


def test_probe_targets_speak_the_protocols_where_the_logins_are(parameters: Path) -> None:
    _write_environment(parameters, "real", _SECRET_VALUES, **_LOGINS)
    assert _kinds("real") == {
        "zookeeper": ("zookeeper", None),
        "kafka": ("kafka", None),
        "rabbitmq": ("amqp", None),
        "minio": ("s3", None),
        "temporal": ("temporal", None),
        "elasticsearch": ("http", "/_cluster/health"),
    }
    inventory = load_inventory()
    targets = {t.component: t for t in probe_targets(load_environment("real", inventory), inventory)}
    assert (targets["rabbitmq"].user, targets["rabbitmq"].password) == ("vextrus", "rabbit-pw-123")
    assert (targets["minio"].access_key, targets["minio"].secret_key) == ("AKMINIO123", "minio-sk-456")
    assert targets["temporal"].namespace == "default"


def test_probe_targets_probe_a_simulation_over_http_or_tcp(parameters: Path) -> None:
    _write_environment(parameters, "simulations", _SECRET_VALUES, simulated=_INFRASTRUCTURE, **_LOGINS)
    assert _kinds("simulations") == {
        "zookeeper": ("tcp", None),
        "kafka": ("tcp", None),
        "rabbitmq": ("tcp", None),
        "minio": ("http", "/minio/health/live"),
        "temporal": ("tcp", None),
        "elasticsearch": ("http", "/_cluster/health"),
    }


def test_probe_targets_fall_back_where_a_login_is_missing(parameters: Path) -> None:
    _write_environment(parameters, "no-logins", {})
    kinds = _kinds("no-logins")
    assert kinds["rabbitmq"] == ("tcp", None)
    assert kinds["minio"] == ("http", "/minio/health/live")  # MinIO's own health path, as staging's
    assert kinds["kafka"] == ("kafka", None)  # no login needed


def test_probe_targets_from_an_environment_reach_the_real_servers(
    parameters: Path,
    kafka: rs.RealServer,
    zookeeper: rs.RealServer,
    s3: rs.RealServer,
    temporal: rs.RealServer,
    rabbitmq: rs.RealServer,
) -> None:
    """The whole way: an environment naming the real servers' ports and logins, swept, all up."""
    secrets = {
        "rabbitmq_password": rabbitmq.credentials["password"],
        "minio_access_key": s3.credentials["access_key"],
        "minio_secret_key": s3.credentials["secret_key"],
    }
    ports = {
        "kafka": kafka.port,
        "zookeeper": zookeeper.port,
        "minio": s3.port,
        "temporal": temporal.port,
        "rabbitmq": rabbitmq.port,
    }
    logins = {
        **_LOGINS,
        "rabbitmq": {"user": rabbitmq.credentials["user"], "password_secret": "rabbitmq_password"},
    }
    _write_environment(parameters, "loopback", secrets, ports=ports, **logins)
    inventory = load_inventory()
    targets = probe_targets(
        load_environment("loopback", inventory), inventory, [inventory.get(c) for c in ports]
    )
    results = sweep(targets, timeout=TIMEOUT)
    assert {r.component: (r.kind, r.status) for r in results} == {
        "kafka": ("kafka", "up"),
        "zookeeper": ("zookeeper", "up"),
        "minio": ("s3", "up"),
        "temporal": ("temporal", "up"),
        "rabbitmq": ("amqp", "up"),
    }, results
    for result in results:
        _assert_no_secret(result, *secrets.values())
