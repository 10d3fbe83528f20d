"""The workflow of one submitted run: execute the runbook once on its environment's task queue,
and if the worker executing it is lost, record that instead of running it again.

Workflow code must be deterministic (Temporal replays it): it only schedules activities, by name,
and reads their results. Everything else lives in activities.py.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutError, TimeoutType

WORKFLOW_NAME = "RunbookRun"
PIPELINE_NAME = "PipelineRun"
EXECUTE = "execute_runbook"
RECORD_LOST = "record_lost_run"
RECORD_PIPELINE = "record_pipeline"
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
RUN_TIMEOUT = timedelta(hours=6)
# One attempt, never an automatic retry: a runbook that changed an environment half way must not
# run again on its own, and a read-only one is cheap to submit again by hand.
ONCE = RetryPolicy(maximum_attempts=1)


@workflow.defn(name=WORKFLOW_NAME)
class RunbookRun:
    @workflow.run
    async def run(self, request: dict[str, Any]) -> dict[str, Any]:
        # A submitted run comes with its id; a scheduled firing gets one here (replay-safe).
        request = {**request, "run_id": request.get("run_id") or workflow.uuid4().hex[:12]}
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
                lost = {
                    **request,
                    "status": "error",
                    "cause": f"worker lost (host {host}): no heartbeat for {HEARTBEAT_TIMEOUT.seconds} s",
                    "host": host,
                }
            else:
                lost = {
                    **request,
                    "status": "error",
                    "cause": f"the run's activity failed: {exc.cause or exc}",
                }
            # On record in the ledger, by whichever worker of the queue is alive; bounded, so a
            # queue with no worker left does not hold the workflow open forever.
            with contextlib.suppress(ActivityError):
                await workflow.execute_activity(
                    RECORD_LOST,
                    lost,
                    schedule_to_close_timeout=timedelta(minutes=5),
                    retry_policy=RetryPolicy(maximum_attempts=3),
                )
            return {"exit_code": 1, "status": "error", "message": lost["cause"], "run_id": request["run_id"]}


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
        }
