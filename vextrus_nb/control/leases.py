"""The environment lock as a lease in the shared store: one live destructive run per environment
across every host.

A lease names its holder (host, operator, run id, runbook, since) and expires `ttl` seconds after
its last renewal by the database's clock, so a holder that dies (kill -9, the host gone) frees
it without anyone clearing it by hand. Each new holder gets a larger fencing token; a holder
checks that its token still holds before every destructive step (`check_fence`), so one cut off
from the store, whose lease another host has since taken, stops instead of racing that host.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vextrus_nb.control import database
from vextrus_nb.control.settings import Control
from vextrus_nb.errors import ControlStoreUnavailable, LeaseLost, RunRefused
from vextrus_nb.evidence import identity

_HOLDER_COLUMNS = "run_id, runbook, host, operator, pid, since, expires_at, token"


def _holder(row: tuple[Any, ...]) -> dict[str, Any]:
    run_id, runbook, host, operator, pid, since, expires, token = row
    return {
        "run_id": run_id,
        "runbook": runbook,
        "host": host,
        "operator": operator,
        "pid": pid,
        "started_at": since.isoformat(timespec="seconds"),
        "expires_at": expires.isoformat(timespec="seconds"),
        "token": token,
    }


def holder(control: Control, env: str) -> dict[str, Any] | None:
    """The live lease on `env`, or None when it is free (or its holder's lease expired)."""
    with database.connect(control) as conn:
        row = conn.execute(
            f"SELECT {_HOLDER_COLUMNS} FROM leases WHERE env = %s AND expires_at > now()", (env,)
        ).fetchone()
    return _holder(row) if row else None


def holders(control: Control) -> dict[str, dict[str, Any]]:
    with database.connect(control) as conn:
        rows = conn.execute(
            f"SELECT env, {_HOLDER_COLUMNS} FROM leases WHERE expires_at > now() ORDER BY env"
        ).fetchall()
    return {row[0]: _holder(row[1:]) for row in rows}


def refusal(env: str, held: dict[str, Any]) -> RunRefused:
    return RunRefused(
        f"environment '{env}' is locked by run {held.get('run_id', '?')} ({held.get('runbook', '?')}, "
        f"host {held.get('host', '?')}, operator {held.get('operator', '?')}, since "
        f"{held.get('started_at', '?')}); wait for it to finish (`vextrus-nb control status` lists "
        "holders; a lease its holder stops renewing expires by itself)"
    )


@dataclass
class Lease:
    """A lease this process holds, renewed by a thread of its own until released."""

    control: Control
    env: str
    run_id: str
    token: int
    ttl_s: float
    expires_at: datetime
    lost: str = ""  # why the lease is gone, once it is
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _renewer: threading.Thread | None = field(default=None, repr=False)

    @property
    def active(self) -> bool:
        return not self.lost and not self._stop.is_set()

    def renew(self) -> None:
        """Push the expiry out by the TTL; a lease that expired or was taken is lost for good."""
        with database.connect(self.control) as conn:
            row = conn.execute(
                "UPDATE leases SET expires_at = now() + make_interval(secs => %s) "
                "WHERE env = %s AND token = %s AND expires_at > now() RETURNING expires_at",
                (self.ttl_s, self.env, self.token),
            ).fetchone()
        if row is None:
            self.lost = f"the lease on '{self.env}' (token {self.token}) expired or was taken over"
            raise LeaseLost(self.lost)
        self.expires_at = row[0]

    def keep_renewed(self) -> None:
        """Renew every third of the TTL on a daemon thread, while this process lives."""

        def renew_until_stopped() -> None:
            while not self._stop.wait(self.ttl_s / 3):
                try:
                    self.renew()
                except LeaseLost:
                    return
                except ControlStoreUnavailable:
                    continue  # cut off: the fence check decides, by the lease's own expiry

        self._renewer = threading.Thread(target=renew_until_stopped, name=f"lease-{self.env}", daemon=True)
        self._renewer.start()

    def check_fence(self) -> None:
        """Before a destructive step: the store confirms this token still holds the lease.
        Unreachable store, expired lease, or a newer token: LeaseLost, and the step does not run."""
        if self.lost:
            raise LeaseLost(f"{self.lost}; run {self.run_id} stops before its next destructive step")
        try:
            with database.connect(self.control) as conn:
                row = conn.execute(
                    "SELECT token, expires_at > now() FROM leases WHERE env = %s", (self.env,)
                ).fetchone()
        except ControlStoreUnavailable as exc:
            raise LeaseLost(
                f"run {self.run_id} cannot confirm its lease on '{self.env}' ({exc}); it stops before "
                "its next destructive step"
            ) from None
        if row is None or row[0] != self.token or not row[1]:
            self.lost = (
                f"the lease on '{self.env}' expired"
                if row is None or row[0] == self.token
                else f"the lease on '{self.env}' was taken over "
                f"(token {row[0]} after this run's {self.token})"
            )
            raise LeaseLost(f"{self.lost}; run {self.run_id} stops before its next destructive step")

    def release(self) -> None:
        self._stop.set()
        try:
            with database.connect(self.control) as conn:
                conn.execute("DELETE FROM leases WHERE env = %s AND token = %s", (self.env, self.token))
        except ControlStoreUnavailable:
            pass  # unreachable: the lease expires by itself after its TTL

    def as_record(self) -> dict[str, Any]:
        return {"env": self.env, "kind": "lease", "token": self.token, "ttl_s": self.ttl_s}

    def handover(self) -> dict[str, Any]:
        """What the kernel needs to fence its steps with this lease (locks.LEASE_VAR)."""
        return {"env": self.env, "run_id": self.run_id, "token": self.token, "ttl_s": self.ttl_s}


def adopt(control: Control, handed: dict[str, Any]) -> Lease:
    """The lease a runner took for this kernel's run: fenced here, renewed by the runner."""
    return Lease(
        control, handed["env"], handed["run_id"], int(handed["token"]), float(handed["ttl_s"]), datetime.now()
    )


def acquire(control: Control, env: str, run_id: str, runbook: str, ttl_s: float | None = None) -> Lease:
    """Take the lease on `env` if it is free or expired, or refuse naming its holder."""
    assert control.shared is not None
    ttl = ttl_s or control.shared.lease_ttl_s
    with database.connect(control) as conn:
        row = conn.execute(
            """
            INSERT INTO leases AS l (env, token, run_id, runbook, host, operator, pid, since, expires_at)
            VALUES (%s, nextval('lease_tokens'), %s, %s, %s, %s, %s, now(), now() + make_interval(secs => %s))
            ON CONFLICT (env) DO UPDATE SET
                token = EXCLUDED.token, run_id = EXCLUDED.run_id, runbook = EXCLUDED.runbook,
                host = EXCLUDED.host, operator = EXCLUDED.operator, pid = EXCLUDED.pid,
                since = EXCLUDED.since, expires_at = EXCLUDED.expires_at
            WHERE l.expires_at <= now()
            RETURNING token, expires_at
            """,
            (env, run_id, runbook, identity.host(), identity.operator(), os.getpid(), ttl),
        ).fetchone()
        if row is None:
            held = conn.execute(f"SELECT {_HOLDER_COLUMNS} FROM leases WHERE env = %s", (env,)).fetchone()
            raise refusal(env, _holder(held) if held else {})
    return Lease(control, env, run_id, int(row[0]), ttl, row[1])
