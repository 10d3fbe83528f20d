"""PostgreSQL streaming replication, read and acted on through SQL: what a failover needs to
know (is the replica streaming, how far behind, which slots hold WAL) and the one action it
takes on the database itself (`pg_promote()`). Process control (kill, start, pg_rewind) is the
driver's; this module only speaks the protocol, so it works the same on any deployment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from vextrus_nb.errors import ReplicationError, first_line


@dataclass(frozen=True)
class Standby:
    """One replica as its primary sees it (pg_stat_replication)."""

    name: str  # application_name: the replica's cluster_name, or what primary_conninfo says
    address: str
    state: str  # streaming, catchup, backup, startup
    sync_state: str
    lag_bytes: int  # primary's current LSN minus what the replica has replayed
    replay_lag_s: float | None  # None when the replica is idle and caught up (PostgreSQL's own NULL)


@dataclass(frozen=True)
class Slot:
    name: str
    active: bool
    retained_bytes: int  # WAL the slot keeps on the primary's disk


@dataclass(frozen=True)
class PrimaryView:
    lsn: str
    standbys: list[Standby]
    slots: list[Slot]

    def streaming(self) -> list[Standby]:
        return [s for s in self.standbys if s.state == "streaming"]


@dataclass(frozen=True)
class ReplicaView:
    """A replica as it sees itself."""

    in_recovery: bool
    receive_lsn: str | None
    replay_lsn: str | None
    replay_paused: bool
    last_replayed_at: datetime | None  # commit time of the last transaction replayed


def _connect(dsn: str, timeout_s: float) -> psycopg.Connection[dict[str, Any]]:
    try:
        return psycopg.connect(
            dsn, connect_timeout=max(1, round(timeout_s)), autocommit=True, row_factory=dict_row
        )
    except psycopg.Error as exc:
        raise ReplicationError(f"cannot connect: {first_line(exc)}") from None


def primary_view(dsn: str, timeout_s: float = 5.0) -> PrimaryView:
    """The primary's replicas and slots; refused (named) when the server is itself a replica."""
    with _connect(dsn, timeout_s) as conn:
        # fetchone() is typed Optional; a SELECT of one expression always returns its one row
        if conn.execute("SELECT pg_is_in_recovery() AS r").fetchone()["r"]:  # type: ignore[index]
            raise ReplicationError("this server is a replica (in recovery), not a primary")
        lsn = conn.execute("SELECT pg_current_wal_lsn()::text AS lsn").fetchone()["lsn"]  # type: ignore[index]
        standbys = [
            Standby(
                name=row["application_name"],
                address=str(row["client_addr"] or "local"),
                state=row["state"],
                sync_state=row["sync_state"],
                lag_bytes=int(row["lag_bytes"] or 0),
                replay_lag_s=row["replay_lag"].total_seconds() if row["replay_lag"] is not None else None,
            )
            for row in conn.execute(
                "SELECT application_name, client_addr, state, sync_state, replay_lag, "
                "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) AS lag_bytes "
                "FROM pg_stat_replication ORDER BY application_name"
            )
        ]
        slots = [
            Slot(row["slot_name"], row["active"], int(row["retained"] or 0))
            for row in conn.execute(
                "SELECT slot_name, active, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) AS retained "
                "FROM pg_replication_slots ORDER BY slot_name"
            )
        ]
    return PrimaryView(lsn=lsn, standbys=standbys, slots=slots)


def replica_view(dsn: str, timeout_s: float = 5.0) -> ReplicaView:
    with _connect(dsn, timeout_s) as conn:
        row = conn.execute(
            "SELECT pg_is_in_recovery() AS in_recovery, pg_last_wal_receive_lsn()::text AS receive_lsn, "
            "pg_last_wal_replay_lsn()::text AS replay_lsn, pg_last_xact_replay_timestamp() AS replayed_at, "
            "CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() <> 'not paused' "
            "ELSE false END AS paused"
        ).fetchone()
    assert row is not None
    return ReplicaView(
        in_recovery=row["in_recovery"],
        receive_lsn=row["receive_lsn"],
        replay_lsn=row["replay_lsn"],
        replay_paused=row["paused"],
        last_replayed_at=row["replayed_at"],
    )


def lsn_difference(dsn: str, later: str, earlier: str, timeout_s: float = 5.0) -> int:
    """Bytes of WAL from `earlier` to `later` (PostgreSQL's own arithmetic on LSNs)."""
    with _connect(dsn, timeout_s) as conn:
        row = conn.execute("SELECT pg_wal_lsn_diff(%s, %s)::bigint AS d", (later, earlier)).fetchone()
    assert row is not None
    return int(row["d"])


def set_replay_paused(dsn: str, paused: bool, timeout_s: float = 5.0) -> None:
    """Pause or resume WAL replay on a replica (the sandbox's "lag the replica" fault)."""
    with _connect(dsn, timeout_s) as conn:
        conn.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")


def promote(dsn: str, wait_s: float = 30.0) -> None:
    """`pg_promote(wait => true)`: returns once the replica accepts writes, raises if it did not."""
    with _connect(dsn, wait_s) as conn:
        # fetchone() is typed Optional; a SELECT of one expression always returns its one row
        if not conn.execute("SELECT pg_is_in_recovery() AS r").fetchone()["r"]:  # type: ignore[index]
            raise ReplicationError("this server is already a primary: nothing to promote")
        promoted = conn.execute("SELECT pg_promote(true, %s) AS done", (max(1, int(wait_s)),)).fetchone()[
            "done"
        ]  # type: ignore[index]
    if not promoted:
        raise ReplicationError(f"pg_promote did not finish within {wait_s:g} s")
