"""The sandbox's own control store, apart from the platform it runs: a second small PostgreSQL
cluster (the shared ledger and leases) and SeaweedFS (the versioned evidence bucket), and the
settings file a "host" points VEXTRUS_CONTROL at.

Stopping the platform's PostgreSQL (`sandbox fault postgres down`) leaves this one up: the
runbooks that fix an outage must not depend on what is out.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg import sql

from vextrus_nb.control import evidence_bucket, schema
from vextrus_nb.control import settings as control_settings
from vextrus_nb.pg_conninfo import conninfo
from vextrus_nb.postgres_binaries import find_bindir
from vextrus_nb.sandbox import real_servers, supervisor
from vextrus_nb.sandbox.postgres_cluster import PostgresCluster
from vextrus_nb.sandbox.real_servers import LOOPBACK, RealServer

OWNER = "vextrus_control_owner"
RUNNER = "vextrus_runner"
DATABASE = "vextrus_control"
BUCKET = "vextrus-evidence"
SETTINGS_NAME = "control.yaml"


@dataclass
class ControlStore:
    """The running control store: its servers, and the settings file naming them."""

    postgres: PostgresCluster
    bucket_server: RealServer
    settings_path: Path
    owner_password: str

    @property
    def owner_dsn(self) -> str:
        return conninfo(LOOPBACK, self.postgres.port, OWNER, self.owner_password, DATABASE)

    def runner_dsn(self) -> str:
        """The runners' own login, as every host's settings give it."""
        control = self.control()
        assert control.shared is not None
        db = control.shared.postgres
        return conninfo(
            LOOPBACK, db.port, db.user, control.secret(db.password, "postgres.password"), DATABASE
        )

    def control(self) -> control_settings.Control:
        raw = yaml.safe_load(self.settings_path.read_text())
        return control_settings.Control(
            str(self.settings_path),
            control_settings.SharedStoreSettings.model_validate(raw),
            self.settings_path.parent,
        )

    def stop(self) -> None:
        self.bucket_server.stop()
        self.postgres.destroy()


def _write_secret(directory: Path, name: str, value: str) -> str:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return f"secrets/{name}"


def start(home: Path, lease_ttl_s: float = control_settings.DEFAULT_LEASE_TTL_S) -> ControlStore:
    """Start both servers, install the schema for the runners' role, make the versioned bucket,
    and write home/control.yaml (secrets in home/secrets, referenced by file)."""
    home.mkdir(parents=True, exist_ok=True)
    owner_password, runner_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    [pg_port] = supervisor.free_ports(1)
    cluster = PostgresCluster.create(find_bindir(), pg_port, OWNER, owner_password)
    bucket_server: RealServer | None = None
    try:
        cluster.start()
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
        secrets_dir = home / "secrets"
        settings: dict[str, Any] = {
            "store": "shared",
            "postgres": {
                "host": LOOPBACK,
                "port": pg_port,
                "dbname": DATABASE,
                "user": RUNNER,
                "password": {"file": _write_secret(secrets_dir, "control_runner_password", runner_password)},
            },
            "s3": {
                "endpoint": bucket_server.extra["endpoint"],
                "bucket": BUCKET,
                "access_key": {
                    "file": _write_secret(
                        secrets_dir, "control_s3_access_key", bucket_server.credentials["access_key"]
                    )
                },
                "secret_key": {
                    "file": _write_secret(
                        secrets_dir, "control_s3_secret_key", bucket_server.credentials["secret_key"]
                    )
                },
            },
            "lease_ttl_s": lease_ttl_s,
        }
        settings_path = home / SETTINGS_NAME
        settings_path.write_text(yaml.safe_dump(settings, sort_keys=False))
        store = ControlStore(cluster, bucket_server, settings_path, owner_password)
        evidence_bucket.ensure_bucket(store.control())
    except BaseException:
        if bucket_server is not None:
            bucket_server.stop()
        cluster.destroy()
        raise
    return store
