"""The sandbox's real servers (issue 18): which component each one serves, the ports it is
given, and starting and stopping them for the sandbox's services process (control.py), which
owns them as its children for the sandbox's lifetime.

Every server keeps its ports and its data directory (under <sandbox>/servers/) for the life of
the sandbox, so `fault X down` then `heal X` restarts the same server where clients expect it,
with whatever it stores on disk: RabbitMQ's mnesia, the S3 stand-in's objects, Temporal's
SQLite, Prometheus's TSDB. (Tansu, the Kafka-protocol broker, has memory storage only in the
build that installs here: its topics are recreated by `heal`, see restore_kafka_topics.)

A record of every running server's process group is kept in servers.json beside the state
file, so the manager can still stop them if the services process itself was killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vextrus_nb.config import Inventory
from vextrus_nb.sandbox import observability, real_servers, traefik
from vextrus_nb.sandbox.real_servers import RealServer, Starter
from vextrus_nb.sandbox.supervisor import group_alive
from vextrus_nb.sandbox_state import SandboxState

SERVERS_DIR = "servers"
SERVERS_RECORD = "servers.json"
FAULT_STOP_GRACE_S = 10.0
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class RealComponent:
    """One real server of the sandbox: the component it is, the inventory components whose
    ports it listens on (role -> component), and the extra ports it needs (role names)."""

    component: str
    server: str
    component_ports: dict[str, str]
    extra_ports: tuple[str, ...] = ()


REAL_COMPONENTS: dict[str, RealComponent] = {
    c.component: c
    for c in (
        RealComponent("zookeeper", "zookeeper", {"main": "zookeeper"}),
        RealComponent("kafka", "tansu", {"main": "kafka"}),
        RealComponent("rabbitmq", "rabbitmq", {"main": "rabbitmq"}, ("dist", "epmd")),
        RealComponent("minio", "s3", {"main": "minio", "tls": "minio-tls"}),
        RealComponent("temporal", "temporal", {"main": "temporal", "ui": "temporal-ui"}, ("http", "metrics")),
        RealComponent("prometheus", "prometheus", {"main": "prometheus"}),
        RealComponent("alertmanager", "alertmanager", {"main": "alertmanager"}),
        RealComponent(
            "traefik", "traefik", {"api": "traefik", "web": "traefik-web", "websecure": "traefik-websecure"}
        ),
    )
}
"""Component -> its real server. temporal-ui is the Temporal dev server's UI port; minio-tls the
S3 server's HTTPS listener over the same objects."""

SERVED_BY = {port_of: c.component for c in REAL_COMPONENTS.values() for port_of in c.component_ports.values()}
"""Every component name a real server answers for (temporal-ui: temporal) -> the server's component."""

EXTRA_PORT_NAMES = ("traefik-web", "traefik-websecure", "minio-tls")
"""Ports the sandbox allocates beside the inventory's components: Traefik's public entrypoints,
and the object store's HTTPS listener (pgBackRest's S3 repository, which speaks only TLS)."""


def is_real(component: str) -> bool:
    return component in SERVED_BY


def extra_port_roles() -> list[tuple[str, str]]:
    """(component, role) of every port a real server needs that no component name carries."""
    return [(c.component, role) for c in REAL_COMPONENTS.values() for role in c.extra_ports]


def server_ports(component: str, ports: dict[str, int], extra: dict[str, dict[str, int]]) -> dict[str, int]:
    """The ports (by role) the component's real server listens on."""
    spec = REAL_COMPONENTS[component]
    chosen = {role: ports[name] for role, name in spec.component_ports.items() if name in ports}
    return {**chosen, **extra.get(component, {})}


class RealPlatform:
    """The running real servers of one sandbox, started and stopped on demand (thread-safe:
    the services process starts them in parallel, and a heal may come while a sweep runs)."""

    def __init__(
        self,
        root: Path,
        ports: dict[str, int],
        extra_ports: dict[str, dict[str, int]],
        credentials: dict[str, dict[str, str]],
        options: dict[str, Callable[[], dict[str, Any]]] | None = None,
    ):
        self.root = root
        self.ports = ports
        self.extra_ports = extra_ports
        self.credentials = credentials
        self.options = options or {}
        self.servers: dict[str, RealServer] = {}
        self._lock = threading.Lock()
        self._component_locks = {name: threading.Lock() for name in REAL_COMPONENTS}

    # -- one server ---------------------------------------------------------------
    def start(self, component: str) -> RealServer:
        """Start the component's server (no-op when it runs); raises ServerNotReady/ServerUnavailable."""
        with self._component_locks[component]:
            current = self.servers.get(component)
            if current is not None and current.running():
                return current
            if current is not None:  # it died on its own: reap what is left of it
                current.stop(grace=2.0)
            server = self._starter(component)()
            with self._lock:
                self.servers[component] = server
                self._write_record()
            return server

    def _starter(self, component: str) -> Callable[[], RealServer]:
        start = SANDBOX_STARTERS.get(component) or real_servers.STARTERS[component]
        kwargs: dict[str, Any] = {"ports": server_ports(component, self.ports, self.extra_ports)}
        if component in self.credentials:
            kwargs["credentials"] = self.credentials[component]
        if component in self.options:  # computed at each start: e.g. Prometheus's scrape targets
            kwargs.update(self.options[component]())
        root = self.root / SERVERS_DIR
        return lambda: start(root, timeout=START_TIMEOUT_S, **kwargs)

    def stop(self, component: str, grace: float = FAULT_STOP_GRACE_S) -> bool:
        """Stop the component's server; False when it was not running."""
        with self._component_locks[component]:
            server = self.servers.pop(component, None)
            if server is None:
                return False
            server.stop(grace=grace)
            with self._lock:
                self._write_record()
            return True

    def running(self, component: str) -> bool:
        server = self.servers.get(component)
        return server is not None and server.running()

    # -- all of them --------------------------------------------------------------
    def start_all(self, components: list[str]) -> dict[str, float]:
        """Start these servers at once (RabbitMQ's ~8 s is the critical path, not the sum);
        seconds each took to get ready. If one fails, the others are stopped and it raises."""
        with ThreadPoolExecutor(max_workers=max(1, len(components))) as pool:
            futures = {name: pool.submit(self.start, name) for name in components}
            errors = []
            for future in futures.values():
                try:
                    future.result()
                except Exception as exc:
                    errors.append(exc)
        if errors:
            self.stop_all()
            raise errors[0]
        return {name: self.servers[name].main.ready_after_s or 0.0 for name in components}

    def stop_all(self, grace: float = FAULT_STOP_GRACE_S) -> None:
        with ThreadPoolExecutor(max_workers=max(1, len(self.servers))) as pool:
            list(pool.map(lambda name: self.stop(name, grace), list(self.servers)))

    def status(self) -> dict[str, dict[str, Any]]:
        rows = {}
        for component in REAL_COMPONENTS:
            server = self.servers.get(component)
            rows[component] = {
                "server": REAL_COMPONENTS[component].server,
                "running": server is not None and server.running(),
                "pid": server.main.pid if server else None,
                "rss_bytes": server.rss_bytes() if server else 0,
            }
        return rows

    def _write_record(self) -> None:
        """Every running server's process groups, for the manager's last-resort cleanup."""
        record = {name: [p.pgid for p in server.processes] for name, server in self.servers.items()}
        path = self.root / SERVERS_RECORD
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, path)


def kill_recorded(root: Path) -> list[int]:
    """SIGKILL every process group servers.json still names (the services process is gone, so
    nothing else will stop them); the groups that were still alive."""
    path = root / SERVERS_RECORD
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    killed = []
    for groups in record.values():
        for pgid in groups:
            if group_alive(pgid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGKILL)
                    killed.append(pgid)
    return killed


# ---------------------------------------------------------------- what each server is given

RABBITMQ_USER = "vextrus"  # parameters/environments/sandbox.yaml `rabbitmq.user`
CREDENTIAL_SECRETS = {
    "minio": {"access_key": "minio_access_key", "secret_key": "minio_secret_key"},
    "rabbitmq": {"password": "rabbitmq_password"},
}
"""Component -> its credentials by the sandbox secret that holds each (written at `up`)."""


def credentials(state: SandboxState) -> dict[str, dict[str, str]]:
    given = {
        component: {key: state.secret(secret) for key, secret in names.items()}
        for component, names in CREDENTIAL_SECRETS.items()
    }
    given["rabbitmq"]["user"] = RABBITMQ_USER
    return given


def server_handle(state: SandboxState, component: str) -> RealServer:
    """A handle on the sandbox's running server (its ports, credentials, endpoint) for the
    protocol helpers of real_servers.py (s3_client, amqp_connection, ...): what provisioning and
    the tests talk to it through, without owning its process."""
    spec = REAL_COMPONENTS[component]
    ports = {role: state.ports[name] for role, name in spec.component_ports.items() if name in state.ports}
    extra: dict[str, Any] = {}
    if component == "minio":
        extra = {"endpoint": f"http://{real_servers.LOOPBACK}:{ports['main']}"}
        if "tls" in ports:
            extra["tls_endpoint"] = f"https://localhost:{ports['tls']}"
            extra["ca_file"] = s3_certificate(state)
    return RealServer(
        component, [], ports, state.root, credentials=credentials(state).get(component, {}), extra=extra
    )


def s3_certificate(state: SandboxState) -> Path:
    """The certificate the S3 server's HTTPS listener serves (made at its first start)."""
    return state.root / SERVERS_DIR / "s3" / "tls" / "edge.crt"


EVIDENCE_PATH = "/metrics/evidence"
"""Where the services process serves the ledger's evidence as metrics (evidence/metrics.py)."""
ALERTS_WEBHOOK_PATH = "/alerts/webhook"
"""Where the services process takes Alertmanager's notifications (the sandbox's pager)."""


def _start_prometheus(
    root: Path, timeout: float, ports: dict[str, int], platform_ports: dict[str, int], **given: Any
) -> RealServer:
    """`ports` are the server's own (by role); platform_ports every component's, to scrape."""
    return observability.start_prometheus_for(
        root, platform_ports, port=ports["main"], timeout=timeout, **given
    )


def _start_alertmanager(root: Path, timeout: float, ports: dict[str, int], **given: Any) -> RealServer:
    return observability.start_alertmanager_for(root, port=ports["main"], timeout=timeout, **given)


def _start_traefik(
    root: Path, timeout: float, ports: dict[str, int], platform_ports: dict[str, int], variant: str
) -> RealServer:
    return traefik.start_traefik_for(
        root,
        variant,
        platform_ports,
        web_port=ports["web"],
        websecure_port=ports["websecure"],
        api_port=ports["api"],
        timeout=timeout,
    )


SANDBOX_STARTERS: dict[str, Starter] = {
    "prometheus": _start_prometheus,
    "alertmanager": _start_alertmanager,
    "traefik": _start_traefik,
}
"""Where the sandbox's server differs from real_servers.STARTERS: Prometheus scrapes the whole
platform with the project's alert rules, Alertmanager pages the services process, Traefik
routes the services as the deployment variant says (planted or hardened)."""


def options(state: SandboxState, inventory: Inventory) -> dict[str, Callable[[], dict[str, Any]]]:
    """Per-server start options that depend on the rest of the platform."""
    control = f"127.0.0.1:{state.control_port}"

    def prometheus() -> dict[str, Any]:
        return {
            "platform_ports": state.ports,
            "inventory": inventory,
            "alertmanager_port": state.ports.get("alertmanager"),
            "evidence_address": control,
            "evidence_path": EVIDENCE_PATH,
            "traefik_metrics_port": state.ports.get("traefik"),  # on its internal entrypoint
        }

    def alertmanager() -> dict[str, Any]:
        # The runbooks' alert receiver too, once `sandbox up --control` runs one.
        receiver = state.extra.get("alert_receiver_url")
        return {
            "webhook_url": f"http://{control}{ALERTS_WEBHOOK_PATH}",
            "more_webhooks": (receiver,) if receiver else (),
        }

    def traefik_options() -> dict[str, Any]:
        return {"platform_ports": state.ports, "variant": deployment_variant(state.root)}

    return {"prometheus": prometheus, "alertmanager": alertmanager, "traefik": traefik_options}


DEFAULT_VARIANT = "planted"


def deployment_variant(root: Path) -> str:
    """The sandbox's deployment variant (deploy/VARIANT, written by the manager before the
    services process starts and whenever it changes)."""
    marker = root / "deploy" / "VARIANT"
    return marker.read_text().strip() if marker.is_file() else DEFAULT_VARIANT
