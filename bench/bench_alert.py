"""From an alert firing in Alertmanager to its sealed triage notebook, median of 5, against a
direct `vextrus-nb run incident/triage` on the same sandbox in the same run. Each alert is posted
to the sandbox's real Alertmanager as Prometheus would post it (a distinct label per round, so
each is a firing of its own); Alertmanager delivers it to the alert receiver, which submits
triage to one worker; the clock stops when the run's entry is in the shared ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.common import best_of, median, report

BIN = Path(sys.executable).parent
ROUNDS = 5


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="vextrus-bench-sandbox-"))
    os.environ["VEXTRUS_SANDBOX_DIR"] = str(root)
    os.environ["VEXTRUS_OUTPUTS_DIR"] = str(root / "outputs")
    from vextrus_nb.control import settings as control_settings
    from vextrus_nb.control import shared_ledger
    from vextrus_nb.sandbox import manager
    from vextrus_nb.sandbox_state import SandboxState

    manager.up(root, control=True)
    state = SandboxState.load(root)
    alertmanager = f"http://127.0.0.1:{state.ports['alertmanager']}"
    env = {**os.environ, "VEXTRUS_CONTROL": str(root / "control.yaml")}
    os.environ["VEXTRUS_CONTROL"] = env["VEXTRUS_CONTROL"]
    control = control_settings.load()
    worker = subprocess.Popen(
        [str(BIN / "vextrus-nb"), "worker", "--env", "sandbox"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert worker.stderr is not None and "polling" in worker.stderr.readline()

        def alert_runs() -> int:
            return sum(1 for line in shared_ledger.lines(control) if '"alert":' in line)

        durations = []
        for round_number in range(ROUNDS):
            before = alert_runs()
            labels = {"alertname": "VextrusCriticalComponentDown", "component": "auth",
                      "severity": "critical", "bench_round": f"{time.time_ns()}-{round_number}"}  # fmt: skip
            started = time.perf_counter()
            posted = httpx.post(
                f"{alertmanager}/api/v2/alerts",
                json=[{"labels": labels, "startsAt": datetime.now(UTC).isoformat()}],
            )
            posted.raise_for_status()
            while alert_runs() == before:
                time.sleep(0.05)
            durations.append(time.perf_counter() - started)

        def direct() -> None:
            subprocess.run(
                [str(BIN / "vextrus-nb"), "run", "incident/triage", "--env", "sandbox"],
                env=env,
                capture_output=True,
            )

        baseline, _ = best_of(direct, 3)
    finally:
        worker.terminate()
        worker.wait(90)
        manager.down(root)
    report(
        "alert_to_sealed_triage",
        median(durations),
        baseline,
        rounds=ROUNDS,
        each_s=json.dumps([round(d, 2) for d in durations]),
    )


if __name__ == "__main__":
    main()
