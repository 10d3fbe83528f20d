"""Interactive runs: the working copy an engineer steps through in JupyterLab, its state, and its
sealing.

`open_run` validates exactly like `vextrus-nb run` (the same `prepare`), writes the parameterized
copy (papermill's prepare-only path: no kernel) to the run's output path in outputs/, and
registers the run in `outputs/runs/<run id>.json`. The template under notebooks/ is never
written. Inside the kernel, `start()` finds its run through the notebook's path (Jupyter sets
JPY_SESSION_NAME for every kernel it starts) and records it as started by this kernel;
`finish()` writes the run record beside the registry entry. The next save of the working copy
(the Jupyter server's post-save hook, vextrus_nb/run/lab.py) or `vextrus-nb seal` then seals it
exactly as the runner seals a headless run. A run whose kernel went away before finishing is
recorded as abandoned by the next `open`, `run` or `runs`.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vextrus_nb import paths
from vextrus_nb.clock import now_utc
from vextrus_nb.errors import RunRefused
from vextrus_nb.evidence import identity, ledger, scrub, seal
from vextrus_nb.run.naming import new_run_id, output_path_for

SESSION_PATH_VAR = "JPY_SESSION_NAME"  # the notebook's path, in every kernel Jupyter starts
EXECUTED_BY = "vextrus-nb open"
OPEN_STATES = ("opened", "started")  # not finished yet


def runs_dir(outputs_dir: Path | None = None) -> Path:
    return (outputs_dir or paths.outputs_dir()) / "runs"


def _entry_path(run_id: str, outputs_dir: Path | None = None) -> Path:
    return runs_dir(outputs_dir) / f"{run_id}.json"


def record_path(run_id: str, outputs_dir: Path | None = None) -> Path:
    """Where the kernel's finish() leaves the run record for sealing (private: 0600)."""
    return runs_dir(outputs_dir) / f".{run_id}.record.json"


def spill_path(run_id: str, outputs_dir: Path | None = None) -> Path:
    """Every secret value the kernel learned, for the final scrub (private: 0600)."""
    return runs_dir(outputs_dir) / f".{run_id}.seen"


def read_entry(run_id: str, outputs_dir: Path | None = None) -> dict[str, Any] | None:
    path = _entry_path(run_id, outputs_dir)
    with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
        return json.loads(path.read_text())
    return None


def update_entry(run: str, outputs_dir: Path | None = None, **fields: Any) -> dict[str, Any]:
    """Change a run's registry entry, atomically (a reader never sees half a file)."""
    entry = {**(read_entry(run, outputs_dir) or {"run_id": run}), **fields}
    path = _entry_path(run, outputs_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(json.dumps(entry, indent=2, default=str))
    scratch.replace(path)
    return entry


def _private(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    return path


@dataclass(frozen=True)
class OpenedRun:
    run_id: str
    notebook: Path  # the working copy, at the run's output path
    plan: Any = None  # runner.Plan: what a request for approvals is made from


def open_run(
    runbook: str,
    env: str,
    given: dict[str, Any] | None = None,
    parameters_file: Path | None = None,
    outputs_dir: Path | None = None,
) -> OpenedRun:
    """The parameterized working copy of a runbook in outputs/; RunRefused exactly as `run` refuses."""
    import nbformat
    import papermill

    from vextrus_nb.run.runner import prepare

    outputs_dir = outputs_dir or paths.outputs_dir()
    reap_abandoned(outputs_dir)
    # A gated run opens and waits: its approvals are asked for when it is opened (`vextrus-nb
    # open` submits the request) and its start cell takes the lease only once they are in.
    plan = prepare(runbook, env, given, parameters_file, approvals_awaited=True)
    secret_given = [k for k, v in (given or {}).items() if scrub.is_secret_name(k) and v not in (None, "")]
    if secret_given:
        # The working copy is a file on disk: a credential in it would outlive the run.
        raise RunRefused(
            f"parameter(s) {', '.join(secret_given)} name a secret: a working copy never holds one; "
            "pass it by reference (the environment's secrets) instead"
        )
    run_id = new_run_id()
    opened = datetime.now(UTC)
    output = output_path_for(outputs_dir, plan.env.name, plan.runbook, run_id, opened)
    output.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        str(plan.notebook), str(output), parameters=plan.parameters, prepare_only=True, progress_bar=False
    )
    nb = nbformat.read(output, as_version=4)
    nb.metadata["vextrus"] = {**plan.metadata, "run": {"run_id": run_id, "opened_at": opened.isoformat()}}
    nbformat.write(nb, output)
    update_entry(
        run_id,
        outputs_dir,
        **identity.run_identity(run_id, plan.runbook, plan.env.name, plan.parameters),
        state="opened",
        opened_at=opened.isoformat(timespec="seconds"),
        output=str(output.relative_to(outputs_dir)),
        destructive=bool(plan.metadata.get("destructive")),
    )
    return OpenedRun(run_id, output, plan)


# -- inside the kernel ------------------------------------------------------------------------------
def notebook_of_this_kernel() -> Path | None:
    path = os.environ.get(SESSION_PATH_VAR)
    return Path(path) if path else None


def run_of_notebook(notebook: Path) -> str | None:
    """The run id a working copy belongs to (its metadata.vextrus.run), or None."""
    with contextlib.suppress(OSError, json.JSONDecodeError):
        meta = json.loads(notebook.read_text()).get("metadata", {}).get("vextrus", {})
        return (meta.get("run") or {}).get("run_id")
    return None


def is_template(notebook: Path) -> bool:
    with contextlib.suppress(ValueError):
        notebook.resolve().relative_to(paths.notebooks_dir().resolve())
        return True
    return False


def kernel_started(run_id: str) -> dict[str, Any]:
    """This kernel takes the run (again, when its start cell is re-run); refused when the run
    is over: sealed, abandoned, or held by another live kernel."""
    entry = read_entry(run_id) or {}
    state, pid = entry.get("state"), entry.get("kernel_pid")
    if state in ("sealed", "abandoned", "finished") and pid != os.getpid():
        raise RunRefused(
            f"run {run_id} is {state}; its evidence is final. Open a new run: "
            f"vextrus-nb open {entry.get('runbook', 'RUNBOOK')} --env {entry.get('env', 'ENV')}"
        )
    if state == "sealed":
        raise RunRefused(f"run {run_id} is sealed; open a new run to run it again")
    if pid and pid != os.getpid() and _alive(pid):
        raise RunRefused(f"run {run_id} is being run by another kernel (pid {pid})")
    if pid and pid != os.getpid() and state in OPEN_STATES:
        abandon(run_id, entry, "its kernel stopped before the run finished")
        raise RunRefused(
            f"run {run_id} was abandoned when its kernel stopped (recorded in the ledger); "
            f"open a new run: vextrus-nb open {entry.get('runbook')} --env {entry.get('env')}"
        )
    _private(spill_path(run_id))
    return update_entry(run_id, state="started", kernel_pid=os.getpid(), started_at=now_utc())


def kernel_finished(run_id: str, record: dict[str, Any]) -> None:
    """Leave the record for sealing; the run is finished (re-running finish replaces it)."""
    path = _private(record_path(run_id))
    path.write_text(json.dumps(record, indent=2, default=str))
    update_entry(run_id, state="finished", status=record.get("status"), ended_at=record.get("ended_at"))


# -- sealing ----------------------------------------------------------------------------------------
def verdict_shown(nb: Any, run_id: str) -> bool:
    """The saved notebook holds the finish cell's verdict for this run (so it is complete)."""
    return any(
        (out.get("metadata") or {}).get("vextrus", {}).get("verdict") == run_id
        for cell in nb.cells
        for out in cell.get("outputs", [])
    )


def seal_run(run_id: str, outputs_dir: Path | None = None) -> dict[str, Any]:
    """Seal a finished interactive run from its saved working copy; returns the ledger entry."""
    import nbformat

    from vextrus_nb.config import load_environment, load_inventory

    outputs_dir = outputs_dir or paths.outputs_dir()
    entry = read_entry(run_id, outputs_dir)
    if entry is None:
        raise RunRefused(f"no interactive run {run_id} in {runs_dir(outputs_dir)}")
    if entry.get("state") == "sealed":
        raise RunRefused(
            f"run {run_id} is already sealed (ledger entry {entry.get('ledger_hash', '?')[:12]})"
        )
    if entry.get("state") != "finished" or not record_path(run_id, outputs_dir).is_file():
        raise RunRefused(f"run {run_id} is {entry.get('state')}: run its finish cell, then save, then seal")
    notebook = outputs_dir / entry["output"]
    nb = nbformat.read(notebook, as_version=4)
    if not verdict_shown(nb, run_id):
        raise RunRefused(
            f"{notebook} does not show run {run_id}'s verdict yet: save it after the finish cell"
        )
    env = load_environment(entry["env"], load_inventory())
    kernel_record = json.loads(record_path(run_id, outputs_dir).read_text())
    failed = kernel_record.get("status") != "passed"
    record = {
        **kernel_record,
        **{k: entry[k] for k in ("run_id", "runbook", "env") if k in entry},
        # What the kernel ran with wins over what was opened: an engineer may edit the working
        # copy's parameters (start() guards them as it guards any run).
        "parameters": {**entry.get("parameters", {}), **kernel_record.get("parameters", {})},
        "destructive": entry.get("destructive", kernel_record.get("destructive")),
        "opened_at": entry.get("opened_at"),
        "cause": f"RunbookFailed: {'; '.join(kernel_record.get('failures') or [])}" if failed else "",
    }
    scrubber = seal.scrubber_for(env, entry.get("parameters", {}), spill_path(run_id, outputs_dir))
    meta = {k: v for k, v in nb.metadata.get("vextrus", {}).items() if k != "run"}
    sealed = seal.seal(nb, notebook, record, meta, scrubber, outputs_dir, EXECUTED_BY)
    for private in (record_path(run_id, outputs_dir), spill_path(run_id, outputs_dir)):
        private.unlink(missing_ok=True)
    update_entry(run_id, outputs_dir, state="sealed", ledger_hash=sealed["hash"], sealed_at=now_utc())
    return sealed


def seal_if_finished(notebook: Path, outputs_dir: Path | None = None) -> dict[str, Any] | None:
    """The post-save hook's question: is this a finished run's working copy, complete? Then seal it."""
    run_id = run_of_notebook(notebook)
    if run_id is None:
        return None
    entry = read_entry(run_id, outputs_dir) or {}
    if entry.get("state") != "finished":
        return None
    import nbformat

    if not verdict_shown(nbformat.read(notebook, as_version=4), run_id):
        return None
    return seal_run(run_id, outputs_dir)


def is_sealed_notebook(notebook: Path) -> bool:
    with contextlib.suppress(OSError, json.JSONDecodeError):
        return "record" in json.loads(notebook.read_text()).get("metadata", {}).get("vextrus", {})
    return False


# -- listing and abandoned runs -------------------------------------------------------------------
def _alive(pid: int) -> bool:
    """A live kernel process: the pid exists and is an IPython kernel (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"ipykernel" in cmdline or b"jupyter" in cmdline


def abandon(run_id: str, entry: dict[str, Any], why: str, outputs_dir: Path | None = None) -> dict[str, Any]:
    """Record a run that will never finish: a ledger entry (no notebook: nothing was sealed)."""
    ledger.append_entry(
        {
            **{k: entry.get(k) for k in ("run_id", "runbook", "env", "parameters", "operator", "host")},
            "git_commit": entry.get("git_commit"),
            "package_version": entry.get("package_version"),
            "started_at": entry.get("started_at") or entry.get("opened_at"),
            "ended_at": now_utc(),
            "status": "abandoned",
            "cause": why,
            "summary": {},
            "failures": [],
            "steps": [],
            "executed_by": EXECUTED_BY,
            "output": None,
            "output_sha256": None,
            "working_copy": entry.get("output"),
        },
        outputs_dir,
    )
    for private in (record_path(run_id, outputs_dir), spill_path(run_id, outputs_dir)):
        private.unlink(missing_ok=True)
    return update_entry(run_id, outputs_dir, state="abandoned", abandoned_because=why)


def reap_abandoned(outputs_dir: Path | None = None) -> list[str]:
    """Runs started by a kernel that is gone, never finished: recorded abandoned, once."""
    reaped = []
    for entry in list_entries(outputs_dir):
        pid = entry.get("kernel_pid")
        if entry.get("state") == "started" and pid and not _alive(pid):
            abandon(
                entry["run_id"], entry, f"its kernel (pid {pid}) stopped before the run finished", outputs_dir
            )
            reaped.append(entry["run_id"])
    return reaped


def list_entries(outputs_dir: Path | None = None) -> list[dict[str, Any]]:
    folder = runs_dir(outputs_dir)
    entries = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        with contextlib.suppress(json.JSONDecodeError):
            entries.append(json.loads(path.read_text()))
    return sorted(entries, key=lambda e: str(e.get("opened_at", "")))
