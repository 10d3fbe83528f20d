"""One "host" of the control-store tests: a process with its own outputs directory and host name
(VEXTRUS_OUTPUTS_DIR, VEXTRUS_HOST) against the control store VEXTRUS_CONTROL names.

    python tests/control_host.py append RUNS        RUNS sealed records appended concurrently
    python tests/control_host.py hold ENV TTL        take ENV's lease, keep it renewed, wait to die
    python tests/control_host.py fenced ENV TTL LOG  take the lease, then fenced steps into LOG
    python tests/control_host.py take ENV TTL        take the lease as soon as it is free
    python tests/control_host.py race ENV AT         try once to take the lease at time AT (epoch s)

Each prints one JSON line per event, flushed, so the test reads what happened and when.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from vextrus_nb.control import leases, settings
from vextrus_nb.errors import LeaseLost, RunRefused
from vextrus_nb.evidence import chain, identity, ledger


def say(**event: object) -> None:
    print(json.dumps({"host": identity.host(), "at": time.time(), **event}, default=str), flush=True)


def append(runs: int) -> None:
    outputs = Path(os.environ["VEXTRUS_OUTPUTS_DIR"])
    start = threading.Barrier(runs)

    def one(index: int) -> str:
        run_id = uuid.uuid4().hex[:12]
        notebook = outputs / "sandbox" / f"run-{run_id}.ipynb"
        notebook.parent.mkdir(parents=True, exist_ok=True)
        notebook.write_text(json.dumps({"cells": [], "run": run_id, "host": identity.host()}))
        start.wait()
        entry = ledger.append_entry(
            {
                "run_id": run_id,
                "runbook": "verify/smoke",
                "env": "sandbox",
                "status": "passed",
                "host": identity.host(),
                "output": str(notebook.relative_to(outputs)),
                "output_sha256": chain.sha256_file(notebook),
            },
            outputs,
        )
        return str(entry["run_id"])

    with ThreadPoolExecutor(max_workers=runs) as pool:
        done = list(pool.map(one, range(runs)))
    say(event="appended", run_ids=done)


def hold(env: str, ttl: float) -> None:
    lease = leases.acquire(settings.load(), env, uuid.uuid4().hex[:12], "dr/restore", ttl_s=ttl)
    lease.keep_renewed()
    say(event="holding", token=lease.token, expires_at=lease.expires_at.isoformat())
    threading.Event().wait()  # until killed


def _wait_for_lease(env: str, ttl: float) -> tuple[leases.Lease, str]:
    """The lease as soon as it is free, and the last refusal seen while waiting."""
    control, refusal = settings.load(), ""
    while True:
        try:
            return leases.acquire(control, env, uuid.uuid4().hex[:12], "dr/restore", ttl_s=ttl), refusal
        except RunRefused as exc:
            refusal = str(exc)
            time.sleep(0.05)


def fenced(env: str, ttl: float, log: Path) -> None:
    lease, _ = _wait_for_lease(env, ttl)
    lease.keep_renewed()
    say(event="holding", token=lease.token)
    step = 0
    while True:
        try:
            lease.check_fence()
        except LeaseLost as exc:
            say(event="stopped", reason=str(exc), steps=step)
            sys.exit(3)
        with open(log, "a") as handle:  # the destructive step: one line, stamped
            handle.write(f"{identity.host()} {lease.token} {step} {datetime.now(UTC).isoformat()}\n")
        step += 1
        time.sleep(0.2)  # the step's own work


def take(env: str, ttl: float) -> None:
    lease, refusal = _wait_for_lease(env, ttl)
    say(event="taken", token=lease.token, expires_at=lease.expires_at.isoformat(), last_refusal=refusal)
    lease.release()


def race(env: str, at: float) -> None:
    """One attempt at a moment shared by every racing host, so the attempts really coincide."""
    control = settings.load()
    time.sleep(max(0.0, at - time.time()))
    try:
        lease = leases.acquire(control, env, uuid.uuid4().hex[:12], "dr/restore", ttl_s=30)
    except RunRefused as exc:
        say(event="refused", reason=str(exc))
        return
    say(event="taken", token=lease.token)


if __name__ == "__main__":
    action, *args = sys.argv[1:]
    if action == "append":
        append(int(args[0]))
    elif action == "hold":
        hold(args[0], float(args[1]))
    elif action == "fenced":
        fenced(args[0], float(args[1]), Path(args[2]))
    elif action == "race":
        race(args[0], float(args[1]))
    elif action == "take":
        take(args[0], float(args[1]))
    else:
        sys.exit(f"unknown action {action}")
