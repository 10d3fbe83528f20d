"""`vextrus-nb schedule`: run a runbook on a cron schedule.

Prints (or installs into the user's crontab) one line that runs the runbook
through `vextrus-nb run` from this checkout, appending to outputs/cron.log.
Each line carries a marker comment, so installing again replaces it instead
of adding a second one, and `--remove` takes it out. The Kubernetes
equivalent is deploy/k8s/dr-drill-cronjob.yaml.

croniter reads the cron expression (its values, names, ranges and steps, and
the next times, as Vixie cron computes them); this module keeps it to what
crontab(5) accepts and says which part of a refused expression is wrong.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from croniter import CroniterBadDateError, CroniterError, CroniterNotAlphaError, croniter

from vextrus_nb import paths
from vextrus_nb.errors import RunRefused

# crontab(5)'s fields, in order, with the bounds its manual gives (7 is Sunday again): the
# messages quote them. croniter knows the same bounds; it is what checks them.
_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_REBOOT = "@reboot"  # cron's own: it runs when cron starts, so croniter has no time for it
_MACROS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually", _REBOOT)
# One item of a field as crontab(5) writes it: *, a number or a three-letter name, or a range of
# them, with an optional step. croniter reads more than cron does (seconds and years, L, W, #,
# ?, H): the line is for cron, which would refuse those, so they are refused here first.
_ITEM = re.compile(r"^(\*|(?:\d+|[a-z]{3})(?:-(?:\d+|[a-z]{3}))?)(?:/(\d+))?$")


def validate_cron(expression: str) -> str:
    """The expression, normalised, or RunRefused naming the field and the part that is wrong.

    croniter does the checking; this finds which part it refused, since its own message quotes
    the whole expression, and refuses what croniter accepts but cron does not."""
    text = " ".join(expression.split()).lower()
    if text.startswith("@"):
        if text not in _MACROS:
            raise RunRefused(
                f"cron expression {expression!r}: unknown macro, not one of {', '.join(_MACROS)}"
            )
        return text
    fields = text.split(" ")
    if len(fields) != len(_FIELDS):
        raise RunRefused(
            "cron expression needs 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)}: {expression!r}"
        )
    for index, value in enumerate(fields):
        for item in value.split(","):
            _check_item(index, value, item)
    try:
        _runs(text, datetime.now().astimezone())
    except CroniterBadDateError:
        raise RunRefused(f"cron expression {expression!r} never fires (no such date)") from None
    except CroniterError as exc:  # every part passed alone: the parts disagree
        raise RunRefused(f"cron expression {expression!r} is not valid: {exc}") from None
    return text


def _check_item(index: int, value: str, item: str) -> None:
    """One item of one field, checked by croniter in an expression of its own, so a refusal can
    say which field, and which bound or step, is wrong."""
    name, low, high = _FIELDS[index]
    match = _ITEM.match(item)
    if not match:
        raise RunRefused(
            f"cron {name} field {value!r} is not valid: crontab(5) takes *, a number or a name, "
            "a range of them, a step (/n), and lists of these"
        )
    # Each bound alone first: croniter reads 0 as 1 inside a day-of-month or month range, where
    # cron refuses it as it does alone.
    bounds = [] if match.group(1) == "*" else match.group(1).split("-")
    for bound in bounds:
        refused = _refusal(index, bound)
        if isinstance(refused, CroniterNotAlphaError):
            raise RunRefused(f"cron {name} field {value!r}: {bound!r} is not a number or a name")
        if refused is not None and bound.isdigit():
            raise RunRefused(f"cron {name} field {value!r}: {int(bound)} is outside {low}-{high}")
        if refused is not None:
            raise RunRefused(f"cron {name} field {value!r}: {bound!r} is not valid ({_reason(refused)})")
    refused = _refusal(index, item)
    if refused is None:
        return
    if match.group(2) is not None and int(match.group(2)) == 0:  # croniter: "step '0' ... not acceptable"
        raise RunRefused(f"cron {name} field {value!r}: a step of 0 never fires")
    raise RunRefused(f"cron {name} field {value!r}: {item!r} is not valid ({_reason(refused)})")


def _refusal(index: int, item: str) -> CroniterError | None:
    """croniter's refusal of `item` in field `index` of an expression otherwise all stars."""
    probe = ["*"] * len(_FIELDS)
    probe[index] = item
    try:
        croniter.expand(" ".join(probe))
    except CroniterError as exc:
        return exc
    return None


def _reason(refused: CroniterError) -> str:
    """croniter's message without the probe expression it quotes first, which the user never wrote."""
    return re.sub(r"^\[[^\]]*\]\s*", "", str(refused))


def _runs(text: str, after: datetime) -> croniter[datetime]:
    # implement_cron_bug: Vixie cron (Debian's) ANDs day of month and day of week when either
    # field starts with "*" ("*/2" included), and ORs them otherwise; the times are cron's.
    runs = croniter(text, after, ret_type=datetime, implement_cron_bug=True)
    runs.get_next(update_current=False)  # raises CroniterBadDateError for a date that never comes
    return runs


def next_runs(expression: str, after: datetime, count: int = 1) -> list[datetime]:
    """The next `count` times cron runs the expression, after `after` (aware: cron runs in the
    host's local time, `datetime.now().astimezone()`), in its time zone; none for @reboot."""
    text = validate_cron(expression)
    if text == _REBOOT:
        return []
    runs = _runs(text, after)
    return [runs.get_next() for _ in range(count)]


def marker(runbook: str, env: str) -> str:
    return f"# vextrus-nb schedule {runbook} --env {env}"


# Where things are, carried into cron's bare environment; never a secret (those stay references).
CARRIED_VARIABLES = ("VEXTRUS_HOME", "VEXTRUS_OUTPUTS_DIR", "VEXTRUS_SANDBOX_DIR", "VEXTRUS_METRICS_DIR")


def command_line(runbook: str, env: str, parameters: list[str]) -> str:
    """What cron runs: in the checkout, with these locations, through the CLI, into outputs/cron.log."""
    root = paths.project_root()
    cli = Path(sys.executable).parent / "vextrus-nb"
    command = [str(cli), "run", runbook, "--env", env]
    for assignment in parameters:
        command += ["-p", assignment]
    carried = [f"{name}={os.environ[name]}" for name in CARRIED_VARIABLES if os.environ.get(name)]
    log = paths.outputs_dir() / "cron.log"
    prefix = f"env {shlex.join(carried)} " if carried else ""
    return (
        f"cd {shlex.quote(str(root))} && mkdir -p {shlex.quote(str(log.parent))} && "
        f"{prefix}{shlex.join(command)} >> {shlex.quote(str(log))} 2>&1"
    )


def crontab_line(runbook: str, env: str, cron: str, parameters: list[str]) -> str:
    return f"{validate_cron(cron)} {command_line(runbook, env, parameters)} {marker(runbook, env)}"


def _crontab() -> str:
    found = shutil.which("crontab")
    if found is None:
        raise RunRefused(
            "crontab not found: install cron (Debian: apt-get install cron), or add the line by hand"
        )
    return found


def current_crontab() -> str:
    done = subprocess.run([_crontab(), "-l"], capture_output=True, text=True, check=False)
    return done.stdout if done.returncode == 0 else ""  # "no crontab for user" is an empty one


def install(line: str, runbook: str, env: str) -> str:
    """Put `line` in the crontab, replacing this runbook's earlier line for the environment."""
    kept = [entry for entry in current_crontab().splitlines() if not entry.endswith(marker(runbook, env))]
    _write([*kept, line])
    return line


def remove(runbook: str, env: str) -> bool:
    lines = current_crontab().splitlines()
    kept = [entry for entry in lines if not entry.endswith(marker(runbook, env))]
    if len(kept) != len(lines):
        _write(kept)
    return len(kept) != len(lines)


def _write(lines: list[str]) -> None:
    text = "\n".join(lines) + "\n" if lines else ""
    subprocess.run([_crontab(), "-"], input=text, text=True, check=True, capture_output=True)
