"""A PostgreSQL failover as a procedure over the protocol engines: preflight (what would stop
it), fence (planned: the old primary made read-only, its sessions ended, the replica caught up to
its last LSN), promote, repoint the pooler, verify a write through the pooler. Each step's
seconds, the write-unavailability window and the data at risk are measured, not assumed.

Only what SQL and PgBouncer's console can do is here; stopping a dead primary for good and
rewinding it into a replica are process operations, the driver's (drivers.base.HAControl)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import psycopg

from vextrus_nb.errors import ReplicationError
from vextrus_nb.ha import pgbouncer, postgres

Mode = Literal["planned", "unplanned"]
MODES: tuple[Mode, ...] = ("planned", "unplanned")


@dataclass(frozen=True)
class Endpoints:
    """Connection strings (they hold the admin password: never shown, only used) and the
    pooler's configuration file; `replica_address` is host:port, what the pooler is pointed at."""

    primary_dsn: str
    replica_dsn: str
    pooler_dsn: str
    pooler_config: Path
    replica_host: str
    replica_port: int


@dataclass
class Preflight:
    mode: Mode
    primary_answers: bool
    replica_in_recovery: bool | None
    replica_streaming: bool
    lag_bytes: int | None
    replay_lag_s: float | None
    last_replayed_at: datetime | None
    refusals: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"check": "primary answers", "value": self.primary_answers},
            {"check": "replica in recovery", "value": self.replica_in_recovery},
            {"check": "replica streaming", "value": self.replica_streaming},
            {"check": "lag (bytes)", "value": self.lag_bytes},
            {"check": "replay lag (s)", "value": self.replay_lag_s},
            {"check": "last replayed commit", "value": self.last_replayed_at},
        ]


def _answers(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def preflight(ends: Endpoints, mode: Mode, max_lag_bytes: int, max_replay_lag_s: float) -> Preflight:
    """What would make a failover wrong now, each a refusal naming its reason: a planned
    switchover needs the primary; an unplanned failover must not run while the primary still
    answers (two primaries); the replica must be a replica, and within the lag bound."""
    primary_up = _answers(ends.primary_dsn)
    result = Preflight(mode, primary_up, None, False, None, None, None)
    try:
        replica = postgres.replica_view(ends.replica_dsn)
    except ReplicationError as exc:
        result.refusals.append(f"the replica does not answer ({exc}): there is nothing to promote")
        return result
    result.replica_in_recovery, result.last_replayed_at = replica.in_recovery, replica.last_replayed_at
    if not replica.in_recovery:
        result.refusals.append("the replica is not in recovery: it is already a primary")
    if mode == "planned" and not primary_up:
        result.refusals.append("the primary does not answer: a planned switchover needs it (mode=unplanned)")
    if mode == "unplanned" and primary_up:
        result.refusals.append(
            "the primary still answers: promoting now would leave two primaries "
            "(mode=planned, or fence it first)"
        )
    if primary_up:
        view = postgres.primary_view(ends.primary_dsn)
        result.replica_streaming = bool(view.streaming())
        if view.standbys:
            worst = max(view.standbys, key=lambda s: s.lag_bytes)
            result.lag_bytes, result.replay_lag_s = worst.lag_bytes, worst.replay_lag_s
        if not result.replica_streaming:
            result.refusals.append("the replica is not streaming from the primary")
    elif replica.receive_lsn and replica.replay_lsn:
        # The primary is gone: what the replica received but has not replayed is the backlog a
        # promotion waits for; what it never received is lost, and only the primary knew it.
        result.lag_bytes = postgres.lsn_difference(ends.replica_dsn, replica.receive_lsn, replica.replay_lsn)
    if result.lag_bytes is not None and result.lag_bytes > max_lag_bytes:
        result.refusals.append(
            f"the replica lags {result.lag_bytes} bytes, beyond the bound of {max_lag_bytes}"
        )
    if result.replay_lag_s is not None and result.replay_lag_s > max_replay_lag_s:
        result.refusals.append(
            f"the replica's replay lags {result.replay_lag_s:.1f} s, "
            f"beyond the bound of {max_replay_lag_s:g} s"
        )
    if replica.replay_paused:
        result.refusals.append("replay is paused on the replica (pg_wal_replay_resume() first)")
    return result


@dataclass
class FailoverRecord:
    mode: Mode
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds
    old_primary_lsn: str | None = None  # the fenced primary's last LSN (planned)
    promoted_at_lsn: str | None = None  # the replica's replay LSN when promoted
    data_lost_bytes: int | None = None  # None: unknowable without the dead primary
    write_unavailable_s: float | None = None
    new_primary: str = ""

    def timed(self, step: str, work: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        try:
            return work()
        finally:
            self.steps[step] = round(time.perf_counter() - started, 3)


def fence_primary(primary_dsn: str) -> str:
    """Planned switchover: the old primary stops taking writes (default_transaction_read_only,
    reloaded, and every other client session ended); returns its LSN then, which the replica must
    replay before it is promoted."""
    with psycopg.connect(primary_dsn, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        conn.execute("SELECT pg_reload_conf()")
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def wait_replayed(replica_dsn: str, lsn: str, timeout_s: float) -> str:
    """Until the replica has replayed `lsn`; its replay LSN then."""
    deadline = time.monotonic() + timeout_s
    while True:
        view = postgres.replica_view(replica_dsn)
        if view.replay_lsn and postgres.lsn_difference(replica_dsn, view.replay_lsn, lsn) >= 0:
            return view.replay_lsn
        if time.monotonic() > deadline:
            raise ReplicationError(
                f"the replica did not replay the primary's last LSN {lsn} within {timeout_s:g} s "
                f"(at {view.replay_lsn})"
            )
        time.sleep(0.05)


def write_through_pooler(pooler_dsn: str, timeout_s: float) -> float:
    """Until a write commits through the pooler (a temporary table: it touches no service's
    data); seconds it took."""
    started = time.monotonic()
    last: Exception | None = None
    while time.monotonic() - started < timeout_s:
        try:
            # One transaction, so transaction pooling keeps it on one server; a read-only or
            # recovering server refuses the CREATE, so a fenced primary cannot pass for the new one.
            with psycopg.connect(pooler_dsn, connect_timeout=2) as conn:
                conn.execute("CREATE TEMP TABLE vextrus_failover_probe (at timestamptz) ON COMMIT DROP")
                conn.execute("INSERT INTO vextrus_failover_probe VALUES (now())")
                conn.commit()
            return time.monotonic() - started
        except psycopg.Error as exc:
            last = exc
            time.sleep(0.1)
    first_line = (str(last).strip().splitlines() or ["no answer"])[0] if last else "no answer"
    raise ReplicationError(f"no write through the pooler within {timeout_s:g} s: {first_line}")


def switch(
    ends: Endpoints,
    mode: Mode,
    stop_old_primary: Callable[[], None] | None = None,
    verify_timeout_s: float = 30.0,
    primary_died_at: float | None = None,
) -> FailoverRecord:
    """Fence (planned), promote, repoint, verify. `primary_died_at` (time.monotonic()) starts
    the write-unavailability clock of an unplanned failover; a planned one starts it at the fence.

    A planned switchover stops the fenced primary cleanly (`stop_old_primary`, the driver's)
    before promoting: its shutdown checkpoint then reaches the replica, so the old primary's
    history is a prefix of the new one's and it rejoins without a rewind. Promoting first would
    leave that checkpoint on the old timeline only, one record past the fork."""
    if mode == "planned" and stop_old_primary is None:
        raise ValueError("a planned switchover needs a way to stop the old primary (the driver's)")
    record = FailoverRecord(mode)
    unavailable_since = primary_died_at
    if mode == "planned":
        assert stop_old_primary is not None
        unavailable_since = time.monotonic()
        record.old_primary_lsn = record.timed(
            "fence the old primary", lambda: fence_primary(ends.primary_dsn)
        )
        record.timed("stop the old primary cleanly", stop_old_primary)
        record.timed(
            "replica replays its last LSN",
            lambda: wait_replayed(ends.replica_dsn, record.old_primary_lsn or "0/0", verify_timeout_s),
        )
    before = postgres.replica_view(ends.replica_dsn)
    record.promoted_at_lsn = before.replay_lsn
    record.timed("promote the replica", lambda: postgres.promote(ends.replica_dsn, verify_timeout_s))
    record.timed(
        "repoint the pooler",
        lambda: pgbouncer.repoint(ends.pooler_config, ends.replica_host, ends.replica_port, ends.pooler_dsn),
    )
    record.timed(
        "a write through the pooler", lambda: write_through_pooler(ends.pooler_dsn, verify_timeout_s)
    )
    if unavailable_since is not None:
        record.write_unavailable_s = round(time.monotonic() - unavailable_since, 3)
    if record.old_primary_lsn and record.promoted_at_lsn:
        record.data_lost_bytes = max(
            0, postgres.lsn_difference(ends.replica_dsn, record.old_primary_lsn, record.promoted_at_lsn)
        )
    record.new_primary = f"{ends.replica_host}:{ends.replica_port}"
    return record
