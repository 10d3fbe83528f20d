"""`vextrus-nb schedule`: the crontab line is valid, installs once, comes out again, and the
command it holds really runs the drill in cron's bare environment."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vextrus_nb.sandbox_state import SandboxState

from .helpers import REPO, ledger_entries, run_cli

MARKER = "# vextrus-nb schedule dr/drill --env sandbox"


@pytest.fixture
def crontab() -> Iterator[None]:
    """The user's crontab as it was, put back after the test."""
    saved = subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=False)
    yield
    if saved.returncode == 0:
        subprocess.run(["crontab", "-"], input=saved.stdout, text=True, check=True)
    else:
        subprocess.run(["crontab", "-r"], capture_output=True, check=False)


@pytest.fixture(scope="module")
def a_backup_of_auth(sandbox: SandboxState, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The set the scheduled drill restores: taken here, not left by whichever module ran earlier
    on this worker's sandbox."""
    outputs = tmp_path_factory.mktemp("schedule-backup")
    done = run_cli(
        "run",
        "dr/backup",
        "--env",
        "sandbox",
        "-p",
        "services=auth",
        env={"VEXTRUS_OUTPUTS_DIR": str(outputs)},
    )
    assert done.returncode == 0, done.stderr


def test_the_printed_line_runs_the_drill_in_crons_bare_environment(
    sandbox: SandboxState, a_backup_of_auth: None, outputs: Path
) -> None:
    done = run_cli("schedule", "dr/drill", "--env", "sandbox", "--cron", "0 2 * * *", "-p", "services=auth")
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith("0 2 * * * cd ") and line.endswith(MARKER)
    assert f"VEXTRUS_OUTPUTS_DIR={outputs}" in line and "-p services=auth" in line
    # What cron runs: the line without its schedule and marker, with almost no environment.
    command = line.removeprefix("0 2 * * * ").removesuffix(MARKER)
    ran = subprocess.run(["sh", "-c", command], env={"PATH": "/usr/bin:/bin"}, cwd="/", timeout=300)
    assert ran.returncode == 0, (outputs / "cron.log").read_text()
    [entry] = ledger_entries(outputs)
    assert (entry["runbook"], entry["status"], entry["parameters"]["services"]) == (
        "dr/drill",
        "passed",
        "auth",
    )


def test_install_replaces_the_runbooks_line_and_remove_takes_it_out(
    sandbox: SandboxState, outputs: Path, crontab: None
) -> None:
    subprocess.run(["crontab", "-"], input="5 4 * * * echo someone-elses-job\n", text=True, check=True)
    for cron in ("0 2 * * *", "30 3 * * 1-5"):
        done = run_cli("schedule", "dr/drill", "--env", "sandbox", "--cron", cron, "--install")
        assert done.returncode == 0, done.stderr
    lines = subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=True).stdout.splitlines()
    ours = [line for line in lines if line.endswith(MARKER)]
    assert len(ours) == 1 and ours[0].startswith("30 3 * * 1-5 ")
    assert "5 4 * * * echo someone-elses-job" in lines
    done = run_cli("schedule", "dr/drill", "--env", "sandbox", "--remove")
    assert done.returncode == 0 and done.stdout.strip() == "removed"
    lines = subprocess.run(["crontab", "-l"], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines == ["5 4 * * * echo someone-elses-job"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--cron", "0 2 * *"], "cron expression needs 5 fields"),
        (["--cron", "61 2 * * *"], "cron minute field '61': 61 is outside 0-59"),
        (["--cron", "0 2 * 13 *"], "cron month field '13': 13 is outside 1-12"),
        (["--cron", "0 2 * * mon-fry"], "cron day of week field 'mon-fry': 'fry' is not a number or a name"),
        (["--cron", "*/0 * * * *"], "a step of 0 never fires"),
    ],
)
def test_bad_schedules_are_refused(sandbox_files: Path, args: list[str], says: str) -> None:
    done = run_cli("schedule", "dr/drill", "--env", "sandbox", *args)
    assert done.returncode == 2 and says in done.stderr


def test_an_unknown_runbook_or_environment_is_refused(sandbox_files: Path) -> None:
    assert "unknown runbook 'dr/dril'" in run_cli("schedule", "dr/dril", "--env", "sandbox").stderr
    done = run_cli("schedule", "dr/drill", "--env", "moon")
    assert done.returncode == 2 and "moon" in done.stderr


def test_names_and_macros_are_accepted_and_no_secret_is_carried(sandbox: SandboxState) -> None:
    for cron in ("@daily", "0 2 * jan-mar sun", "*/15 0-6,22,23 1,15 * *"):
        secrets = {
            "VEXTRUS_SIGNING_KEY": "not-for-crontab-0123456789",
            "VEXTRUS_PROD_PG_PASSWORD": "hunter22-pg",
        }
        done = run_cli("schedule", "dr/drill", "--env", "sandbox", "--cron", cron, env=secrets)
        assert done.returncode == 0, (cron, done.stderr)
        assert "not-for-crontab" not in done.stdout and "hunter22-pg" not in done.stdout
        assert f"cd {REPO}" in done.stdout
