"""The deployment phases on a real Docker engine, through the compose driver.

The stack is vextrus_nb.sandbox.compose_stack: one container per component of
phases 1-8 (real PostgreSQL and Redis, the simulated components each in their
own process), host networking, Docker healthchecks. The gateway is planted
with a healthcheck that never passes, so phase 8 fails first; the fault is
then removed and phase 8 completes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from vextrus_nb.config import load_inventory
from vextrus_nb.deploy.phase_plan import load_phases, phase_components
from vextrus_nb.sandbox.compose_stack import LocalStack, write_environment, write_stack

from .docker_engine import remove_compose_project
from .helpers import ledger_entries, notebook_plain_text, run_cli

ENV = "docker"
PROJECT = "vxtest"
PLANTED = "api-gateway"


@pytest.fixture(scope="module")
def stack(
    docker_client: Any, own_parameters: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    directory = tmp_path_factory.mktemp("stack")
    remove_compose_project(docker_client, PROJECT)
    built = write_stack(directory, load_inventory(), project=PROJECT, faults={PLANTED: "unhealthy"})
    write_environment(own_parameters, ENV, built)
    yield built
    subprocess.run(
        ["docker-compose", "-p", PROJECT, "-f", str(built.compose_file), "down", "-t", "1"],
        capture_output=True,
        timeout=300,
    )
    remove_compose_project(docker_client, PROJECT)


def containers(client: Any) -> dict[str, Any]:
    listed = client.containers.list(all=True, filters={"label": f"com.docker.compose.project={PROJECT}"})
    return {c.labels["com.docker.compose.service"]: c for c in listed}


def run_phase(number: int, *parameters: str) -> tuple[subprocess.CompletedProcess[str], Path | None]:
    runbook = load_phases()[number].runbook
    done = run_cli("run", runbook, "--env", ENV, *[a for p in parameters for a in ("-p", p)], timeout=300)
    lines = done.stdout.strip().splitlines()
    output = Path(lines[-1]) if lines and lines[-1].endswith(".ipynb") else None
    return done, output


def record(output: Path) -> dict[str, Any]:
    return nbformat.read(output, as_version=4).metadata["vextrus"]["record"]


def phase_names(number: int) -> list[str]:
    from vextrus_nb.config import load_environment

    inventory = load_inventory()
    return [c.name for c in phase_components(load_environment(ENV, inventory), inventory, number)]


def test_dry_run_changes_nothing_and_preflight_names_what_is_missing(
    stack: LocalStack, docker_client: Any, outputs: Path
) -> None:
    done, output = run_phase(1)
    assert done.returncode == 0, done.stderr
    assert containers(docker_client) == {}, "a dry run created containers"
    text = notebook_plain_text(output)
    assert "start, wait until healthy" in text and "dry run, nothing was started" in text
    assert record(output)["summary"]["to_start"] == 3

    # Phase 2 before phase 1: refused by its preflight, naming each missing component.
    done, output = run_phase(2, "dry_run=False")
    assert done.returncode == 1
    failures = record(output)["failures"][0]
    for name in ("postgres", "redis", "elasticsearch"):
        assert f"{name} (absent)" in failures
    assert containers(docker_client) == {}, "a refused phase created containers"


def test_cold_start_phase_by_phase_with_a_planted_fault(
    stack: LocalStack, docker_client: Any, outputs: Path
) -> None:
    for number in range(1, 8):
        done, output = run_phase(number, "dry_run=False", "deadline_s=90", "poll_s=0.25")
        assert done.returncode == 0, (number, done.stderr[-3000:])
        summary = record(output)["summary"]
        names = phase_names(number)
        assert summary["healthy"] == len(names) == summary["started"]
        timings = summary["start_to_healthy_s"]  # how long they take: bench/bench_deploy.py
        assert set(timings) == set(names) and all(s >= 0 for s in timings.values()), timings
        text = notebook_plain_text(output)
        assert "Every component of the phase is healthy." in text
        running = containers(docker_client)
        for name in names:
            assert running[name].attrs["State"]["Health"]["Status"] == "healthy", name
    earlier = [n for p in range(1, 8) for n in phase_names(p)]

    # Phase 8 with the gateway's healthcheck never passing: gives up at its deadline (rather than
    # waiting on; run_cli's own timeout would fail the test), names it, shows its last log lines,
    # and leaves phases 1-7 running.
    # 20 s: time for the planted gateway to start and fail a few 2 s healthchecks, so its log has
    # the failures to show even on a loaded machine (at 8 s, two clean-clone runs beside other
    # test runs gave up before its first one, and the log shown had none).
    done, output = run_phase(8, "dry_run=False", "deadline_s=20", "poll_s=0.25")
    assert done.returncode == 1
    rec = record(output)
    assert rec["summary"]["not_healthy"] == [PLANTED]
    # A lower bound, which no load can break: it gave up only once its deadline had passed.
    assert rec["summary"]["phase_seconds"] >= 20
    assert PLANTED in rec["failures"][0]
    text = notebook_plain_text(output)
    assert f"Not healthy within 20 s: {PLANTED}." in text
    assert f"Left running as they are: 0 healthy (none), 1 not healthy ({PLANTED})" in text
    assert "Health Check has failed!" in text, "the planted service's last log lines are shown"
    assert "verify: skipped, the phase did not come up (api-gateway)" in text
    running = containers(docker_client)
    assert all(running[n].attrs["State"]["Health"]["Status"] == "healthy" for n in earlier)

    # Again, with rollback: what this run started is stopped, the earlier phases stay up.
    done, output = run_phase(8, "dry_run=False", "deadline_s=4", "poll_s=0.25", "rollback_on_failure=True")
    assert done.returncode == 1
    assert record(output)["summary"]["rolled_back"] == [PLANTED]
    assert "Rolled back (stopped again): api-gateway." in notebook_plain_text(output)
    running = containers(docker_client)
    assert not running[PLANTED].attrs["State"]["Running"]
    assert all(running[n].attrs["State"]["Running"] for n in earlier)

    # The fault fixed (the compose file rewritten without it): phase 8 completes, its own check
    # (every subgraph registered with the gateway) included.
    write_stack(stack.directory, load_inventory(), project=PROJECT, ports=stack.ports)
    done, output = run_phase(8, "dry_run=False", "deadline_s=90", "poll_s=0.25")
    assert done.returncode == 0, done.stderr[-3000:]
    assert record(output)["summary"]["healthy"] == 1
    text = notebook_plain_text(output)
    assert "Every component of the phase is healthy." in text and "FED-SUBGRAPHS" in text
    entries = [e for e in ledger_entries(outputs) if e["runbook"].startswith("deploy/")]
    assert [e["status"] for e in entries[-3:]] == ["failed", "failed", "passed"]
