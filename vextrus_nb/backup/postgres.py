"""pg_dump and pg_restore, in directory format with parallel jobs, and the
table statistics that prove a restore: row count and content checksum.

The dump and the statistics read one snapshot: a session exports it
(pg_export_snapshot) and pg_dump --snapshot imports it, so the counts in the
manifest describe exactly the rows in the dump even while the service writes.
The password reaches pg_dump through PGPASSWORD, never its command line.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from vextrus_nb.backup.manifest import TableEntry
from vextrus_nb.errors import BackupError

USER_TABLES = """
SELECT schemaname, tablename FROM pg_tables
WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2
"""
# Order-independent: the sum of a 64-bit hash of each row's text. Equal sums with equal counts
# after a restore mean the same rows came back (a restore that loses or alters rows changes both).
TABLE_STATS = "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text FROM {} AS t"


@dataclass(frozen=True)
class PostgresLogin:
    host: str
    port: int
    user: str
    password: str = field(repr=False)
    bindir: Path

    def connect(self, database: str, autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            dbname=database,
            user=self.user,
            password=self.password,
            autocommit=autocommit,
            connect_timeout=10,
            application_name="vextrus-nb-backup",
        )

    def tool_env(self) -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "10"}

    def tool_args(self, database: str) -> list[str]:
        return ["-h", self.host, "-p", str(self.port), "-U", self.user, "-d", database]


def server_version(login: PostgresLogin) -> str:
    with login.connect("postgres") as conn:
        row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"


def table_stats(conn: psycopg.Connection) -> dict[str, TableEntry]:
    stats = {}
    for schema, table in conn.execute(USER_TABLES).fetchall():
        name = sql.Identifier(schema, table)
        row = conn.execute(sql.SQL(TABLE_STATS).format(name)).fetchone()
        stats[f"{schema}.{table}"] = TableEntry(rows=int(row[0]), checksum=str(row[1]))  # type: ignore[index]
    return stats


def _run_tool(args: list[str], login: PostgresLogin, what: str) -> None:
    done = subprocess.run(args, env=login.tool_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(f"{what} failed (exit {done.returncode}): {detail[-1] if detail else 'no output'}")


@dataclass(frozen=True)
class DumpTimings:
    dump_s: float  # pg_dump itself
    statistics_s: float  # the table counts and checksums: verification data, on top of the dump


def dump_database(
    login: PostgresLogin, database: str, target: Path, jobs: int = 2
) -> tuple[dict[str, TableEntry], DumpTimings]:
    """pg_dump -Fd -j into `target`, then the table statistics of the same snapshot.

    The statistics run after the dump, not beside it: on a small machine they would compete
    with pg_dump's jobs for the same cores, and apart they can be measured on their own."""
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)  # pg_dump creates only the last level
    with login.connect(database, autocommit=False) as snapshot_session:
        snapshot_session.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        snapshot_session.read_only = True
        row = snapshot_session.execute("SELECT pg_export_snapshot()").fetchone()
        snapshot = str(row[0]) if row else ""
        dump = subprocess.run(
            [
                str(login.bindir / "pg_dump"),
                "-Fd",
                "-j",
                str(jobs),
                "--snapshot",
                snapshot,
                "-f",
                str(target),
                *login.tool_args(database),
            ],
            env=login.tool_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if dump.returncode != 0:
            last = dump.stderr.strip().splitlines()
            raise BackupError(
                f"pg_dump of {database} failed (exit {dump.returncode}): {last[-1] if last else ''}"
            )
        dumped = time.perf_counter()
        stats = table_stats(snapshot_session)  # still the dump's snapshot: the same rows
    return stats, DumpTimings(dumped - started, time.perf_counter() - dumped)


def restore_database(login: PostgresLogin, source: Path, database: str, owner: str, jobs: int = 2) -> float:
    """CREATE DATABASE `database` OWNER `owner`, then pg_restore -j into it. It must not exist yet."""
    started = time.perf_counter()
    with login.connect("postgres") as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(owner))
        )
    try:
        _run_tool(
            [
                str(login.bindir / "pg_restore"),
                "-j",
                str(jobs),
                "--exit-on-error",
                *login.tool_args(database),
                str(source),
            ],
            login,
            f"pg_restore into {database}",
        )
    except BackupError:
        drop_database(login, database)  # a half-restored scratch database is worth nothing
        raise
    return time.perf_counter() - started


def database_exists(login: PostgresLogin, database: str) -> bool:
    with login.connect("postgres") as admin:
        return (
            admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone() is not None
        )


def database_owner(login: PostgresLogin, database: str) -> str:
    with login.connect("postgres") as admin:
        row = admin.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", [database]
        ).fetchone()
    if row is None:
        raise BackupError(f"database {database} does not exist")
    return str(row[0])


def drop_database(login: PostgresLogin, database: str) -> None:
    with login.connect("postgres") as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


def swap_in(login: PostgresLogin, restored: str, live: str, keep_as: str) -> None:
    """Make the verified copy the live database; keep the old one under `keep_as` (nothing is lost).
    New logins to the live database are refused first, then its sessions are ended, since a
    database cannot be renamed while in use; its services reconnect to the restored copy."""
    quoted = {name: sql.Identifier(name) for name in (restored, live, keep_as)}
    with login.connect("postgres") as admin:
        admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(quoted[live]))
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                [live],
            )
            deadline = time.monotonic() + 10
            while admin.execute("SELECT 1 FROM pg_stat_activity WHERE datname = %s", [live]).fetchone():
                if time.monotonic() > deadline:
                    raise BackupError(f"sessions on {live} did not end within 10 s; nothing was swapped")
                time.sleep(0.05)  # a terminated backend takes a moment to exit
            admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(quoted[live], quoted[keep_as]))
        except Exception:
            admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(quoted[live]))
            raise
        try:
            admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(quoted[restored], quoted[live]))
        except Exception:  # put the old database back where the services look for it
            admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(quoted[keep_as], quoted[live]))
            admin.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(quoted[live]))
            raise
