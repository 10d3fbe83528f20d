"""Submitting runs to the team's workers and following them, over Temporal's client.

A submitted run is a workflow whose id is the run id, on the environment's task queue
(`vextrus-runbooks-<env>`). `submit` validates exactly as `vextrus-nb run` does before anything
is started, and refuses at once when no worker polls the queue (rather than queue a run nobody
will take)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from vextrus_nb.clock import now_utc
from vextrus_nb.control.settings import Control, TemporalService
from vextrus_nb.errors import ControlStoreUnavailable, RunRefused, first_line
from vextrus_nb.evidence import approvals, identity, ledger, scrub
from vextrus_nb.run import runner
from vextrus_nb.run.naming import new_run_id
from vextrus_nb.service.workflows import PIPELINE_NAME, WORKFLOW_NAME

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


@contextlib.contextmanager
def temporal_errors(client: Client) -> Iterator[None]:
    """Temporal refusing or failing a call (an unknown namespace, an overloaded frontend): one
    line naming it, never a gRPC traceback."""
    try:
        yield
    except RPCError as exc:
        raise ControlStoreUnavailable(
            f"Temporal at {client.service_client.config.target_host} ({client.namespace}): {first_line(exc)}"
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


def refuse_secret_parameters(given: dict[str, Any]) -> None:
    """A submitted run's parameters live in Temporal's history and are shown to its approvers:
    a secret is passed by reference in the environment, never as a parameter here (as `open`)."""
    if secret := sorted(k for k in given if scrub.is_secret_name(k)):
        raise RunRefused(
            f"parameter(s) {', '.join(secret)} look like secrets: a submitted run's parameters are "
            "kept in Temporal's history; give secrets by reference in the environment instead"
        )


def pipeline_phases(runbook: str) -> list[str] | None:
    """The runbooks a pipeline runs in order (deploy/all: the eight phases), or None."""
    if runbook.removesuffix(".ipynb") == "deploy/all":
        return [r for r in runner.list_runbooks() if r.startswith("deploy/0")]
    return None


async def submit(
    control: Control, runbook: str, env: str, given: dict[str, Any], resume: str | None = None
) -> Submitted:
    """Validate as `run` does (every phase of a pipeline), check a worker is there, start the
    workflow; RunRefused before anything is started otherwise."""
    refuse_secret_parameters(given)
    phases = pipeline_phases(runbook)
    if phases is None and resume:
        raise RunRefused("--resume is for a pipeline (deploy/all), which runs from its failed phase")
    # A single run may wait for its approvals; a pipeline's phases are not gated one by one.
    plans = [
        runner.prepare(phase, env, given, approvals_awaited=not phases) for phase in (phases or [runbook])
    ]
    client = await connect(control)
    finished = await _finished_phases(client, resume, env, given) if resume else {}
    with temporal_errors(client):
        workers = await pollers(client, env)
    if not workers:
        raise RunRefused(
            f"no worker polls {task_queue(env)}: start one on a host that can reach '{env}' "
            f"(`vextrus-nb worker --env {env}`); nothing was submitted"
        )
    run_id = new_run_id()
    name = runbook.removesuffix(".ipynb") if phases else plans[0].runbook
    request: dict[str, Any] = {
        "run_id": run_id,
        "runbook": name,
        "env": env,
        # The -p values as given: the worker validates and merges them again, as `run` would.
        "parameters": given,
        "submitted": {"by": identity.operator(), "host": identity.host(), "at": now_utc()},
    }
    if phases:
        request |= {"pipeline": name, "phases": phases, "finished": finished, "resumes": resume}
    elif (gate := approval_gate(plans[0], run_id)) is not None:
        request["approval"] = gate
    with temporal_errors(client):
        await client.start_workflow(
            PIPELINE_NAME if phases else WORKFLOW_NAME,
            request,
            id=run_id,
            task_queue=task_queue(env),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            memo={"runbook": name, "env": env, "submitted_by": identity.operator()},
        )
    return Submitted(run_id, task_queue(env), workers)


def approval_gate(plan: runner.Plan, run_id: str) -> dict[str, Any] | None:
    """What the workflow waits for when the environment wants approvals of this run: how many,
    from whom (with their public keys, so the workflow checks signatures itself), the hash of
    the parameters they sign over, and who asked (who may not approve)."""
    policy = plan.env.approvals
    live = not plan.parameters.get("dry_run", True)
    if policy is None or not policy.needs(plan.runbook, bool(plan.metadata.get("destructive")), live):
        return None
    keys = {}
    for name in policy.approvers:
        try:
            keys[name] = policy.key_path(name).read_text()
        except OSError as exc:
            raise RunRefused(f"approver {name}'s key {policy.key_path(name)}: {exc.strerror}") from None
    return {
        "required": policy.required,
        "approvers": keys,
        "timeout_s": policy.timeout_s,
        "params_hash": approvals.parameters_hash(plan.parameters),
        "requester": identity.operator(),
    }


async def _finished_phases(client: Client, resume: str, env: str, given: dict[str, Any]) -> dict[str, str]:
    """The phases of pipeline run `resume` that passed and whose notebooks are sealed, by
    runbook: a phase finished but not sealed counts as not finished, and runs again."""
    handle = client.get_workflow_handle(resume)
    try:
        described = await handle.describe()
    except RPCError:
        raise RunRefused(f"no pipeline run '{resume}' to resume (`vextrus-nb runs` lists them)") from None
    if described.workflow_type != PIPELINE_NAME:
        raise RunRefused(f"run {resume} is not a pipeline run; only deploy/all resumes")
    if described.status == WorkflowExecutionStatus.RUNNING:
        raise RunRefused(f"pipeline run {resume} is still running; resume it once it has stopped")
    try:
        previous = await handle.result()
    except WorkflowFailureError as exc:
        raise RunRefused(f"pipeline run {resume} ended without a result ({first_line(exc)})") from None
    if previous.get("status") == "passed":
        raise RunRefused(f"pipeline run {resume} passed: nothing to resume")
    if previous.get("parameters", given) != given:
        raise RunRefused(
            f"pipeline run {resume} ran with {previous.get('parameters')}, not {given}: resuming with other "
            "parameters would leave phases deployed two ways; submit a new deploy/all instead"
        )
    entries = {e.get("run_id"): e for e in ledger.read_entries()}
    finished = {}
    for phase in previous.get("phases", []):
        entry = entries.get(phase["run_id"])
        if phase["status"] != "passed" or entry is None or not ledger.is_sealed(entry):
            break
        if entry.get("env") != env:
            raise RunRefused(f"pipeline run {resume} ran on '{entry.get('env')}', not '{env}'")
        finished[phase["runbook"]] = phase["run_id"]
    return finished


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
    query = f'WorkflowType="{WORKFLOW_NAME}" OR WorkflowType="{PIPELINE_NAME}"'
    async for execution in client.list_workflows(query, limit=limit):
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
            row["where"] = pending[0].last_worker_identity if pending else ""
            row["state"] = "running" if pending and pending[0].last_worker_identity else "queued"
            if not pending and execution.workflow_type == WORKFLOW_NAME:
                with contextlib.suppress(RPCError, WorkflowQueryFailedError):
                    asked = await handle.query("request")
                    if asked.get("required"):
                        row["state"] = (
                            f"awaiting approval ({len(asked['approved_by'])} of {asked['required']})"
                        )
                        row["where"] = ", ".join(asked["approved_by"])
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


async def pending_request(control: Control, run_id: str) -> dict[str, Any]:
    """What the run's approvers sign, and who has decided so far (the workflow's query)."""
    client = await connect(control)
    try:
        return await client.get_workflow_handle(run_id).query("request")
    except RPCError:
        raise RunRefused(f"no submitted run '{run_id}' (`vextrus-nb runs` lists them)") from None


async def decide(control: Control, run_id: str, decision: dict[str, Any]) -> str:
    """Send an approver's signed decision; RunRefused with the workflow's reason when it does
    not count (not an approver, the requester, twice, other parameters, a bad signature)."""
    client = await connect(control)
    try:
        return await client.get_workflow_handle(run_id).execute_update("decide", decision)
    except WorkflowUpdateFailedError as exc:
        raise RunRefused(f"not counted: {first_line(exc.cause or exc)}") from None
    except RPCError as exc:
        raise RunRefused(f"run {run_id} takes no decision: {first_line(exc)}") from None


async def submit_for_alert(client: Client, routed: Any) -> str:
    """Start the routed alert's run: "started", or "already" when this firing has its run. A
    destructive run waits for its environment's approvals; with none declared it is refused:
    never a change on an alert alone."""
    plan = runner.prepare(routed.route.runbook, routed.env, routed.parameters, approvals_awaited=True)
    gate = approval_gate(plan, routed.workflow_id)
    if plan.metadata.get("destructive") and gate is None:
        raise RunRefused(
            f"'{plan.runbook}' changes '{routed.env}', which declares no approvals: an alert alone "
            "never starts a change"
        )
    request: dict[str, Any] = {
        "run_id": new_run_id(),
        "runbook": plan.runbook,
        "env": routed.env,
        "parameters": routed.parameters,
        "submitted": {
            "by": "alertmanager",
            "host": identity.host(),
            "at": now_utc(),
            "alert": routed.record(),
        },
    }
    if gate is not None:
        request["approval"] = {**gate, "requester": "alertmanager"}
    try:
        with temporal_errors(client):
            await client.start_workflow(
                WORKFLOW_NAME,
                request,
                id=routed.workflow_id,
                task_queue=task_queue(routed.env),
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                memo={"runbook": plan.runbook, "env": routed.env, "submitted_by": "alertmanager"},
            )
    except WorkflowAlreadyStartedError:
        return "already"
    return "started"


async def request_approval(control: Control, plan: runner.Plan, run_id: str) -> bool:
    """For a working copy (`vextrus-nb open`) its environment gates: a workflow that only gathers
    the approvals, which the kernel's start cell then checks. False when none is needed."""
    gate = approval_gate(plan, run_id)
    if gate is None:
        return False
    client = await connect(control)
    request = {
        "run_id": run_id,
        "runbook": plan.runbook,
        "env": plan.env.name,
        "parameters": plan.parameters,
        "submitted": {"by": identity.operator(), "host": identity.host(), "at": now_utc()},
        "approval": gate,
        "interactive": True,
    }
    with temporal_errors(client):
        await client.start_workflow(
            WORKFLOW_NAME, request, id=run_id, task_queue=task_queue(plan.env.name),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            memo={"runbook": plan.runbook, "env": plan.env.name, "submitted_by": identity.operator()},
        )  # fmt: skip
    return True
