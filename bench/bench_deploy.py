"""A full cold start of the platform on a real Docker engine: the 8 deployment-phase
runbooks (`vextrus-nb run deploy/0N -p dry_run=False`, each waiting on real health and
verifying) against the reference plan's way, its `docker-compose up` steps followed by
their fixed sleeps (parameters/phases.yaml, `reference:`).

The baseline's `up` commands are run and timed; its sleeps are added, not slept (they
are the plan's constants, 580 s in all). The runbooks' overhead is what they spend beyond
starting the platform and waiting on its health (kernel start, preflight, plan,
verification, the run record): the issue aims for under two minutes for all 8 phases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import report

ENV = "bench-docker"
PROJECT = "vxbench"


def main() -> None:
    from tests.docker_engine import docker_engine, remove_compose_project
    from vextrus_nb import paths
    from vextrus_nb.config import load_inventory
    from vextrus_nb.deploy.phase_plan import load_phases
    from vextrus_nb.sandbox.compose_stack import ensure_base_image, write_environment, write_stack

    work = Path(tempfile.mkdtemp(prefix="vextrus-bench-deploy-"))
    parameters = work / "parameters"
    subprocess.run(["cp", "-r", str(paths.parameters_dir()), str(parameters)], check=True)
    os.environ["VEXTRUS_PARAMETERS_DIR"] = str(parameters)
    os.environ["VEXTRUS_OUTPUTS_DIR"] = str(work / "outputs")
    cli = str(Path(sys.executable).parent / "vextrus-nb")
    with docker_engine(work) as client:
        ensure_base_image(client)
        remove_compose_project(client, PROJECT)
        stack = write_stack(work / "stack", load_inventory(), project=PROJECT)
        write_environment(parameters, ENV, stack)
        compose = ["docker-compose", "-p", PROJECT, "-f", str(stack.compose_file)]
        phases = load_phases()
        try:
            started = time.perf_counter()
            waited = 0.0
            for spec in phases.values():
                done = subprocess.run(
                    [cli, "run", spec.runbook, "--env", ENV, "-p", "dry_run=False", "-p", "poll_s=0.25"],
                    capture_output=True,
                    text=True,
                )
                if done.returncode != 0:
                    raise SystemExit(f"{spec.runbook} failed: {done.stderr[-2000:]}")
            ours = time.perf_counter() - started
            ledger = [
                json.loads(line) for line in (work / "outputs" / "ledger.jsonl").read_text().splitlines()
            ]
            waited = sum(
                s["seconds"] for e in ledger for s in e["steps"] if s["title"] == "start and wait for health"
            )
            subprocess.run([*compose, "down", "-t", "1"], capture_output=True, check=True)

            ups, sleeps = 0.0, 0.0
            for spec in phases.values():
                for step in spec.reference:
                    began = time.perf_counter()
                    subprocess.run(
                        [*compose, "up", "-d", "--no-deps", *step.start], capture_output=True, check=True
                    )
                    ups += time.perf_counter() - began
                    sleeps += step.sleep_s
        finally:
            subprocess.run([*compose, "down", "-t", "1"], capture_output=True)
    report(
        "deploy_cold_start_runbooks_vs_reference_sleeps",
        ours,
        ups + sleeps,
        phases=len(phases),
        components=len(stack.ports),
        runbooks_waiting_on_health_s=round(waited, 1),
        runbooks_overhead_s=round(ours - waited, 1),
        overhead_under_2_min=ours - waited < 120,
        reference_up_commands_s=round(ups, 1),
        reference_fixed_sleeps_s=sleeps,
    )


if __name__ == "__main__":
    main()
