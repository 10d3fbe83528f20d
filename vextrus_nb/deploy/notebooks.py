"""The eight phase notebooks are one shape: this writes them from parameters/phases.yaml
and the inventory, so they never drift apart. `python -m vextrus_nb.deploy.notebooks`
rewrites notebooks/deploy/; a test checks the committed ones match.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from vextrus_nb import paths
from vextrus_nb.config import load_inventory
from vextrus_nb.deploy.phase_plan import PhaseSpec, load_phases

PARAMETERS = """env = "sandbox"              # environment name: parameters/environments/<env>.yaml
dry_run = True               # True: preflight and plan only; False: start the phase
confirm = ""                 # production: the environment's name, to start anything there
deadline_s = 600.0           # the whole phase must be healthy within this many seconds
poll_s = 0.5                 # how often health is asked while waiting
rollback_on_failure = False  # True: stop again what this run started when the phase fails"""


def _header(spec: PhaseSpec) -> str:
    inventory = load_inventory()
    names = ", ".join(f"`{c.name}`" for c in inventory.phase(spec.number) if c.kind != "dev_tool")
    earlier = f"phases 1 to {spec.number - 1}" if spec.number > 2 else "phase 1"
    needs = (
        f"Run it after {earlier} passed; its preflight refuses to start otherwise."
        if spec.number > 1
        else ("Run it first: the data layer has no prerequisites.")
    )
    checks = ", ".join(f"`{c}`" for c in spec.checks) or "none beyond the health endpoints"
    tasks = (
        "; then creates the Kafka domain-event topics that are missing"
        if "kafka_topics" in spec.tasks
        else ""
    )
    return f"""# Deployment phase {spec.number}: {spec.title}

**Purpose.** Start exactly this phase's components ({names}) in dependency order, wait on
their real health instead of sleeping{tasks}, verify them, and leave an account with each
component's start-to-healthy time.

**When to run.** On a cold start or a recovery of the platform, phase by phase. {needs}

**Risk.** Starts containers (compose) or scales workloads up (Kubernetes); nothing is stopped
or deleted unless `rollback_on_failure=True` and the phase fails. A dry run (the default) only
checks the earlier phases and shows the plan. In production it needs `confirm` equal to the
environment's name; the environment is locked while it runs.

**Expected duration.** Seconds to a few minutes: as long as the slowest component takes to
become healthy, never longer than `deadline_s`.

**Rollback.** With `rollback_on_failure=True` a failed phase stops what this run started, and
the platform is as it was before. Otherwise the notebook says exactly what was left running;
stop it with the driver's command or re-run this phase once the cause is fixed (components
already healthy are left alone).

**Verification.** Every component answers all its health endpoints; the phase's checks: {checks}."""


def phase_notebook(spec: PhaseSpec) -> nbformat.NotebookNode:
    start = f"""import vextrus_nb
from vextrus_nb.display import show
from vextrus_nb.runbooks.deploy import phases

rb = vextrus_nb.start("{spec.runbook}", env=env, dry_run=dry_run, confirm=confirm, destructive=True,
                      deadline_s=deadline_s, poll_s=poll_s, rollback_on_failure=rollback_on_failure)
phase = phases.open_phase(rb, {spec.number})"""
    cells = [
        new_markdown_cell(_header(spec)),
        new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
        new_code_cell(start),
        new_markdown_cell(
            "## 1. Preflight\n\nThe driver answers, and every component of the earlier phases is healthy. "
            "A component that is not stops the run here, named, before anything is started."
        ),
        new_code_cell(
            'with rb.step("preflight"):\n    phases.preflight(phase)\nshow(phase.preflight_table())'
        ),
        new_markdown_cell(
            "## 2. Plan\n\nWhat will be started, in which order (a component starts after its dependencies "
            "in this phase are healthy), and what is healthy already and will be left alone. "
            "This is all a dry run does."
        ),
        new_code_cell('with rb.step("plan"):\n    phases.plan(phase)\nshow(phase.plan_table())'),
        new_markdown_cell(
            "## 3. Start and wait for health\n\nEach order group is started together, then the "
            "driver's health (Docker healthcheck, Kubernetes readiness, the sandbox's endpoints) is "
            "polled until every component is healthy or the deadline passes. No fixed sleeps. On "
            "failure: the components that did not come up, their last log lines, and what was rolled "
            "back or left running."
        ),
        new_code_cell(
            'with rb.step("start and wait for health"):\n'
            "    phases.start(phase)\n"
            "show(phase.start_table())\nshow(phase.failure_note())\nshow(phase.log_lines())"
        ),
        new_markdown_cell("## 4. Tasks after start\n\nWork that needs the phase's components up."),
        new_code_cell('with rb.step("tasks"):\n    phases.tasks(phase)\nshow(phase.task_table())'),
        new_markdown_cell(
            "## 5. Verify\n\nEvery component of the phase on all its health endpoints (PostgreSQL "
            "and Redis by a real login), and the phase's own checks."
        ),
        new_code_cell('with rb.step("verify"):\n    phases.verify(phase)\nshow(phase.verify_table())'),
        new_markdown_cell(
            "## 6. Summary\n\nPer-component start-to-healthy seconds and the verdict go into the "
            "run record and the ledger. The run fails when the preflight, the start or a check failed."
        ),
        new_code_cell("phases.judge(phase)\nrb.finish()"),
    ]
    for number, cell in enumerate(cells):
        cell["id"] = f"phase{spec.number}-{number:02d}"  # stable ids: regenerating changes nothing
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    notebook.metadata["vextrus"] = {
        "destructive": True,
        "runbook": spec.runbook,
        "title": f"Deployment phase {spec.number}: {spec.title}",
    }
    return notebook


def write_all(directory: Path | None = None) -> list[Path]:
    folder = directory or paths.notebooks_dir() / "deploy"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in load_phases().values():
        path = folder / f"{spec.notebook}.ipynb"
        nbformat.write(phase_notebook(spec), path)
        written.append(path)
    return written


if __name__ == "__main__":
    for written in write_all():
        print(written)
