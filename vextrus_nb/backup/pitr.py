"""Point-in-time restore of the whole cluster with pgBackRest, proven.

Verify the repository first (a damaged file or a gap in the archived WAL stops it before
anything is restored), restore into a scratch data directory, start it on a free loopback
port (PostgreSQL replays WAL to the target, then promotes), and prove it:

- the heartbeat rows it holds are the live cluster's, row for row (count and checksum), and
  its newest heartbeat is the recovery point it really reached (never past a time target);
- every chosen database's tables, rows and checksums side by side with the live cluster's
  (a table that changed since the target is expected; one missing from the copy is not).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from vextrus_nb.backup import heartbeat, pgbackrest, postgres
from vextrus_nb.config import Component
from vextrus_nb.errors import BackupError

# The heartbeat writes every second; a copy recovered to a time holds a beat this close to it,
# unless the writer was stopped (then the gap is reported, not failed).
HEARTBEAT_SLACK_S = 5.0


@dataclass
class PitrResult:
    target: str  # an ISO 8601 time, or "latest"
    backup_label: str = ""
    repo: int = 1  # the repository restored from
    port: int = 0
    datadir: str = ""
    restore_s: float = 0.0
    start_s: float = 0.0
    prove_s: float = 0.0
    last_heartbeat: datetime | None = None
    heartbeat_rows: int = 0
    recovery_gap_s: float | None = None  # target (or the live newest beat) minus the last beat
    tables: list[dict[str, Any]] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    kept: bool = False  # the scratch copy was kept (for inspection, or asked)

    @property
    def proven(self) -> bool:
        return not self.mismatches

    def summary(self) -> dict[str, Any]:
        return {
            "pitr_target": self.target,
            "pitr_backup_label": self.backup_label,
            "pitr_repo": self.repo,
            "pitr_restore_s": round(self.restore_s, 2),
            "pitr_start_s": round(self.start_s, 2),
            "pitr_last_heartbeat": self.last_heartbeat.isoformat() if self.last_heartbeat else None,
            "pitr_recovery_gap_s": None if self.recovery_gap_s is None else round(self.recovery_gap_s, 2),
            "pitr_proven": self.proven,
            "pitr_tables_changed_since": sum(1 for t in self.tables if not t["same as live"]),
        }

    def frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.tables)

    def table(self) -> Any:
        """The recovery point and the tables beside the live ones."""
        from vextrus_nb.display import note

        if not self.tables:
            return note(self.headline())
        return self.frame()

    def headline(self) -> str:
        beat = self.last_heartbeat.isoformat() if self.last_heartbeat else "none"
        gap = f", {self.recovery_gap_s:.1f} s before the target" if self.recovery_gap_s is not None else ""
        return (
            f"backup {self.backup_label} (repo{self.repo}) restored to {self.target} in "
            f"{self.restore_s:.1f} s, recovered and promoted in {self.start_s:.1f} s; "
            f"last heartbeat {beat}{gap}; "
            + ("proven" if self.proven else "NOT proven: " + "; ".join(self.mismatches[:5]))
        )


def verify_before_restore(stanza: pgbackrest.Stanza, repo: int = 1) -> None:
    """Nothing is restored from a repository with a damaged file or a hole in its WAL."""
    problems = pgbackrest.verify(stanza, repo)
    if problems:
        named = "; ".join(str(p) for p in problems)
        raise BackupError(
            f"pgbackrest repository {repo} of stanza {stanza.name} failed verify, "
            f"nothing was restored: {named}"
        )


def point_in_time_restore(
    stanza: pgbackrest.Stanza,
    bindir: Path,
    live: postgres.PostgresLogin,
    services: list[Component],
    target_time: datetime | None = None,
    backup_label: str = "",
    keep: bool = False,
    repo: int = 1,
) -> PitrResult:
    """Verify, restore into scratch, recover to `target_time` (None: the newest archived WAL),
    prove against the live cluster, then stop and delete the copy (unless `keep`, or the proof
    failed: then it is stopped and its data directory kept for inspection). `repo`: the
    repository the backup and the WAL come from (2: the S3 one)."""
    result = PitrResult(target=target_time.isoformat() if target_time else "latest", repo=repo)
    verify_before_restore(stanza, repo)
    result.backup_label = backup_label or pgbackrest.choose_backup(stanza, target_time, repo).label
    home = pgbackrest.scratch_home(stanza, f"{int(time.time() * 1000) % 10**9:09d}")
    restored = pgbackrest.restore(
        stanza,
        home / "data",
        bindir,
        target_time,
        result.backup_label,
        databases=[s.database for s in services if s.database],
        repo=repo,
    )
    result.port, result.datadir = restored.port, str(restored.datadir)
    result.restore_s, result.start_s = restored.restore_s, restored.start_s
    try:
        started = time.perf_counter()
        copy = postgres.PostgresLogin(
            "127.0.0.1", restored.port, restored.user, restored.password, restored.bindir
        )
        prove(result, copy, live, services, target_time)
        result.prove_s = time.perf_counter() - started
    finally:
        result.kept = keep or not result.proven
        if result.kept:
            restored.stop()
        else:
            restored.destroy()
    return result


def prove(
    result: PitrResult,
    copy: postgres.PostgresLogin,
    live: postgres.PostgresLogin,
    services: list[Component],
    target_time: datetime | None,
    workers: int | None = None,
) -> None:
    """The recovered cluster at `copy` against the live one: its heartbeats row for row, its
    recovery point, every chosen database's tables side by side (prove_heartbeats, then
    prove_tables)."""
    if prove_heartbeats(result, copy, live, target_time):
        prove_tables(result, copy, live, services, workers)


def prove_heartbeats(
    result: PitrResult,
    copy: postgres.PostgresLogin,
    live: postgres.PostgresLogin,
    target_time: datetime | None,
) -> bool:
    """The recovered cluster's heartbeats equal the live one's row for row, and its newest one is
    the recovery point reached (never past a time target). Before anything writes to the copy:
    a heartbeat written there afterwards would move it. False when it has no heartbeat table."""
    with copy.connect(heartbeat.DATABASE) as conn:
        if not heartbeat.has_table(conn):
            result.mismatches.append(f"{heartbeat.TABLE}: missing from the recovered cluster")
            return False
        recovered = heartbeat.digest(conn)
    with live.connect(heartbeat.DATABASE) as conn:
        same_rows = heartbeat.digest(conn, recovered.last_seq)
        newest_live = heartbeat.digest(conn)
    result.last_heartbeat, result.heartbeat_rows = recovered.last_beat_at, recovered.rows
    if (same_rows.rows, same_rows.checksum) != (recovered.rows, recovered.checksum):
        result.mismatches.append(
            f"{heartbeat.TABLE}: {recovered.rows} rows up to seq {recovered.last_seq}, the live cluster has "
            f"{same_rows.rows} (or different content)"
        )
    if recovered.last_beat_at is not None:
        reference = target_time or newest_live.last_beat_at
        if reference is not None:
            result.recovery_gap_s = (reference - recovered.last_beat_at).total_seconds()
        if target_time is not None and recovered.last_beat_at > target_time:
            result.mismatches.append(
                f"recovered past the target: last heartbeat {recovered.last_beat_at.isoformat()} "
                f"after {target_time.isoformat()}"
            )
    return True


LiveTables = dict[str, dict[str, postgres.TableEntry]]  # database -> table -> rows and checksum


def live_tables(
    live: postgres.PostgresLogin, services: list[Component], workers: int | None = None
) -> LiveTables:
    """Every chosen database's tables in the live cluster, read `workers` at a time (default: the
    machine's cores): the side of prove_tables a caller may read ahead, while the copy recovers."""
    databases = _biggest_first(live, services)
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        read = {d: pool.submit(_stats, live, d) for d in databases}
        return {d: read[d].result() for d in databases}


def _biggest_first(live: postgres.PostgresLogin, services: list[Component]) -> list[str]:
    """The chosen databases, the biggest first, so the last read to finish is a small one."""
    with live.connect(heartbeat.DATABASE) as conn:
        query = "SELECT datname, pg_database_size(oid) FROM pg_database"
        sizes: dict[str, int] = dict(conn.execute(query).fetchall())
    return sorted((s.database for s in services if s.database), key=lambda d: -sizes.get(d, 0))


def _stats(login: postgres.PostgresLogin, database: str) -> dict[str, postgres.TableEntry]:
    with login.connect(database) as conn:
        return postgres.table_stats(conn)


def prove_tables(
    result: PitrResult,
    copy: postgres.PostgresLogin,
    live: postgres.PostgresLogin,
    services: list[Component],
    workers: int | None = None,
    live_read: LiveTables | None = None,
) -> None:
    """Every chosen database's tables, rows and checksums, in the copy beside the live cluster's
    (`live_read`: read already, by live_tables). Read `workers` at a time (default: the machine's
    cores), each database's copy and live reads apart: the checksums are the server's work, one
    core each."""
    databases = _biggest_first(live, services)

    def copied(database: str) -> dict[str, postgres.TableEntry] | None:
        try:
            return _stats(copy, database)
        except psycopg.Error:
            return None  # missing from the copy: named below

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        copies: dict[str, Future[dict[str, postgres.TableEntry] | None]] = {}
        lives: dict[str, Future[dict[str, postgres.TableEntry]]] = {}
        for database in databases:
            copies[database] = pool.submit(copied, database)
            if live_read is None or database not in live_read:
                lives[database] = pool.submit(_stats, live, database)
        for database in sorted(databases):
            found = copies[database].result()
            now = live_read[database] if database not in lives and live_read else lives[database].result()
            if found is None:
                result.mismatches.append(f"{database}: missing from the recovered cluster")
                continue
            for table in sorted(set(found) | set(now)):
                got, expected = found.get(table), now.get(table)
                if got is None:
                    result.mismatches.append(f"{database}.{table}: missing from the recovered cluster")
                result.tables.append(
                    {
                        "database": database,
                        "table": table,
                        "rows": got.rows if got else None,
                        "live rows": expected.rows if expected else None,
                        "same as live": got == expected,
                    }
                )
