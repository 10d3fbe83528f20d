"""One destructive run per environment at a time.

With a shared control store the lock is a lease in its PostgreSQL (control/leases.py), across
every host: the runner takes it before the kernel starts and renews it while the run lives,
handing the kernel the lease (LEASE_VAR) so each step checks its fencing token first; a kernel
run any other way (JupyterLab) takes and renews its own. Without one (the embedded default):

The lock is an flock on `outputs/locks/<env>.lock`, held by the kernel of the
run that changes the environment, so it dies with that process: a crashed run
cannot leave it held, and nothing needs clearing by hand. The file keeps the
holder's run id, runbook, pid and start time, so a refusal names the holder.
Within one kernel the lock is re-entrant for its own run: an engineer re-running the start cell
of a live run in JupyterLab keeps the lock the kernel already holds (flock would refuse a second
open file even in the same process).
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from vextrus_nb import paths
from vextrus_nb.control import settings
from vextrus_nb.errors import RunRefused

LEASE_VAR = "VEXTRUS_LEASE"  # the lease the runner took for the kernel's run: env, token, TTL


def lock_path(env: str) -> Path:
    return paths.outputs_dir() / "locks" / f"{env}.lock"


@dataclass
class EnvironmentLock:
    env: str
    handle: IO[str]
    run_id: str = ""

    def check_fence(self) -> None:
        """An flock cannot be lost while its process lives: nothing to check."""

    def as_record(self) -> dict[str, Any]:
        return {"env": self.env, "kind": "flock"}

    def release(self) -> None:
        if _held.get(self.env) is self:
            del _held[self.env]
        if self.handle.closed:
            return
        self.handle.seek(0)
        self.handle.truncate()
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


# The locks this process holds, by environment.
_held: dict[str, Any] = {}


def holder(env: str) -> dict[str, Any] | None:
    """Who holds the environment's lock, or None if it is free. With a shared store that
    cannot be reached: ControlStoreUnavailable (a live run must then be refused)."""
    control = settings.load()
    if control.is_shared:
        from vextrus_nb.control import leases

        return leases.holder(control, env)
    path = lock_path(env)
    if not path.exists():
        return None
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                return json.loads(handle.read() or "{}")
            except json.JSONDecodeError:
                return {}
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def refusal(env: str, held: dict[str, Any]) -> RunRefused:
    if "host" in held:  # a lease: named by host and operator, not a pid on this machine
        from vextrus_nb.control import leases

        return leases.refusal(env, held)
    return RunRefused(
        f"environment '{env}' is locked by run {held.get('run_id', '?')} ({held.get('runbook', '?')}, "
        f"pid {held.get('pid', '?')}, since {held.get('started_at', '?')}); wait for it to finish "
        "(`vextrus-nb locks` lists holders; a lock ends with its holder's process)"
    )


def acquire(env: str, run_id: str, runbook: str, started_at: str) -> Any:
    """Take the lock or refuse naming its holder. Keep the returned object alive for the run;
    it has check_fence(), as_record() and release()."""
    control = settings.load()
    if control.is_shared:
        return _acquire_lease(control, env, run_id, runbook)
    mine = _held.get(env)
    if mine is not None and not mine.handle.closed:
        if mine.run_id == run_id:
            return mine
        held = json.loads(lock_path(env).read_text() or "{}")
        raise refusal(env, held)
    path = lock_path(env)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open for the whole run
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        text = handle.read()
        handle.close()
        try:
            held = json.loads(text or "{}")
        except json.JSONDecodeError:
            held = {}
        raise refusal(env, held) from None
    handle.seek(0)
    handle.truncate()
    handle.write(
        json.dumps({"run_id": run_id, "runbook": runbook, "pid": os.getpid(), "started_at": started_at})
    )
    handle.flush()
    _held[env] = EnvironmentLock(env, handle, run_id)
    return _held[env]


def _acquire_lease(control: settings.Control, env: str, run_id: str, runbook: str) -> Any:
    """The runner's lease when it handed one over for this run, else a new one renewed here."""
    from vextrus_nb.control import leases

    mine = _held.get(env)
    if mine is not None and mine.active and mine.run_id == run_id:
        return mine  # the start cell run again in the same kernel
    handed = json.loads(os.environ.get(LEASE_VAR) or "{}")
    if handed.get("env") == env and handed.get("run_id") == run_id:
        lease = leases.adopt(control, handed)  # the runner renews it and gives it back
    else:
        lease = leases.acquire(control, env, run_id, runbook)
        lease.keep_renewed()
    _held[env] = lease
    return lease
