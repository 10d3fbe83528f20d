"""`vextrus-nb schedule`: the crontab line is valid, installs once, comes out again, and the
command it holds really runs the drill in cron's bare environment; croniter's reading of an
expression gives cron's next times, and what cron would refuse is refused, naming the bad part."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vextrus_nb.errors import RunRefused
from vextrus_nb.sandbox_state import SandboxState
from vextrus_nb.schedule import next_runs, validate_cron

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


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        ("0 2 * * *", "2025-01-01T00:00", ["2025-01-01T02:00", "2025-01-02T02:00"]),
        # ranges, lists and a step: the hours 22 and 23 come before the next day's 0-6
        ("*/15 0-6,22,23 1,15 * *", "2025-01-01T06:50", ["2025-01-01T22:00", "2025-01-01T22:15"]),
        ("10-50/20 * * * *", "2025-01-01T00:00", ["2025-01-01T00:10", "2025-01-01T00:30"]),
        # 2025-01-03 is a Friday: the next weekdays are Monday and Tuesday
        ("30 3 * * 1-5", "2025-01-03T04:00", ["2025-01-06T03:30", "2025-01-07T03:30"]),
        # names, any case; after March the next Sunday of January-March is in the next year
        ("0 2 * JAN-mar sun", "2025-03-30T03:00", ["2026-01-04T02:00", "2026-01-11T02:00"]),
        ("0 12 * * 7", "2025-01-01T00:00", ["2025-01-05T12:00", "2025-01-12T12:00"]),  # 7 is Sunday
        # day of month and day of week both given: either one fires (crontab(5))...
        ("0 0 13 * fri", "2025-01-01T00:00", ["2025-01-03T00:00", "2025-01-10T00:00", "2025-01-13T00:00"]),
        # ...but Vixie cron ANDs them when one starts with "*": odd days that are Mondays
        ("0 0 */2 * mon", "2025-01-01T00:00", ["2025-01-13T00:00", "2025-01-27T00:00", "2025-02-03T00:00"]),
        ("@weekly", "2025-01-01T00:00", ["2025-01-05T00:00"]),
        ("0 0 29 2 *", "2025-03-01T00:00", ["2028-02-29T00:00"]),
        ("@reboot", "2025-01-01T00:00", []),
    ],
)
def test_valid_expressions_give_crons_next_times(cron: str, after: str, expected: list[str]) -> None:
    assert next_runs(cron, at(after), len(expected) or 1) == [at(time) for time in expected]


def test_an_expression_is_normalised_for_the_crontab_line() -> None:
    assert validate_cron("  0   2 * *\tMON ") == "0 2 * * mon"
    assert validate_cron("@Daily") == "@daily"


@pytest.mark.parametrize(
    ("cron", "says"),
    [
        ("0 2 * *", "cron expression needs 5 fields (minute hour day-of-month month day-of-week), got 4"),
        # croniter reads seconds and years; cron does not
        ("0 0 2 * * *", "cron expression needs 5 fields (minute hour day-of-month month day-of-week), got 6"),
        ("", "got 1"),
        ("60 * * * *", "cron minute field '60': 60 is outside 0-59"),
        ("0 24 * * *", "cron hour field '24': 24 is outside 0-23"),
        ("0 0 0 * *", "cron day of month field '0': 0 is outside 1-31"),
        # croniter would read the 0 as 1 inside a range; cron refuses it there too
        ("0 0 13-0 * *", "cron day of month field '13-0': 0 is outside 1-31"),
        ("0 0 * 1,13 *", "cron month field '1,13': 13 is outside 1-12"),
        ("0 0 * * 1-9/2", "cron day of week field '1-9/2': 9 is outside 0-7"),
        ("*/0 * * * *", "cron minute field '*/0': a step of 0 never fires"),
        ("0 1-5/0 * * *", "cron hour field '1-5/0': a step of 0 never fires"),
        ("0 0 * * jan", "cron day of week field 'jan': 'jan' is not a number or a name"),
        ("0 0 * mon *", "cron month field 'mon': 'mon' is not a number or a name"),
        ("0 2 * * mon-fry", "cron day of week field 'mon-fry': 'fry' is not a number or a name"),
        ("a b c d e", "cron minute field 'a' is not valid"),
        ("1,,2 * * * *", "cron minute field '1,,2' is not valid"),
        ("% * * * *", "cron minute field '%' is not valid"),
        # croniter's extensions, which cron would refuse in the crontab
        ("0 2 L * *", "cron day of month field 'l' is not valid"),
        ("0 2 15w * *", "cron day of month field '15w' is not valid"),
        ("0 2 ? * *", "cron day of month field '?' is not valid"),
        ("0 2 * * 1#2", "cron day of week field '1#2' is not valid"),
        ("H 2 * * *", "cron minute field 'h' is not valid"),
        ("@every 5m", "cron expression '@every 5m': unknown macro"),
        ("0 0 31 2 *", "cron expression '0 0 31 2 *' never fires"),
    ],
)
def test_malformed_expressions_are_refused_naming_the_bad_part(cron: str, says: str) -> None:
    with pytest.raises(RunRefused) as refused:
        validate_cron(cron)
    assert says in str(refused.value)
