"""Interactive runs without a browser: the working copy `vextrus-nb open` writes, executed by a
kernel that knows its notebook's path as Jupyter tells every kernel (JPY_SESSION_NAME), saved, and
sealed by the same hook JupyterLab calls. The browser itself is in tests/test_lab.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from vextrus_nb.evidence import ledger
from vextrus_nb.run import interactive, lab
from vextrus_nb.sandbox import manager
from vextrus_nb.sandbox_state import SandboxState

from .helpers import REPO, ledger_entries, run_cli


def wait_until(condition: object, what: str, timeout_s: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def open_copy(*args: str) -> Path:
    done = run_cli("open", *args)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def execute(
    path: Path, *, cells: slice | None = None, client: NotebookClient | None = None
) -> NotebookClient:
    """Run the copy's cells (all, or a slice) in one kernel, as Lab's Run All would; keep it for more."""
    nb = client.nb if client else nbformat.read(path, as_version=4)
    if client is None:
        os.environ[interactive.SESSION_PATH_VAR] = str(path)
        try:
            client = NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True)
            client.km = client.create_kernel_manager()
            client.start_new_kernel()
            client.start_new_kernel_client()
        finally:
            os.environ.pop(interactive.SESSION_PATH_VAR, None)
    for index, cell in list(enumerate(nb.cells))[cells or slice(None)]:
        if cell.cell_type == "code":
            client.execute_cell(cell, index)
    return client


def stop(client: NotebookClient) -> None:
    """Shut the kernel down, as Lab's restart or shutdown does (the manager is async)."""
    from nbclient.util import run_sync

    run_sync(client.km.shutdown_kernel)(now=True)


def save(client: NotebookClient, path: Path) -> None:
    """What Lab's save does on the server: write the file, then the post-save hook."""
    nbformat.write(client.nb, path)
    lab.post_save_hook(model={}, os_path=str(path), contents_manager=type("CM", (), {"log": _Log()})())


class _Log:
    def info(self, *args: object) -> None:
        pass


def test_open_validates_like_run_and_writes_only_into_outputs(sandbox: SandboxState, outputs: Path) -> None:
    for args, says in (
        (("verify/smokey", "--env", "sandbox"), "unknown runbook"),
        (("verify/smoke", "--env", "sandbox", "-p", "timeout_s=fast"), "'timeout_s' expects float or None"),
        (("dr/backup", "--env", "production", "-p", "dry_run=false"), "pass -p confirm=production"),
        (("incident/triage", "--env", "sandbox", "-p", "timeout_s=0"), "timeout_s must be positive"),
        (("verify/smoke", "--env", "sandbox", "-p", "db_password=hunter2hunter2"), "unknown parameter"),
    ):
        done = run_cli("open", *args)
        assert done.returncode == 2 and says in done.stderr, (args, done.stderr)
    assert not outputs.exists() or not list(outputs.rglob("*.ipynb"))
    copy = open_copy("verify/smoke", "--env", "sandbox", "-p", "timeout_s=3")
    assert copy.is_relative_to(outputs / "sandbox")
    nb = nbformat.read(copy, as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "timeout_s = 3" in injected[0].source and not any(c.get("outputs") for c in nb.cells)
    assert subprocess.run(["git", "status", "--porcelain", "notebooks/"], cwd=REPO, capture_output=True,
                          text=True).stdout == ""  # fmt: skip
    assert ledger_entries(outputs) == []  # opened is not yet run


def test_an_interactive_run_is_sealed_on_save_like_a_headless_one(
    healthy: SandboxState, outputs: Path
) -> None:
    copy = open_copy("verify/smoke", "--env", "sandbox")
    run_id = interactive.run_of_notebook(copy)
    client = execute(copy)
    save(client, copy)
    try:
        [entry] = ledger_entries(outputs)
        assert entry["run_id"] == run_id and entry["status"] == "passed"
        assert entry["executed_by"] == "vextrus-nb open" and entry["output"] == str(copy.relative_to(outputs))
        assert entry["parameters"]["dry_run"] is True and "timeout_s" in entry["parameters"]  # every one
        sealed = nbformat.read(copy, as_version=4)
        assert sealed.metadata["vextrus"]["record"]["run_id"] == run_id
        assert ledger.verify_ledger(outputs).ok
        for secret in (healthy.root / "secrets").iterdir():
            assert secret.read_text().strip() not in copy.read_text()
        # Re-running a step and the finish cell after the seal adds nothing to the record.
        execute(copy, cells=slice(-3, None), client=client)
        # Lab refuses to save a sealed notebook:
        contents = lab.RunbookContentsManager(root_dir=str(outputs.parent))
        assert not contents.is_writable(str(copy.relative_to(outputs.parent)))
        assert len(ledger_entries(outputs)) == 1
        copy.write_bytes(copy.read_bytes().replace(b"PASSED", b"PASSEd", 1))  # one byte
        assert not ledger.verify_ledger(outputs).ok
    finally:
        stop(client)


def test_a_re_run_step_is_an_attempt_and_a_failing_run_is_a_verdict(
    healthy: SandboxState, outputs: Path
) -> None:
    copy = open_copy("verify/smoke", "--env", "sandbox")
    manager.fault("postgres", "down", root=healthy.root)
    client = execute(copy)  # Run All: the judge finds postgres down, finish says FAILED
    manager.heal(root=healthy.root)
    cells = client.nb.cells
    start = next(i for i, c in enumerate(cells) if "vextrus_nb.start(" in c.source)
    sweep = next(i for i, c in enumerate(cells) if "run_sweep" in c.source)
    execute(copy, cells=slice(sweep, sweep + 1), client=client)  # a step after finish is refused
    assert "is finished: re-run its start cell" in json.dumps(cells[sweep].outputs)
    for again in (start, sweep, len(cells) - 1):  # the run goes on: start, sweep, judge and finish
        execute(copy, cells=slice(again, again + 1), client=client)
    save(client, copy)
    try:
        [entry] = ledger_entries(outputs)
        steps = {s["title"]: s for s in entry["steps"]}
        assert steps["sweep every component"]["attempts"] == 2
        assert steps["judge"]["attempts"] == 2 and steps["judge"]["earlier"][0]["status"] == "failed"
        # The first judge's finding went with its attempt: the verdict agrees with the summary.
        assert entry["status"] == "passed" and entry["failures"] == [] and entry["summary"]["down"] == 0
    finally:
        stop(client)
    failing = open_copy("verify/smoke", "--env", "sandbox")
    manager.fault("postgres", "down", root=healthy.root)
    client = execute(failing)
    save(client, failing)
    try:
        entry = ledger_entries(outputs)[-1]
        assert entry["status"] == "failed" and "postgres" in entry["cause"]
        errors = [o for c in nbformat.read(failing, as_version=4).cells for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]  # fmt: skip
        verdict = entry["cause"].removeprefix("RunbookFailed: ")
        assert [e["traceback"] for e in errors] == [[f"FAILED: {verdict}"]]  # a verdict, no traceback
    finally:
        stop(client)


def test_a_live_destructive_run_keeps_its_lock_across_a_re_run_start_and_a_restart_abandons_it(
    healthy: SandboxState, outputs: Path
) -> None:
    copy = open_copy("dr/backup", "--env", "sandbox", "-p", "dry_run=false", "-p", "services=auth")
    run_id = interactive.run_of_notebook(copy)
    client = execute(copy, cells=slice(0, 3))
    start = next(i for i, c in enumerate(client.nb.cells) if "vextrus_nb.start(" in c.source)
    execute(copy, cells=slice(start, start + 1), client=client)  # the start cell again
    assert not [o for o in client.nb.cells[start].outputs if o.get("output_type") == "error"]
    done = run_cli("run", "dr/backup", "--env", "sandbox", "-p", "dry_run=false")
    assert done.returncode == 2 and f"locked by run {run_id}" in done.stderr
    assert f"locked by run {run_id}" in run_cli("locks").stdout
    pid = client.km.provisioner.pid  # type: ignore[union-attr]
    stop(client)  # the engineer restarts the kernel: the run is abandoned
    wait_until(lambda: not interactive._alive(pid), "the kernel process to be gone")
    assert "free" in run_cli("locks").stdout.split("sandbox:")[1].splitlines()[0]
    listed = run_cli("runs")
    assert run_id in listed.stdout and "abandoned" in listed.stdout
    [entry] = ledger_entries(outputs)
    assert entry["run_id"] == run_id and entry["status"] == "abandoned" and entry["output"] is None
    assert json.loads((outputs / "runs" / f"{run_id}.json").read_text())["state"] == "abandoned"
