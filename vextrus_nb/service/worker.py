"""`vextrus-nb worker --env ENV`: a Temporal worker on each environment's task queue, run on a
host that can reach those environments. It executes runbooks one at a time per worker (a
notebook needs the machine's cores); SIGTERM stops it taking new runs and lets the current one
finish within a grace period, saying which."""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
from collections.abc import Callable
from datetime import timedelta

from temporalio.worker import Worker

from vextrus_nb.control.settings import Control
from vextrus_nb.evidence import identity
from vextrus_nb.service import activities
from vextrus_nb.service.client import connect, task_queue
from vextrus_nb.service.workflows import PipelineRun, RunbookRun

GRACEFUL_STOP = timedelta(seconds=60)


async def serve(control: Control, envs: list[str], say: Callable[[str], None]) -> None:
    client = await connect(control)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=2 * len(envs))
    workers = [
        Worker(
            client,
            task_queue=task_queue(env),
            workflows=[RunbookRun, PipelineRun],
            activities=[
                activities.execute_runbook,
                activities.record_lost_run,
                activities.record_pipeline,
                activities.page_outcome,
            ],
            activity_executor=executor,
            max_concurrent_activities=1,
            identity=f"{identity.host()}@{env}",
            graceful_shutdown_timeout=GRACEFUL_STOP,
        )
        for env in envs
    ]
    running = [asyncio.create_task(w.run()) for w in workers]
    queues = ", ".join(task_queue(e) for e in envs)
    say(f"worker {identity.host()} polling {queues} at {client.service_client.config.target_host}")
    done, _ = await asyncio.wait(
        [*running, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    for task in done:
        if task in running and task.exception():
            raise task.exception()  # type: ignore[misc]
    say(f"stopping: no new runs; a run in progress gets up to {GRACEFUL_STOP.seconds} s to finish")
    await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
    say("stopped")
