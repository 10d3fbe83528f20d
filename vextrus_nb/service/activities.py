"""What a worker executes: one runbook through the same runner as `vextrus-nb run` (the same
refusals, sealing, shared ledger and lease), heartbeating while the notebook runs so that a
worker that dies is noticed within the heartbeat timeout; and the record of a lost run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity

from vextrus_nb.clock import now_utc
from vextrus_nb.evidence import identity, ledger
from vextrus_nb.run import runner
from vextrus_nb.service.workflows import EXECUTE, HEARTBEAT_TIMEOUT, PAGE, RECORD_LOST, RECORD_PIPELINE

HEARTBEAT_EVERY_S = HEARTBEAT_TIMEOUT.total_seconds() / 4


@activity.defn(name=EXECUTE)
async def execute_runbook(request: dict[str, Any]) -> dict[str, Any]:
    """Run it here; the heartbeat carries this host's name, which a lost run's record names."""
    beat = {"host": identity.host(), "run_id": request["run_id"]}
    activity.heartbeat(beat)
    work = asyncio.get_running_loop().run_in_executor(
        None,
        lambda: runner.run(
            request["runbook"],
            request["env"],
            request.get("parameters") or {},
            run_id=request["run_id"],
            submitted=request.get("submitted"),
        ),
    )
    while True:
        try:
            outcome = await asyncio.wait_for(asyncio.shield(work), HEARTBEAT_EVERY_S)
            break
        except TimeoutError:
            activity.heartbeat(beat)
    return {
        "exit_code": outcome.exit_code,
        "status": outcome.status,
        "message": outcome.message,
        "run_id": outcome.run_id or request["run_id"],
        "output": str(outcome.output_path) if outcome.output_path else None,
        "host": identity.host(),
    }


@activity.defn(name=RECORD_LOST)
async def record_lost_run(lost: dict[str, Any]) -> None:
    """A run that was not executed, or not to its end: its worker died (error, naming the host),
    its approvals did not come in time (expired) or an approver rejected it (rejected). On
    record with no notebook, with the approval decisions it had."""
    record = {
        **identity.run_identity(lost["run_id"], lost["runbook"], lost["env"], lost.get("parameters") or {}),
        "status": lost["status"],
        "cause": lost["cause"],
        "executed_by": "vextrus-nb worker",
        "worker_host": lost.get("host"),
        "executed": lost["status"] == "error",
        "submitted": lost.get("submitted"),
        "ended_at": now_utc(),
        "output": None,
        "output_sha256": None,
    }
    await asyncio.to_thread(ledger.append_entry, record)


@activity.defn(name=RECORD_PIPELINE)
async def record_pipeline(summary: dict[str, Any]) -> None:
    """The pipeline's own entry: each phase's run id and outcome, and the run it resumed."""
    record = {
        **identity.run_identity(
            summary["run_id"], summary["pipeline"], summary["env"], summary.get("parameters") or {}
        ),
        "status": summary["status"],
        "cause": next((p.get("message", "") for p in summary["phases"] if p["status"] != "passed"), ""),
        "executed_by": "vextrus-nb worker",
        "submitted": summary.get("submitted"),
        "resumes": summary.get("resumes"),
        "phases": summary["phases"],
        "ended_at": now_utc(),
        "output": None,
        "output_sha256": None,
    }
    await asyncio.to_thread(ledger.append_entry, record)


PAGED_STATUSES = ("failed", "error", "expired")
PAGE_HOLDS = timedelta(days=7)


@activity.defn(name=PAGE)
async def page_outcome(outcome: dict[str, Any]) -> None:
    """VextrusRunbookFailed posted to Alertmanager's API v2 for a run that failed, errored or
    expired (labels runbook, env, status; annotations run id, cause, notebook); a passing run of
    the same runbook and environment resolves it. Without paging settings: nothing."""
    import httpx

    from vextrus_nb.control import settings

    control = settings.load()
    paging = control.shared.paging if control.shared else None
    if paging is None:
        return
    base = {"alertname": "VextrusRunbookFailed", "runbook": outcome["runbook"], "env": outcome["env"]}
    now = datetime.now(UTC).isoformat()
    if outcome["status"] in PAGED_STATUSES:
        alerts = [
            {
                "labels": {**base, "status": outcome["status"], "severity": "warning"},
                "annotations": {
                    "run_id": outcome.get("run_id", ""),
                    "cause": outcome.get("message", ""),
                    "notebook": outcome.get("output") or "none (not executed)",
                },
                "startsAt": now,
                # Active until a passing run resolves it, not Alertmanager's resolve_timeout.
                "endsAt": (datetime.now(UTC) + PAGE_HOLDS).isoformat(),
            }
        ]
    elif outcome["status"] == "passed":  # resolves whichever of them is firing
        alerts = [
            {"labels": {**base, "status": status, "severity": "warning"}, "startsAt": now, "endsAt": now}
            for status in PAGED_STATUSES
        ]
    else:
        return
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.post(f"{paging.alertmanager_url.rstrip('/')}/api/v2/alerts", json=alerts)
        answer.raise_for_status()
