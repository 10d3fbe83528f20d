"""A submitted smoke run, from `vextrus-nb submit --wait` to its sealed notebook, against
`vextrus-nb run verify/smoke` on the same sandbox in the same run (goal: at most 1.5x), and the
submit-to-start latency (the workflow started until its activity started on a worker), read from
Temporal's own history. Both seal into the sandbox's control store; one worker polls the queue."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import best_of, median, report

BIN = Path(sys.executable).parent
REPEATS = 3


def _start_latency_s(settings: Path, run_id: str) -> float:
    from temporalio.api.enums.v1 import EventType

    from vextrus_nb.control import settings as control_settings
    from vextrus_nb.service import client

    async def read() -> float:
        os.environ["VEXTRUS_CONTROL"] = str(settings)
        connected = await client.connect(control_settings.load())
        history = await connected.get_workflow_handle(run_id).fetch_history()
        times = {}
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                times["submitted"] = event.event_time.ToDatetime()
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED and "started" not in times:
                times["started"] = event.event_time.ToDatetime()
        return (times["started"] - times["submitted"]).total_seconds()

    return asyncio.run(read())


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="vextrus-bench-sandbox-"))
    os.environ["VEXTRUS_SANDBOX_DIR"] = str(root)
    os.environ["VEXTRUS_OUTPUTS_DIR"] = str(root / "outputs")
    from vextrus_nb.sandbox import manager

    manager.up(root, control=True)
    settings = root / "control.yaml"
    env = {**os.environ, "VEXTRUS_CONTROL": str(settings)}
    worker = subprocess.Popen(
        [str(BIN / "vextrus-nb"), "worker", "--env", "sandbox"], env={**env, "VEXTRUS_HOST": "bench-worker"},
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert worker.stderr is not None and "polling" in worker.stderr.readline()
        run_ids: list[str] = []

        def submitted() -> None:
            done = subprocess.run(
                [str(BIN / "vextrus-nb"), "submit", "verify/smoke", "--env", "sandbox", "--wait"],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            run_ids.append(done.stdout.split()[0])

        def direct() -> None:
            subprocess.run(
                [str(BIN / "vextrus-nb"), "run", "verify/smoke", "--env", "sandbox"],
                env=env, capture_output=True, check=True,
            )  # fmt: skip

        direct()  # the first run warms the sandbox's connections for both
        ours, _ = best_of(submitted, REPEATS)
        baseline, _ = best_of(direct, REPEATS)
        latency = median([_start_latency_s(settings, run_id) for run_id in run_ids])
    finally:
        worker.terminate()
        worker.wait(90)
        manager.down(root)
    report("submit_vs_run_smoke", ours, baseline, submit_to_start_s=round(latency, 3), goal_ratio=1.5)


if __name__ == "__main__":
    main()
