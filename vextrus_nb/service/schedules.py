"""Schedules on Temporal: one per runbook and environment, however many workers poll its queue.

Overlap is skipped (a drill still running is not doubled, and Temporal counts the skip), missed
runs are caught up within a window, a jitter spreads a fleet's schedules, and a pause carries a
note. The cron expression is Temporal's to validate (it also takes `@every 5m`). crontab and the
Kubernetes CronJob stay for a single host and for Kubernetes (vextrus_nb/schedule.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowFailureError,
)
from temporalio.service import RPCError

from vextrus_nb.clock import now_utc
from vextrus_nb.control.settings import Control
from vextrus_nb.errors import RunRefused, first_line
from vextrus_nb.evidence import identity
from vextrus_nb.run import runner
from vextrus_nb.service.client import connect, refuse_secret_parameters, task_queue
from vextrus_nb.service.workflows import WORKFLOW_NAME

DEFAULT_CATCHUP = timedelta(hours=1)


def schedule_id(runbook: str, env: str) -> str:
    return f"{runbook.replace('/', '.')}@{env}"


@dataclass(frozen=True)
class Scheduled:
    name: str
    created: bool  # False: an existing schedule was updated


async def upsert(
    control: Control,
    runbook: str,
    env: str,
    cron: str,
    given: dict[str, Any],
    jitter: timedelta = timedelta(0),
    catchup: timedelta = DEFAULT_CATCHUP,
) -> Scheduled:
    """Create or update the schedule of RUNBOOK on ENV; validated as `run` is, before anything."""
    refuse_secret_parameters(given)
    plan = runner.prepare(runbook, env, given)
    client = await connect(control)
    name = schedule_id(plan.runbook, env)
    request = {
        "runbook": plan.runbook,
        "env": env,
        "parameters": given,
        "submitted": {"by": identity.operator(), "host": identity.host(), "at": now_utc(), "schedule": name},
    }
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            WORKFLOW_NAME,
            request,
            id=name,  # Temporal appends the scheduled time: one workflow id per firing
            task_queue=task_queue(env),
            memo={"runbook": plan.runbook, "env": env, "schedule": name, "cron": cron},
        ),
        spec=ScheduleSpec(cron_expressions=[cron], jitter=jitter or None),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=catchup),
        state=ScheduleState(note=f"scheduled by {identity.operator()}@{identity.host()}"),
    )
    try:
        await client.create_schedule(name, schedule)
        return Scheduled(name, created=True)
    except ScheduleAlreadyRunningError:

        def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
            # An update replaces the whole schedule: keep its state, so a paused one (a change
            # freeze, with its note) stays paused.
            schedule.state = current.description.schedule.state
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(name).update(replace)
        return Scheduled(name, created=False)
    except RPCError as exc:
        raise RunRefused(f"Temporal refused the schedule {name}: {first_line(exc)}") from None


async def _handle(client: Client, name: str) -> ScheduleHandle:
    handle = client.get_schedule_handle(name)
    try:
        await handle.describe()
    except RPCError:
        raise RunRefused(f"no schedule '{name}' (`vextrus-nb schedule list` names them)") from None
    return handle


async def listing(control: Control) -> list[dict[str, Any]]:
    """Every schedule: what it runs, whether paused and why, its next and recent runs."""
    client = await connect(control)
    rows = []
    async for entry in await client.list_schedules():
        described = await client.get_schedule_handle(entry.id).describe()
        info, state = described.info, described.schedule.state
        running = {getattr(r, "workflow_id", "") for r in info.running_actions}
        recent = []
        for action in info.recent_actions[-3:]:
            workflow_id = getattr(action.action, "workflow_id", "")
            recent.append(
                {
                    "at": action.started_at.isoformat(timespec="seconds"),
                    "status": await _outcome(client, workflow_id, running),
                }
            )
        rows.append(
            {
                "name": entry.id,
                "cron": _memo_value(described.schedule.action, "cron") or "?",
                "paused": state.paused,
                "note": state.note or "",
                "next": [t.isoformat(timespec="seconds") for t in info.next_action_times[:2]],
                "recent": recent,
                "runs": info.num_actions,
                "skipped_overlap": info.num_actions_skipped_overlap,
            }
        )
    return rows


def _memo_value(action: Any, key: str) -> Any:
    """A value the schedule's action carries in its memo (Temporal turns the cron expression
    into calendar specs; the memo keeps the text the operator gave)."""
    value = (getattr(action, "memo", None) or {}).get(key)
    data = getattr(value, "data", None)
    return json.loads(data) if data is not None else value


async def _outcome(client: Client, workflow_id: str, running: set[str]) -> str:
    if workflow_id in running:
        return "running"
    try:
        result = await client.get_workflow_handle(workflow_id).result()
    except WorkflowFailureError:
        return "error"
    except RPCError:  # its history is gone (retention)
        return "?"
    return str(result.get("status", "?"))


async def pause(control: Control, name: str, note: str) -> None:
    await (await _handle(await connect(control), name)).pause(note=note)


async def unpause(control: Control, name: str, note: str) -> None:
    await (await _handle(await connect(control), name)).unpause(note=note)


async def delete(control: Control, name: str) -> None:
    await (await _handle(await connect(control), name)).delete()
