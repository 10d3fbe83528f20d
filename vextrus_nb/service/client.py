"""Submitting runs to the team's workers and following them, over Temporal's client.

A submitted run is a workflow whose id is the run id, on the environment's task queue
(`vextrus-runbooks-<env>`). `submit` validates exactly as `vextrus-nb run` does before anything
is started, and refuses at once when no worker polls the queue (rather than queue a run nobody
will take)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from vextrus_nb.clock import now_utc
from vextrus_nb.control.settings import Control, TemporalService
from vextrus_nb.errors import ControlStoreUnavailable, RunRefused, first_line
from vextrus_nb.evidence import identity
from vextrus_nb.run import runner
from vextrus_nb.run.naming import new_run_id
from vextrus_nb.service.workflows import WORKFLOW_NAME

QUEUE_PREFIX = "vextrus-runbooks-"


def task_queue(env: str) -> str:
    return QUEUE_PREFIX + env


def service_of(control: Control) -> TemporalService:
    if control.shared is None or control.shared.temporal is None:
        raise RunRefused(
            f"no Temporal service in the control settings ({control.source}): submitted runs and "
            "workers need `temporal: {address, namespace}` there (docs/service.md)"
        )
    return control.shared.temporal


async def connect(control: Control) -> Client:
    service = service_of(control)
    try:
        return await Client.connect(service.address, namespace=service.namespace)
    except RuntimeError as exc:  # the core SDK's connection error
        raise ControlStoreUnavailable(
            f"Temporal at {service.address} cannot be reached: {first_line(exc)}"
        ) from None


async def pollers(client: Client, env: str) -> list[str]:
    """The identities of the workers polling the environment's queue (recently: Temporal keeps
    a poller for a minute after its last poll)."""
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue(env)),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
    )
    return [p.identity for p in answer.pollers]


@dataclass(frozen=True)
class Submitted:
    run_id: str
    queue: str
    workers: list[str]


async def submit(control: Control, runbook: str, env: str, given: dict[str, Any]) -> Submitted:
    """Validate as `run` does, check a worker is there, start the workflow; RunRefused before
    anything is started otherwise."""
    plan = runner.prepare(runbook, env, given)
    client = await connect(control)
    workers = await pollers(client, env)
    if not workers:
        raise RunRefused(
            f"no worker polls {task_queue(env)}: start one on a host that can reach '{env}' "
            f"(`vextrus-nb worker --env {env}`); nothing was submitted"
        )
    run_id = new_run_id()
    request = {
        "run_id": run_id,
        "runbook": plan.runbook,
        "env": env,
        # The -p values as given: the worker validates and merges them again, as `run` would.
        "parameters": given,
        "submitted": {"by": identity.operator(), "host": identity.host(), "at": now_utc()},
    }
    await client.start_workflow(
        WORKFLOW_NAME,
        request,
        id=run_id,
        task_queue=task_queue(env),
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        memo={"runbook": plan.runbook, "env": env, "submitted_by": identity.operator()},
    )
    return Submitted(run_id, task_queue(env), workers)


async def wait(control: Control, run_id: str, timeout_s: float) -> dict[str, Any] | None:
    """The run's result, or None when it has not finished within `timeout_s`."""
    client = await connect(control)
    handle = client.get_workflow_handle(run_id)
    try:
        return await asyncio.wait_for(handle.result(), timeout_s)
    except TimeoutError:
        return None
    except WorkflowFailureError as exc:
        return {"exit_code": 1, "status": "error", "message": first_line(exc.cause or exc), "run_id": run_id}


_STATES = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "finished",
    WorkflowExecutionStatus.FAILED: "error",
    WorkflowExecutionStatus.TIMED_OUT: "expired",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.CANCELED: "canceled",
}


async def list_runs(control: Control, limit: int = 50) -> list[dict[str, Any]]:
    """Submitted and scheduled runs, newest first: state, and where a running one runs."""
    client = await connect(control)
    found: list[dict[str, Any]] = []
    async for execution in client.list_workflows(f'WorkflowType="{WORKFLOW_NAME}"', limit=limit):
        memo = await execution.memo()
        row = {
            "run_id": execution.id,
            "runbook": memo.get("runbook", "?"),
            "env": memo.get("env", "?"),
            "state": _STATES.get(execution.status, str(execution.status)) if execution.status else "?",
            "started": execution.start_time.isoformat(timespec="seconds"),
            "where": "",
        }
        handle = client.get_workflow_handle(execution.id)
        if execution.status == WorkflowExecutionStatus.RUNNING:
            described = await handle.describe()
            pending = described.raw_description.pending_activities
            row["where"] = pending[0].last_worker_identity if pending else "queued"
            row["state"] = "running" if pending and pending[0].last_worker_identity else "queued"
        elif execution.status == WorkflowExecutionStatus.COMPLETED:
            try:
                result = await handle.result()
                row["state"] = result.get("status", "finished")
                row["where"] = result.get("host", "")
            except (WorkflowFailureError, RPCError):
                pass
        found.append(row)
    return found


def run_async(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


WAIT_DEFAULT = timedelta(minutes=30)
