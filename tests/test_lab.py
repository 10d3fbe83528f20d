"""Interactive runs in a real browser: `vextrus-nb lab` (the project's JupyterLab server, with its
read-only contents manager and sealing post-save hook) driven in Debian's headless Chromium by
Playwright. The same flow without a browser (nbclient) is in tests/test_interactive.py."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest

from vextrus_nb.ports import free_ports
from vextrus_nb.sandbox import manager
from vextrus_nb.sandbox_state import SandboxState

from .helpers import CLI, REPO, ledger_entries, run_cli, wait_until

playwright_sync = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
AUTOSAVE_S = 2
TEMPLATE = REPO / "notebooks" / "verify" / "smoke.ipynb"
VISIBLE = ".jp-NotebookPanel:not(.lm-mod-hidden)"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git_status_notebooks() -> str:
    done = subprocess.run(
        ["git", "status", "--porcelain", "notebooks/"], cwd=REPO, capture_output=True, text=True
    )
    return done.stdout


@dataclass
class Lab:
    url: str
    token: str
    outputs: Path
    env: dict[str, str]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=self.env)

    def open(self, *args: str) -> tuple[str, Path, str]:
        """`vextrus-nb open`: the Lab URL it prints, the working copy, the run id."""
        done = self.cli("open", *args)
        assert done.returncode == 0, done.stderr
        said = re.search(r"run (\S+): working copy (\S+)", done.stderr)
        assert said, done.stderr
        return done.stdout.strip().splitlines()[-1], Path(said.group(2)), said.group(1)

    def entries(self, run_id: str) -> list[dict[str, Any]]:
        return [e for e in ledger_entries(self.outputs) if e.get("run_id") == run_id]


def _free_port() -> int:
    return free_ports(1)[0]


@pytest.fixture(scope="module")
def lab(sandbox: SandboxState, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One `vextrus-nb lab` over the project for the module; its outputs dir is under the server
    root (git-ignored outputs/) so Lab can open the working copies."""
    import os

    home = tmp_path_factory.mktemp("lab")
    outputs = REPO / "outputs" / f"lab-test-{secrets.token_hex(4)}"
    settings = home / "settings" / "@jupyterlab" / "docmanager-extension"
    settings.mkdir(parents=True)
    (settings / "plugin.jupyterlab-settings").write_text(
        json.dumps({"autosave": True, "autosaveInterval": AUTOSAVE_S})
    )
    config = home / "config"
    config.mkdir()
    # window.jupyterapp, to run Lab's own commands (the same ones its menus run)
    (config / "jupyter_lab_config.json").write_text(json.dumps({"LabApp": {"expose_app_in_browser": True}}))
    env = {
        "VEXTRUS_OUTPUTS_DIR": str(outputs),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),  # `open` finds this server, and only this one
        "COLUMNS": "250",  # rich tables (`vextrus-nb runs`) unwrapped
    }
    port, token = _free_port(), secrets.token_hex(16)
    log = (home / "lab.log").open("w")
    server = subprocess.Popen(
        [CLI, "lab", "--port", str(port), "--token", token],
        env={**os.environ, **env},
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert server.poll() is None, (home / "lab.log").read_text()
        try:
            return httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, "the Lab server to answer", timeout_s=60)
        yield Lab(url, token, outputs, env)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(outputs, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--disable-extensions",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


# -- driving Lab ------------------------------------------------------------------------------------
def open_notebook(page: Any, url: str) -> None:
    """Open a notebook URL (a fresh workspace) and wait until its kernel is idle."""
    page.goto(url + ("&" if "?" in url else "?") + "reset")
    page.wait_for_selector(f"{VISIBLE} .jp-Cell")
    idle = page.locator(".jp-StatusBar-TextItem", has_text=re.compile(r"^(?!No Kernel).+ \| Idle$"))
    dialog = page.locator(".jp-Dialog .jp-mod-accept")

    def ready() -> bool:
        if dialog.count() and dialog.first.is_visible():  # "Select Kernel": take the default
            dialog.first.click()
        return idle.count() > 0

    wait_until(ready, "the kernel to be idle", timeout_s=60)
    page.wait_for_function("() => !!window.jupyterapp")


def command(page: Any, name: str, args: dict[str, Any] | None = None) -> None:
    page.evaluate("([n, a]) => { window.jupyterapp.commands.execute(n, a || {}); }", [name, args])


def wait_executed(page: Any, indices: list[int] | None = None) -> None:
    """Every code cell (or those at `indices`, in notebook order) shows `[n]:`, the kernel idle."""
    page.wait_for_function(
        """(indices) => {
            const nb = window.jupyterapp.shell.currentWidget.content;
            const cells = nb.widgets.filter((c, i) => c.model.type === 'code'
                && (indices === null || indices.includes(i)));
            const ind = document.querySelector('VISIBLE .jp-Notebook-ExecutionIndicator');
            return cells.length > 0
                && cells.every(c => /^\\[\\d+\\]:$/.test(c.promptNode.textContent.trim()))
                && ind && ind.dataset.status === 'idle'
                && [...document.querySelectorAll('.jp-StatusBar-TextItem')]
                     .some(e => / \\| Idle$/.test(e.textContent));
        }""".replace("VISIBLE", VISIBLE),
        arg=indices,
        timeout=120_000,
    )


def cell_outputs(page: Any, index: int) -> list[dict[str, Any]]:
    return page.evaluate(
        "(i) => window.jupyterapp.shell.currentWidget.content.model.cells.get(i).toJSON().outputs", index
    )


def code_cell_index(page: Any, contains: str) -> int:
    return page.evaluate(
        """(text) => window.jupyterapp.shell.currentWidget.content.model.sharedModel.cells
            .findIndex(c => c.cell_type === 'code' && c.getSource().includes(text))""",
        contains,
    )


def run_cell(page: Any, index: int) -> None:
    """Run one cell (as Shift+Enter would) and wait until it shows a new `[n]:`, the kernel idle."""
    prompt = "window.jupyterapp.shell.currentWidget.content.widgets[i].promptNode.textContent.trim()"
    before = page.evaluate(f"(i) => {prompt}", index)
    page.evaluate("(i) => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = i; }", index)
    command(page, "notebook:run-cell")
    page.wait_for_function(
        f"([i, was]) => {{ const p = {prompt}; return /^\\[\\d+\\]:$/.test(p) && p !== was; }}",
        arg=[index, before],
        timeout=120_000,
    )
    wait_executed(page, [index])


def save_with_ctrl_s(page: Any) -> None:
    dismiss_dialogs(page)
    page.locator(f"{VISIBLE} .jp-Notebook").click(position={"x": 2, "y": 2})
    page.keyboard.press("Control+s")


def dismiss_dialogs(page: Any) -> None:
    """An earlier refused save (an autosave after the seal) leaves a dialog: acknowledge it."""
    while (dialog := page.locator(".jp-Dialog .jp-mod-accept")).count():
        dialog.first.click()
        dialog.first.wait_for(state="detached", timeout=10_000)


def run_all_and_save(page: Any) -> None:
    command(page, "notebook:run-all-cells")
    wait_executed(page)
    save_with_ctrl_s(page)


# -- tests ------------------------------------------------------------------------------------------
# Run all, in the browser, to the sealed entry: 25 s alone on the 2-core machine, past 30 s with a
# second suite beside it. A wait on a condition costs nothing more when the run is quick.
SEALED_WITHIN_S = 120


def test_a_run_stepped_through_in_lab_is_sealed_by_ctrl_s_and_then_read_only(
    lab: Lab, healthy: SandboxState, page: Any
) -> None:
    url, copy, run_id = lab.open("verify/smoke", "--env", "sandbox")
    assert url.startswith(f"{lab.url}/lab/tree/outputs/") and f"token={lab.token}" in url
    open_notebook(page, url)
    run_all_and_save(page)
    [entry] = wait_until(lambda: lab.entries(run_id), "the run's ledger entry", timeout_s=SEALED_WITHIN_S)
    assert entry["status"] == "passed" and entry["executed_by"] == "vextrus-nb open"
    # The file on disk is the one the ledger names (a save still in flight would show here).
    wait_until(lambda: sha256(copy) == entry["output_sha256"], "the sealed bytes the ledger names", 10)
    sealed = nbformat.read(copy, as_version=4)
    assert sealed.metadata["vextrus"]["record"]["run_id"] == run_id
    assert lab.cli("ledger", "verify").returncode == 0
    original = copy.read_bytes()
    at = original.index(b"PASSED")
    copy.write_bytes(original[:at] + b"PASSEd" + original[at + 6 :])  # one byte
    try:
        assert lab.cli("ledger", "verify").returncode == 1
    finally:
        copy.write_bytes(original)
    assert lab.cli("ledger", "verify").returncode == 0
    # The engineer re-runs a step and saves again: the server refuses the sealed notebook.
    digest = sha256(copy)
    sweep = code_cell_index(page, "run_sweep")
    run_cell(page, sweep)
    command(page, "docmanager:save")  # (autosave tries too: either way, the same refusal)
    refused = page.locator(
        ".jp-Dialog, .Toastify__toast, .jp-ToolbarLabelComponent",
        has_text=re.compile("read-only|rror|hanged"),
    )
    refused.first.wait_for(timeout=30_000)
    # Past an autosave interval too: still one entry, the same bytes, templates untouched.
    _stable_for(copy, digest, 2 * AUTOSAVE_S + 1)
    assert len(lab.entries(run_id)) == 1 and sha256(copy) == digest
    assert git_status_notebooks() == ""


def _stable_for(path: Path, digest: str, seconds: float) -> bool:
    """A bounded observation: the file keeps its bytes (and mtime) for `seconds`."""
    mtime = path.stat().st_mtime_ns
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert path.stat().st_mtime_ns == mtime and sha256(path) == digest, f"{path} was written"
        time.sleep(0.25)
    return True


def test_the_template_opened_in_lab_is_read_only_and_its_start_cell_makes_a_working_copy(
    lab: Lab, healthy: SandboxState, page: Any
) -> None:
    before, digest = TEMPLATE.stat().st_mtime_ns, sha256(TEMPLATE)
    open_notebook(page, f"{lab.url}/lab/tree/notebooks/verify/smoke.ipynb?token={lab.token}")
    label = page.locator(f"{VISIBLE} .jp-ToolbarLabelComponent", has_text="read-only")
    label.wait_for(timeout=30_000)
    parameters = page.locator(f"{VISIBLE} .jp-CodeCell").first.locator(".cm-content")
    parameters.click()
    page.keyboard.press("Control+End")
    page.keyboard.press("Enter")
    page.keyboard.type("timeout_s = 7")
    page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.content.model.cells.get(1).sharedModel"
        ".getSource().includes('timeout_s = 7')"
    )
    _stable_for(TEMPLATE, digest, 3 * AUTOSAVE_S)  # autosave had its chances
    start = code_cell_index(page, "vextrus_nb.start(")
    command(page, "notebook:run-all-cells")  # stops at the start cell's refusal
    wait_executed(page, [1, start])
    said = json.dumps(cell_outputs(page, start))
    assert "committed template" in said, said
    copy = re.search(r"Your working copy is (\S+) \(run", said)
    assert copy and Path(copy.group(1)).is_relative_to(lab.outputs), said
    made = nbformat.read(Path(copy.group(1)), as_version=4)
    assert any(
        "timeout_s = 7" in c.source for c in made.cells if "injected-parameters" in c.metadata.get("tags", [])
    )
    assert git_status_notebooks() == ""
    assert TEMPLATE.stat().st_mtime_ns == before and sha256(TEMPLATE) == digest


def test_a_failing_run_in_lab_is_sealed_as_failed_with_a_verdict_not_a_traceback(
    lab: Lab, healthy: SandboxState, page: Any
) -> None:
    url, copy, run_id = lab.open("verify/smoke", "--env", "sandbox")
    manager.fault("finance", "down", root=healthy.root)
    open_notebook(page, url)
    run_all_and_save(page)
    [entry] = wait_until(lambda: lab.entries(run_id), "the run's ledger entry", timeout_s=SEALED_WITHIN_S)
    assert entry["status"] == "failed" and "finance" in entry["cause"]
    errors = [o for c in nbformat.read(copy, as_version=4).cells for o in c.get("outputs", [])
              if o.get("output_type") == "error"]  # fmt: skip
    assert errors and all(
        len(e["traceback"]) == 1 and e["traceback"][0].startswith("FAILED:") for e in errors
    )
    page.locator(f"{VISIBLE} .jp-OutputArea-output", has_text="FAILED").first.wait_for(timeout=10_000)


def test_a_live_run_in_lab_keeps_its_lock_across_a_re_run_start_and_a_shut_down_kernel_abandons_it(
    lab: Lab, healthy: SandboxState, page: Any
) -> None:
    url, _copy, run_id = lab.open(
        "dr/backup", "--env", "sandbox", "-p", "dry_run=false", "-p", "services=auth"
    )
    open_notebook(page, url)
    start = code_cell_index(page, "vextrus_nb.start(")
    page.evaluate("(i) => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = i; }", start)
    command(page, "notebook:run-all-above")
    wait_executed(page, list(range(start)))
    run_cell(page, start)
    run_cell(page, start)  # the start cell again
    outputs = cell_outputs(page, start)
    assert not [o for o in outputs if o.get("output_type") == "error"], outputs
    assert "locked by" not in json.dumps(outputs)
    assert f"locked by run {run_id}" in lab.cli("locks").stdout
    sessions = httpx.get(f"{lab.url}/api/sessions", params={"token": lab.token}).json()
    [kernel] = [s["kernel"]["id"] for s in sessions if s["path"].endswith(_copy.name)]
    gone = httpx.delete(f"{lab.url}/api/kernels/{kernel}", params={"token": lab.token}, timeout=30)
    assert gone.status_code == 204
    listed = wait_until(
        lambda: (out := lab.cli("runs").stdout) and re.search(rf"{run_id}.*abandoned", out) and out,
        "the run to be recorded abandoned",
    )
    assert run_id in listed
    [entry] = lab.entries(run_id)
    assert entry["status"] == "abandoned" and entry["output"] is None
