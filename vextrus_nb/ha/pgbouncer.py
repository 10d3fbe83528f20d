"""PgBouncer: where the services' connections go, and how a failover moves them without
restarting a service. The pooler's `[databases]` section names the backend; repointing rewrites
that section and asks PgBouncer to RELOAD (its admin console), which sends new server
connections to the new primary while clients stay connected to the pooler.

The admin console speaks only PostgreSQL's simple query protocol, hence ClientCursor and
autocommit (psycopg's own advice, psycopg#819)."""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from vextrus_nb.errors import PoolerError, first_line

ADMIN_DATABASE = "pgbouncer"
# How long the oldest queued client must have waited for a pool to count as saturated. A client
# waits a moment whenever a pool opens a server connection (after PgBouncer starts, or a backend
# comes back): a saturated pool is one whose clients keep waiting, not one caught mid-connect.
SATURATED_AFTER_S = 1.0


@dataclass(frozen=True)
class Pool:
    database: str
    user: str
    clients_active: int
    clients_waiting: int
    servers_active: int
    servers_idle: int
    max_wait_s: float

    @property
    def saturated(self) -> bool:
        """Clients queue for a server connection, the oldest for SATURATED_AFTER_S or more: the
        pool is too small for its load."""
        return self.clients_waiting > 0 and self.max_wait_s >= SATURATED_AFTER_S


def _console(admin_dsn: str, timeout_s: float) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(
            admin_dsn,
            dbname=ADMIN_DATABASE,
            autocommit=True,
            cursor_factory=psycopg.ClientCursor,
            connect_timeout=max(1, round(timeout_s)),
        )
    except psycopg.Error as exc:
        raise PoolerError(f"PgBouncer's console refused: {first_line(exc)}") from None


def show(admin_dsn: str, what: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """`SHOW <what>` on the admin console, as rows keyed by column name."""
    with _console(admin_dsn, timeout_s) as conn, conn.cursor() as cur:
        cur.execute(f"SHOW {what}")
        columns = [c.name for c in cur.description or []]
        return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]


def pools(admin_dsn: str, timeout_s: float = 5.0) -> list[Pool]:
    """Every pool but the console's own."""
    return [
        Pool(
            database=row["database"],
            user=row["user"],
            clients_active=int(row["cl_active"]),
            clients_waiting=int(row["cl_waiting"]),
            servers_active=int(row["sv_active"]),
            servers_idle=int(row["sv_idle"]),
            max_wait_s=float(row["maxwait"]) + float(row.get("maxwait_us", 0)) / 1e6,
        )
        for row in show(admin_dsn, "POOLS", timeout_s)
        if row["database"] != ADMIN_DATABASE
    ]


def backend(config_path: Path) -> tuple[str, int]:
    """The host and port the configuration sends the wildcard database (`*`) to."""
    entry = _read(config_path)["databases"].get("*", "")
    fields = dict(part.split("=", 1) for part in entry.split() if "=" in part)
    if "host" not in fields or "port" not in fields:
        raise PoolerError(f"{config_path}: [databases] has no `* = host=... port=...` entry")
    return fields["host"], int(fields["port"])


def repoint(config_path: Path, host: str, port: int, admin_dsn: str, timeout_s: float = 5.0) -> None:
    """Send new server connections to host:port: rewrite `[databases]`, RELOAD, then RECONNECT so
    idle server connections to the old backend are replaced as soon as each is released.
    A link is followed: the file PgBouncer reads is rewritten, not the link replaced."""
    config_path = config_path.resolve()
    config = _read(config_path)
    config["databases"]["*"] = f"host={host} port={port}"
    _write_atomically(config_path, config)
    with _console(admin_dsn, timeout_s) as conn:
        for command in ("RELOAD", "RECONNECT"):
            try:
                conn.execute(command)
            except psycopg.Error as exc:
                raise PoolerError(f"PgBouncer refused {command}: {first_line(exc)}") from None


def _read(config_path: Path) -> configparser.ConfigParser:
    config = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    config.optionxform = str  # type: ignore[assignment,method-assign]  # keep keys' case (typeshed: a method)
    if not config.read(config_path):
        raise PoolerError(f"no PgBouncer configuration at {config_path}")
    return config


def _write_atomically(config_path: Path, config: configparser.ConfigParser) -> None:
    """PgBouncer may read the file at any moment (a RELOAD from elsewhere): never half-written."""
    scratch = config_path.with_suffix(".ini.tmp")
    with open(scratch, "w") as handle:
        config.write(handle)
    stat = config_path.stat()
    os.chown(scratch, stat.st_uid, stat.st_gid)
    scratch.chmod(stat.st_mode & 0o777)
    os.replace(scratch, config_path)
