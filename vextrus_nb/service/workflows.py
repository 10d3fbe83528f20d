"""The workflow of one submitted run: execute the runbook once on its environment's task queue,
and if the worker executing it is lost, record that instead of running it again.

Workflow code must be deterministic (Temporal replays it): it only schedules activities, by name,
and reads their results. Everything else lives in activities.py.
"""

from __future__ import annotations

import builtins
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from vextrus_nb.evidence import approvals

WORKFLOW_NAME = "RunbookRun"
PIPELINE_NAME = "PipelineRun"
EXECUTE = "execute_runbook"
RECORD_LOST = "record_lost_run"
RECORD_PIPELINE = "record_pipeline"
PAGE = "page_outcome"
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
RUN_TIMEOUT = timedelta(hours=6)
# One attempt, never an automatic retry: a runbook that changed an environment half way must not
# run again on its own, and a read-only one is cheap to submit again by hand.
ONCE = RetryPolicy(maximum_attempts=1)


@workflow.defn(name=WORKFLOW_NAME)
class RunbookRun:
    def __init__(self) -> None:
        self._request: dict[str, Any] = {}
        self._approvals: list[dict[str, Any]] = []
        self._rejection: dict[str, Any] | None = None

    @workflow.run
    async def run(self, request: dict[str, Any]) -> dict[str, Any]:
        # A submitted run comes with its id; a scheduled firing gets one here (replay-safe).
        request = {**request, "run_id": request.get("run_id") or workflow.uuid4().hex[:12]}
        self._request = request
        outcome = await self._run(request)
        # Failed, errored or expired: the platform's Alertmanager pages; passed: it resolves.
        with contextlib.suppress(ActivityError):
            await workflow.execute_activity(
                PAGE,
                {**outcome, "runbook": request["runbook"], "env": request["env"]},
                schedule_to_close_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
        return outcome

    async def _run(self, request: dict[str, Any]) -> dict[str, Any]:
        if gate := request.get("approval"):
            try:
                await workflow.wait_condition(
                    lambda: self._rejection is not None or len(self._approvals) >= gate["required"],
                    timeout=timedelta(seconds=gate["timeout_s"]),
                )
            except builtins.TimeoutError:
                have = f"{len(self._approvals)} of {gate['required']} approvals"
                return await self._not_executed(request, "expired", f"{have} within {gate['timeout_s']:g} s")
            decided = {
                "approvals": self._approvals,
                **({"rejection": self._rejection} if self._rejection else {}),
            }
            request = {**request, "submitted": {**request["submitted"], **decided}}
            if self._rejection is not None:
                reason = f"rejected by {self._rejection['name']}: {self._rejection.get('reason', '')}"
                return await self._not_executed(request, "rejected", reason)
            if request.get("interactive"):  # `vextrus-nb open`: the kernel runs it, with these
                run_id = request["run_id"]
                return {"exit_code": 0, "status": "approved", "run_id": run_id, "approvals": self._approvals}
        try:
            result: dict[str, Any] = await workflow.execute_activity(
                EXECUTE,
                request,
                start_to_close_timeout=RUN_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=ONCE,
            )
            return result
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, TimeoutError) and cause.type == TimeoutType.HEARTBEAT:
                details = cause.last_heartbeat_details
                host = details[0].get("host", "?") if details else "?"
                why = f"worker lost (host {host}): no heartbeat for {HEARTBEAT_TIMEOUT.seconds} s"
                return await self._not_executed({**request, "host": host}, "error", why)
            return await self._not_executed(
                request, "error", f"the run's activity failed: {exc.cause or exc}"
            )

    async def _not_executed(self, request: dict[str, Any], status: str, cause: str) -> dict[str, Any]:
        """On record in the ledger, by whichever worker of the queue is alive; bounded, so a
        queue with no worker left does not hold the workflow open forever."""
        with contextlib.suppress(ActivityError):
            await workflow.execute_activity(
                RECORD_LOST,
                {**request, "status": status, "cause": cause},
                schedule_to_close_timeout=timedelta(minutes=5),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
        return {"exit_code": 1, "status": status, "message": cause, "run_id": request["run_id"]}

    @workflow.query
    def request(self) -> dict[str, Any]:
        """What an approver signs, and who has decided so far."""
        gate = self._request.get("approval") or {}
        return {
            **{k: self._request.get(k) for k in ("run_id", "runbook", "env", "parameters", "submitted")},
            "params_hash": gate.get("params_hash"),
            "required": gate.get("required", 0),
            "approvers": sorted(gate.get("approvers", {})),
            "approved_by": [a["name"] for a in self._approvals],
            "approvals": self._approvals,
            "rejected_by": self._rejection["name"] if self._rejection else None,
        }

    @workflow.update
    async def decide(self, decision: dict[str, Any]) -> str:
        """An approver's signed approval or rejection (checked by the validator first)."""
        if decision.get("reject"):
            self._rejection = decision
            return f"rejected run {self._request['run_id']}"
        self._approvals.append(decision)
        required = self._request["approval"]["required"]
        return f"approved run {self._request['run_id']}: {len(self._approvals)} of {required} approvals"

    @decide.validator
    def _valid_decision(self, decision: dict[str, Any]) -> None:
        gate = self._request.get("approval")
        if not gate:
            raise ValueError(f"run {self._request.get('run_id')} needs no approval")
        if self._rejection is not None or len(self._approvals) >= gate["required"]:
            raise ValueError(f"run {self._request['run_id']} is already decided")
        name = decision.get("name", "")
        if name not in gate["approvers"]:
            raise ValueError(f"{name!r} is not an approver of '{self._request['env']}'")
        if name == gate["requester"]:
            raise ValueError(f"{name} asked for this run and cannot approve it")
        if any(a["name"] == name for a in self._approvals):
            raise ValueError(f"{name} has approved this run already: an approver counts once")
        if decision.get("params_hash") != gate["params_hash"]:
            raise ValueError("the approval was signed over other parameters than this run's")
        signed = approvals.message(
            self._request["run_id"], self._request["runbook"], self._request["env"], gate["params_hash"]
        )
        if not approvals.is_valid(gate["approvers"][name].encode(), signed, decision.get("signature", "")):
            raise ValueError(f"the signature does not verify with {name}'s key")


@workflow.defn(name=PIPELINE_NAME)
class PipelineRun:
    """Runbooks in order as one run (deploy/all: the eight phases), stopping at the first that
    does not pass. Each phase is a run of its own (its notebook sealed, its ledger entry); phases
    a resumed pipeline found finished and sealed are not run again. One more entry names them all."""

    @workflow.run
    async def run(self, request: dict[str, Any]) -> dict[str, Any]:
        phases: list[dict[str, Any]] = []
        finished: dict[str, str] = request.get("finished") or {}
        status = "passed"
        for runbook in request["phases"]:
            if runbook in finished:
                phases.append(
                    {"runbook": runbook, "run_id": finished[runbook], "status": "passed", "resumed": True}
                )
                continue
            phase = {
                "run_id": workflow.uuid4().hex[:12],
                "runbook": runbook,
                "env": request["env"],
                "parameters": request.get("parameters") or {},
                "submitted": {**(request.get("submitted") or {}), "pipeline": request["run_id"]},
            }
            try:
                result: dict[str, Any] = await workflow.execute_activity(
                    EXECUTE, phase, start_to_close_timeout=RUN_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT, retry_policy=ONCE,
                )  # fmt: skip
            except ActivityError as exc:
                result = {"status": "error", "message": f"the phase's activity failed: {exc.cause or exc}"}
            phases.append({"runbook": runbook, "run_id": phase["run_id"], "status": result["status"]})
            if result["status"] != "passed":
                status = result["status"] if result["status"] in ("failed", "refused") else "error"
                phases[-1]["message"] = result.get("message", "")
                break
        summary = {**request, "status": status, "phases": phases}
        with contextlib.suppress(ActivityError):
            await workflow.execute_activity(
                RECORD_PIPELINE, summary, schedule_to_close_timeout=timedelta(minutes=5),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )  # fmt: skip
        # A failed pipeline pages as a failed run does; a passing one resolves it.
        with contextlib.suppress(ActivityError):
            await workflow.execute_activity(
                PAGE,
                {"status": status, "runbook": request["pipeline"], "env": request["env"],
                 "run_id": request["run_id"], "message": phases[-1].get("message", "") if phases else ""},
                schedule_to_close_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )  # fmt: skip
        stopped = next((p for p in phases if p["status"] != "passed"), None)
        message = (
            f"stopped at {stopped['runbook']}: {stopped.get('message', '')}"
            if stopped
            else "every phase passed"
        )
        exit_code = {"passed": 0, "refused": 2}.get(status, 1)
        return {
            "exit_code": exit_code,
            "status": status,
            "message": message,
            "run_id": request["run_id"],
            "phases": phases,
            "parameters": request.get("parameters") or {},  # what a --resume must match
        }
