"""The sandbox's own control store, apart from the platform it runs: a second small PostgreSQL
cluster (the shared ledger and leases) and SeaweedFS (the versioned evidence bucket), and the
settings file a "host" points VEXTRUS_CONTROL at.

Stopping the platform's PostgreSQL (`sandbox fault postgres down`) leaves this one up: the
runbooks that fix an outage must not depend on what is out. `sandbox fault control down` takes
this store away for every host (both servers stopped; `heal` starts them on their data again);
the tests cut a single host off through a fault proxy of their own instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import sql

from vextrus_nb.control import evidence_bucket, schema
from vextrus_nb.control import settings as control_settings
from vextrus_nb.errors import SandboxError
from vextrus_nb.pg_conninfo import conninfo
from vextrus_nb.postgres_binaries import find_bindir
from vextrus_nb.sandbox import ha_servers, real_servers, supervisor
from vextrus_nb.sandbox.postgres_cluster import PostgresCluster
from vextrus_nb.sandbox.real_servers import LOOPBACK
from vextrus_nb.sandbox_state import pid_alive

OWNER = "vextrus_control_owner"
RUNNER = "vextrus_runner"
DATABASE = "vextrus_control"
BUCKET = "vextrus-evidence"
NAMESPACE = "vextrus-runbooks"
STATE_NAME = "control-store.json"


@dataclass
class ControlStore:
    """The running control store: its servers, where they keep their data, and the settings."""

    home: Path
    postgres: PostgresCluster
    bucket_endpoint: str
    bucket_pid: int
    bucket_command: list[str]
    settings_path: Path
    temporal_pid: int = 0
    temporal_address: str = ""
    receiver_pid: int = 0

    @property
    def owner_dsn(self) -> str:
        password = (self.settings_path.parent / "secrets" / "control_owner_password").read_text().strip()
        return conninfo(LOOPBACK, self.postgres.port, OWNER, password, DATABASE)

    @property
    def bucket_port(self) -> int:
        return int(self.bucket_endpoint.rsplit(":", 1)[1])

    def runner_dsn(self) -> str:
        """The runners' own login, as every host's settings give it."""
        control = self.control()
        assert control.shared is not None
        db = control.shared.postgres
        password = control.secret(db.password, "postgres.password")
        return conninfo(LOOPBACK, db.port, db.user, password, DATABASE)

    def control(self) -> control_settings.Control:
        raw = yaml.safe_load(self.settings_path.read_text())
        return control_settings.Control(
            str(self.settings_path),
            control_settings.SharedStoreSettings.model_validate(raw),
            self.settings_path.parent,
        )

    def save(self) -> None:
        """Where its servers and files are, in home/control-store.json (for a later process)."""
        (self.home / STATE_NAME).write_text(
            json.dumps(
                {
                    "pg_bindir": str(self.postgres.bindir),
                    "pg_datadir": str(self.postgres.datadir),
                    "pg_port": self.postgres.port,
                    "bucket_endpoint": self.bucket_endpoint,
                    "bucket_pid": self.bucket_pid,
                    "bucket_command": self.bucket_command,
                    "settings": str(self.settings_path),
                    "temporal_pid": self.temporal_pid,
                    "temporal_address": self.temporal_address,
                    "receiver_pid": self.receiver_pid,
                },
                indent=2,
            )
        )

    @classmethod
    def load(cls, home: Path) -> ControlStore | None:
        path = home / STATE_NAME
        if not path.exists():
            return None
        saved: dict[str, Any] = json.loads(path.read_text())
        bindir, datadir = Path(saved["pg_bindir"]), Path(saved["pg_datadir"])
        cluster = PostgresCluster(bindir, datadir, saved["pg_port"], OWNER)
        return cls(
            home, cluster, saved["bucket_endpoint"], saved["bucket_pid"], saved["bucket_command"],
            Path(saved["settings"]), saved.get("temporal_pid", 0), saved.get("temporal_address", ""),
            saved.get("receiver_pid", 0),
        )  # fmt: skip

    # -- an outage of the whole store, and its end ------------------------------------
    def is_up(self) -> bool:
        return self.postgres.is_running() and supervisor.port_open(self.bucket_port)

    def take_down(self) -> None:
        _kill_bucket_server(self.bucket_pid)
        self.postgres.stop()

    def bring_back(self) -> None:
        if not self.postgres.is_running():
            self.postgres.start()
        if not supervisor.port_open(self.bucket_port):
            process = supervisor.start_ready(
                "seaweedfs", self.bucket_command, self.home, lambda: _bucket_answers(self), 60.0,
                workdir=self.home / "seaweedfs",
            )  # fmt: skip
            self.bucket_pid = supervisor.disown(process)
            self.save()

    def stop(self) -> None:
        """Every server stopped and the database's files removed (the rest are under home)."""
        _kill_bucket_server(self.bucket_pid)
        ha_servers.stop_daemon(self.receiver_pid, timeout=5)
        ha_servers.stop_daemon(self.temporal_pid, timeout=5)
        self.postgres.destroy()

    def remove(self) -> None:
        """Stopped, and every file of its own gone (the sandbox's `down`)."""
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def _kill_bucket_server(pid: int) -> None:
    """SIGKILL, as when its host dies: SeaweedFS's graceful stop waits ~15 s on its own gRPC
    clients, and what it wrote is in the kernel's hands already (only a machine crash loses it)."""
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        ha_servers.stop_daemon(pid)  # returns once it is gone


def _bucket_answers(store: ControlStore) -> bool:
    evidence_bucket.client(store.control()).head_bucket(Bucket=BUCKET)
    return True


def _write_secret(directory: Path, name: str, value: str) -> str:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return f"secrets/{name}"


def start(
    home: Path,
    lease_ttl_s: float = control_settings.DEFAULT_LEASE_TTL_S,
    settings_path: Path | None = None,
) -> ControlStore:
    """Start both servers (they outlive the caller: stop them with ControlStore.stop), install
    the schema for the runners' role, make the versioned bucket, and write the settings
    (home/control.yaml unless given; secrets in its directory's secrets/, referenced by file)."""
    home.mkdir(parents=True, exist_ok=True)
    settings_path = settings_path or home / "control.yaml"
    secrets_dir = settings_path.parent / "secrets"
    owner_password, runner_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    [pg_port] = supervisor.free_ports(1)
    cluster = PostgresCluster.create(find_bindir(), pg_port, OWNER, owner_password)
    bucket_pid = temporal_pid = 0
    try:
        cluster.start()
        _write_secret(secrets_dir, "control_owner_password", owner_password)
        with psycopg.connect(conninfo(LOOPBACK, pg_port, OWNER, owner_password), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(RUNNER), sql.Literal(runner_password)
                )
            )
        with psycopg.connect(
            conninfo(LOOPBACK, pg_port, OWNER, owner_password, DATABASE), autocommit=True
        ) as conn:
            schema.install(conn, RUNNER)
        bucket_server = real_servers.start_seaweedfs(home)
        bucket_pid = supervisor.disown(bucket_server.main)
        # Its own Temporal, not the platform's: `sandbox fault temporal down` must not take the
        # team's workers with it.
        temporal = real_servers.start_temporal(home, ui=False, namespaces=(NAMESPACE,))
        temporal_pid = supervisor.disown(temporal.main)
        keys = bucket_server.credentials

        def secret(name: str, value: str) -> dict[str, str]:
            return {"file": _write_secret(secrets_dir, name, value)}

        settings: dict[str, Any] = {
            "store": "shared",
            "postgres": {
                "host": LOOPBACK,
                "port": pg_port,
                "dbname": DATABASE,
                "user": RUNNER,
                "password": secret("control_runner_password", runner_password),
            },
            "s3": {
                "endpoint": bucket_server.extra["endpoint"],
                "bucket": BUCKET,
                "access_key": secret("control_s3_access_key", keys["access_key"]),
                "secret_key": secret("control_s3_secret_key", keys["secret_key"]),
            },
            "lease_ttl_s": lease_ttl_s,
            "temporal": {"address": temporal.extra["address"], "namespace": NAMESPACE},
        }
        settings_path.write_text(yaml.safe_dump(settings, sort_keys=False))
        endpoint = bucket_server.extra["endpoint"]
        store = ControlStore(
            home, cluster, endpoint, bucket_pid, bucket_server.main.command, settings_path,
            temporal_pid, temporal.extra["address"],
        )  # fmt: skip
        evidence_bucket.ensure_bucket(store.control())
        store.save()
    except BaseException:
        _kill_bucket_server(bucket_pid)
        ha_servers.stop_daemon(temporal_pid, timeout=5)
        cluster.destroy()
        raise
    return store


def sandbox_home(root: Path) -> Path | None:
    """Where the sandbox's control store keeps its servers' files, if it has one: a private
    directory outside the sandbox's operator-facing files, as PostgreSQL's data directory is
    (SeaweedFS's identities file holds the bucket's key)."""
    pointer = root / STATE_NAME
    return Path(pointer.read_text().strip()) if pointer.exists() else None


def of_sandbox(root: Path) -> ControlStore | None:
    home = sandbox_home(root)
    return ControlStore.load(home) if home is not None else None


SANDBOX_APPROVERS = ("alice", "bob", "carol")  # parameters/environments/sandbox-gated.yaml


def write_approver_keys(root: Path) -> Path:
    """An Ed25519 key pair per approver of `sandbox-gated` under root/approvers (the private
    key 0600 beside the public one: on a real deployment each approver keeps their own)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    directory = root / "approvers"
    directory.mkdir(mode=0o700, exist_ok=True)
    for name in SANDBOX_APPROVERS:
        private = directory / f"{name}.pem"
        if private.exists():
            continue
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        private.write_bytes(pem)
        private.chmod(0o600)
        (directory / f"{name}.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return directory


def for_sandbox(root: Path) -> ControlStore:
    """The sandbox's control store, started if it is not running; its settings are
    root/control.yaml, its secrets in the sandbox's secret store; the approvers' keys of
    `sandbox-gated` in root/approvers."""
    write_approver_keys(root)
    store = of_sandbox(root)
    if store is not None:
        if not store.is_up():
            raise SandboxError(
                "the sandbox's control store is down (`vextrus-nb sandbox fault control down`?): "
                "`vextrus-nb sandbox heal control` starts it again"
            )
        return store
    home = Path(tempfile.mkdtemp(prefix="vextrus-control-"))
    (root / STATE_NAME).write_text(str(home))
    return start(home, settings_path=root / "control.yaml")


def wire_into_sandbox(store: ControlStore, state: Any) -> str:
    """The platform's side of the control store: failed runs page through the sandbox's
    Alertmanager (paging in the settings), and its alerts reach the runbooks' alert receiver,
    started here on a free port (a daemon, like the store's servers). Returns the receiver's URL."""
    import sys

    from vextrus_nb.sandbox import observability, real_platform

    alertmanager = f"http://{LOOPBACK}:{state.ports['alertmanager']}"
    raw = yaml.safe_load(store.settings_path.read_text())
    raw["paging"] = {"alertmanager_url": alertmanager}
    store.settings_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    if store.receiver_pid and pid_alive(store.receiver_pid):
        return str(state.extra["alert_receiver_url"])
    [port] = supervisor.free_ports(1)
    command = [sys.executable, "-m", "vextrus_nb.cli", "alert-receiver", "--port", str(port)]
    env = {"VEXTRUS_CONTROL": str(store.settings_path), "VEXTRUS_SANDBOX_DIR": str(state.root)}
    process = supervisor.start_ready(
        "alert-receiver", command, store.home, lambda: supervisor.port_open(port), 30.0, env=env
    )
    store.receiver_pid = supervisor.disown(process)
    store.save()
    url = f"http://{LOOPBACK}:{port}/"
    state.extra["alert_receiver_url"] = url
    state.save()
    sandbox_webhook = f"http://{LOOPBACK}:{state.control_port}{real_platform.ALERTS_WEBHOOK_PATH}"
    servers = state.root / real_platform.SERVERS_DIR  # where the services process runs them
    observability.route_alerts_also_to(servers, alertmanager, sandbox_webhook, url)
    return url
