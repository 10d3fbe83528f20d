"""The runner end to end, through the real CLI and a real kernel: exit codes,
refusals that leave nothing behind, evidence on failure, secrets scrubbed."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from vextrus_nb.run.runner import list_runbooks
from vextrus_nb.sandbox import manager
from vextrus_nb.sandbox_state import SandboxState

from .helpers import ledger_entries, notebook_outputs_text, notebook_plain_text, run_cli, write_runbook

STANDARD = 'env = "sandbox"\ndry_run = True\nconfirm = ""'


def _printed_path(stdout: str) -> Path:
    return Path(stdout.strip().splitlines()[-1])


def test_smoke_passes_on_a_healthy_sandbox(healthy: SandboxState, outputs: Path) -> None:
    result = run_cli("run", "verify/smoke", "--env", "sandbox")
    assert result.returncode == 0, result.stderr
    output = _printed_path(result.stdout)
    assert output.is_file() and output.parent.parent == outputs / "sandbox"
    assert output.name.startswith("verify-smoke-") and output.suffix == ".ipynb"
    record = nbformat.read(output, as_version=4).metadata["vextrus"]["record"]
    assert record["status"] == "passed" and record["summary"]["critical_down"] == []
    assert record["summary"]["components"] == 33
    [entry] = ledger_entries(outputs)
    assert entry["status"] == "passed" and entry["run_id"] == record["run_id"]
    assert entry["output"] == str(output.relative_to(outputs))
    assert {"operator", "host", "git_commit", "package_version", "started_at", "ended_at"} <= entry.keys()


def test_smoke_fails_and_names_the_service_that_is_down(healthy: SandboxState, outputs: Path) -> None:
    manager.fault("finance", "down", root=healthy.root)
    result = run_cli("run", "verify/smoke", "--env", "sandbox")
    assert result.returncode == 1
    assert "critical component(s) down: finance" in result.stderr
    output = _printed_path(result.stdout)
    shown = notebook_outputs_text(output)
    assert "finance" in shown and "FAILED" in shown
    plain = notebook_plain_text(output)
    assert "FAILED: critical component(s) down: finance" in plain
    assert next(line for line in plain.splitlines() if " finance " in line).split()[4] == "down"
    assert "object at 0x" not in plain and "Styler" not in plain
    [entry] = ledger_entries(outputs)
    assert entry["status"] == "failed" and entry["summary"]["critical_down"] == ["finance"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "verify/smokey", "--env", "sandbox"],
            "unknown runbook 'verify/smokey'; known: " + ", ".join(list_runbooks()),  # every runbook, named
        ),
        (["run", "verify/smoke", "--env", "prod"], "unknown environment 'prod'"),
        (["run", "verify/smoke", "--env", "sandbox", "-p", "colour=red"], "unknown parameter 'colour'"),
        (
            ["run", "verify/smoke", "--env", "sandbox", "-p", "timeout_s=fast"],
            "'timeout_s' expects float or None, got str 'fast'",
        ),
        (
            ["run", "verify/smoke", "--env", "sandbox", "-p", "dry_run=maybe"],
            "'dry_run' expects bool (true/yes/on/1/false/no/off/0, any case), got 'maybe'",
        ),
        (["run", "verify/smoke", "--env", "sandbox", "-p", "novalue"], "malformed parameter 'novalue'"),
        (["run", "verify/smoke", "--env", "sandbox", "-p", "env=staging"], "contradicts --env sandbox"),
        (["run", "../../etc/passwd", "--env", "sandbox"], "unknown runbook"),
    ],
)
def test_bad_input_is_refused_with_exit_2_and_leaves_nothing(
    sandbox: SandboxState, outputs: Path, args: list[str], message: str
) -> None:
    result = run_cli(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stdout == ""
    assert not outputs.exists() or not any(outputs.rglob("*"))


def test_malformed_parameters_file_is_refused(sandbox: SandboxState, outputs: Path, tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("timeout_s: [1, 2\n")
    result = run_cli("run", "verify/smoke", "--env", "sandbox", "-f", str(bad))
    assert result.returncode == 2 and "malformed YAML in" in result.stderr and "line" in result.stderr
    assert not outputs.exists()


def test_malformed_environment_file_is_refused(sandbox: SandboxState, outputs: Path, tmp_path: Path) -> None:
    import shutil

    params = tmp_path / "parameters"
    shutil.copytree(Path(__file__).resolve().parent.parent / "parameters", params)
    (params / "environments" / "broken.yaml").write_text("name: broken\ndriver: [local\n")
    result = run_cli("run", "verify/smoke", "--env", "broken", env={"VEXTRUS_PARAMETERS_DIR": str(params)})
    assert result.returncode == 2 and "malformed YAML in" in result.stderr and "broken.yaml" in result.stderr
    assert not outputs.exists()


def test_parameters_file_supplies_values(healthy: SandboxState, outputs: Path, tmp_path: Path) -> None:
    good = tmp_path / "params.yaml"
    good.write_text("timeout_s: 1.5\nconcurrency: 8\n")
    result = run_cli("run", "verify/smoke", "--env", "sandbox", "-f", str(good))
    assert result.returncode == 0, result.stderr
    assert ledger_entries(outputs)[0]["parameters"]["concurrency"] == 8


@pytest.fixture
def runbooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "notebooks"
    monkeypatch.setenv("VEXTRUS_NOTEBOOKS_DIR", str(directory))
    return directory


def test_secrets_leave_no_trace_in_notebook_or_ledger(
    healthy: SandboxState, outputs: Path, runbooks: Path
) -> None:
    write_runbook(
        runbooks,
        "test/secretive",
        STANDARD + '\ndb_password = ""',
        'import vextrus_nb\nrb = vextrus_nb.start("test/secretive", env=env, db_password=db_password)',
        "print('given:', db_password)\nprint('admin:', rb.secret('postgres_password'))",
        "rb.summary['echo'] = db_password\nrb.finish()",
    )
    parameter_secret = "Tr0ub4dor-and-3-horses"
    result = run_cli("run", "test/secretive", "--env", "sandbox", "-p", f"db_password={parameter_secret}")
    assert result.returncode == 0, result.stderr
    output = _printed_path(result.stdout)
    written = output.read_text() + (outputs / "ledger.jsonl").read_text()
    for secret in (parameter_secret, healthy.secret("postgres_password")):
        assert secret not in written
    assert "***REDACTED***" in notebook_outputs_text(output)
    nb = nbformat.read(output, as_version=4)
    assert nb.metadata["papermill"]["parameters"]["db_password"] == "***REDACTED***"
    assert ledger_entries(outputs)[0]["parameters"]["db_password"] == "***REDACTED***"


def test_a_secret_the_kernel_learned_is_scrubbed_even_when_it_fails_the_run(
    sandbox: SandboxState, outputs: Path, runbooks: Path
) -> None:
    # A value only the kernel knows (a freshly generated password, say): the runner cannot
    # resolve it, so the kernel hands it over through a private file before the final scrub.
    made = "Kernel-only-Secret-4711"
    write_runbook(
        runbooks,
        "test/generated",
        STANDARD,
        'import vextrus_nb\nrb = vextrus_nb.start("test/generated", env=env)',
        f"made = {made!r}\nrb.scrubber.add([made])\nprint('made:', made)",
        "raise RuntimeError(f'lost {made}')",
    )
    result = run_cli("run", "test/generated", "--env", "sandbox")
    assert result.returncode == 1
    output = _printed_path(result.stdout)
    assert "made: ***REDACTED***" in notebook_plain_text(output)
    for place in (output.read_text(), (outputs / "ledger.jsonl").read_text(), result.stderr):
        assert made not in place
    assert not list(output.parent.glob(".*.seen")), "the hand-off file outlived the run"


def test_a_failing_step_records_where_to_resume(sandbox: SandboxState, outputs: Path, runbooks: Path) -> None:
    write_runbook(
        runbooks,
        "test/broken",
        STANDARD,
        'import vextrus_nb\nrb = vextrus_nb.start("test/broken", env=env)',
        'with rb.step("optional cleanup", allow_failure=True):\n    raise RuntimeError("nothing to clean")',
        'with rb.step("restore database"):\n    raise RuntimeError("disk full")',
        "rb.finish()",
    )
    result = run_cli("run", "test/broken", "--env", "sandbox")
    assert result.returncode == 1 and "RuntimeError: disk full" in result.stderr
    [entry] = ledger_entries(outputs)
    assert entry["status"] == "error" and entry["resume_from"] == "restore database"
    assert [s["status"] for s in entry["steps"]] == ["failed-allowed", "failed"]
    assert _printed_path(result.stdout).is_file()


def test_a_dead_kernel_still_leaves_a_record(sandbox: SandboxState, outputs: Path, runbooks: Path) -> None:
    write_runbook(runbooks, "test/crash", STANDARD, "import os\nos._exit(3)")
    result = run_cli("run", "test/crash", "--env", "sandbox")
    assert result.returncode == 1 and "error" in result.stderr
    [entry] = ledger_entries(outputs)
    assert entry["status"] == "error" and "DeadKernelError" in entry["cause"]
    assert _printed_path(result.stdout).is_file()
    assert run_cli("ledger", "verify").returncode == 0


def test_ledger_verify_catches_an_edited_notebook(healthy: SandboxState, outputs: Path) -> None:
    first = _printed_path(run_cli("run", "verify/smoke", "--env", "sandbox").stdout)
    second = run_cli("run", "verify/smoke", "--env", "sandbox")
    assert run_cli("ledger", "verify").returncode == 0
    data = bytearray(first.read_bytes())
    data[len(data) // 2] ^= 0x01
    first.write_bytes(bytes(data))
    verdict = run_cli("ledger", "verify")
    first_id = json.loads((outputs / "ledger.jsonl").read_text().splitlines()[0])["run_id"]
    assert verdict.returncode == 1
    assert f"line 1 (run {first_id})" in verdict.stderr and "modified after the run" in verdict.stderr
    assert second.returncode == 0


def _wipe_runbook(runbooks: Path, *extra: str) -> None:
    write_runbook(
        runbooks,
        "test/wipe",
        STANDARD,
        'import vextrus_nb\nrb = vextrus_nb.start("test/wipe", env=env, dry_run=dry_run, confirm=confirm, '
        "destructive=True)",
        *extra,
        'with rb.step("wipe"):\n    print("would wipe" if rb.dry_run else "wiped")',
        "rb.finish()",
        destructive=True,
    )


def test_live_production_run_without_confirm_is_refused(outputs: Path, runbooks: Path) -> None:
    _wipe_runbook(runbooks)
    result = run_cli("run", "test/wipe", "--env", "production", "-p", "dry_run=False")
    assert result.returncode == 2 and "pass -p confirm=production" in result.stderr
    wrong = run_cli("run", "test/wipe", "--env", "production", "-p", "dry_run=False", "-p", "confirm=staging")
    assert wrong.returncode == 2
    assert not outputs.exists()


def test_second_destructive_run_is_refused_while_the_lock_is_held(
    sandbox: SandboxState, outputs: Path, runbooks: Path
) -> None:
    from vextrus_nb.run import locks

    _wipe_runbook(runbooks)
    held = locks.acquire("sandbox", "first-run-id", "test/wipe", "2026-11-22T00:00:00+00:00")
    refused = run_cli("run", "test/wipe", "--env", "sandbox", "-p", "dry_run=False")
    assert refused.returncode == 2 and "locked by run first-run-id" in refused.stderr
    assert ledger_entries(outputs) == []
    dry = run_cli("run", "test/wipe", "--env", "sandbox")  # a dry run changes nothing: no lock needed
    assert dry.returncode == 0 and "would wipe" in notebook_plain_text(_printed_path(dry.stdout))
    held.release()
    live = run_cli("run", "test/wipe", "--env", "sandbox", "-p", "dry_run=False")
    assert live.returncode == 0, live.stderr
    assert "wiped" in notebook_plain_text(_printed_path(live.stdout))
    assert locks.holder("sandbox") is None


def test_a_crashed_run_does_not_leave_the_environment_locked(
    sandbox: SandboxState, outputs: Path, runbooks: Path
) -> None:
    from vextrus_nb.run import locks

    _wipe_runbook(runbooks, "import os\nos._exit(9)")
    crashed = run_cli("run", "test/wipe", "--env", "sandbox", "-p", "dry_run=False")
    assert crashed.returncode == 1
    assert locks.holder("sandbox") is None


def test_runs_in_one_long_lived_process_leave_no_kernel_and_no_channel_behind(
    sandbox: SandboxState, outputs: Path, runbooks: Path
) -> None:
    """The worker runs one run after another in one process: each run's kernel (started by the
    runner before papermill, run/kernel.py) must be shut down, and its client's channels closed,
    whether the notebook passed, failed or killed its kernel."""
    import threading

    import psutil

    from vextrus_nb.run import runner

    write_runbook(runbooks, "test/fine", STANDARD, "x = 1")
    write_runbook(runbooks, "test/crash", STANDARD, "import os\nos._exit(3)")
    write_runbook(runbooks, "test/raises", STANDARD, 'raise RuntimeError("no")')
    me = psutil.Process()
    runner.run(
        "test/fine", "sandbox", outputs_dir=outputs
    )  # the first run's imports start threads of their own
    threads, children = threading.active_count(), set(me.children(recursive=True))  # the sandbox's
    statuses = [
        runner.run(name, "sandbox", outputs_dir=outputs).status
        for name in ("test/fine", "test/crash", "test/raises")
    ]
    assert statuses == ["passed", "error", "error"]
    assert set(me.children(recursive=True)) == children
    assert threading.active_count() == threads, [t.name for t in threading.enumerate()]


def test_a_runs_kernel_runs_its_exit_handlers_before_the_run_returns(
    sandbox: SandboxState, outputs: Path, runbooks: Path, tmp_path: Path
) -> None:
    """The run's kernel exits without collecting its heap (run/run_kernel.py), never without its
    exit handlers: the sandbox's supervisor stops what a failed cell left running in one."""
    from vextrus_nb.run import runner

    witness = tmp_path / "exit-handler-ran"
    write_runbook(
        runbooks,
        "test/exits",
        STANDARD,
        f"import atexit, pathlib\natexit.register(pathlib.Path({str(witness)!r}).write_text, 'ran')\n"
        "from ipykernel.kernelapp import IPKernelApp\n"
        "assert type(IPKernelApp.instance().kernel).__name__ == 'RunKernel'",
    )
    assert runner.run("test/exits", "sandbox", outputs_dir=outputs).status == "passed"
    assert witness.read_text() == "ran"
