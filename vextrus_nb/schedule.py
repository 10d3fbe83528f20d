"""`vextrus-nb schedule`: run a runbook on a cron schedule.

Prints (or installs into the user's crontab) one line that runs the runbook
through `vextrus-nb run` from this checkout, appending to outputs/cron.log.
Each line carries a marker comment, so installing again replaces it instead
of adding a second one, and `--remove` takes it out. The Kubernetes
equivalent is deploy/k8s/dr-drill-cronjob.yaml.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from vextrus_nb import paths
from vextrus_nb.errors import RunRefused

# (lowest, highest, names) per cron field, as in crontab(5).
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_MACROS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually", "@reboot")
_ITEM = re.compile(r"^(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(\d+))?$")


def validate_cron(expression: str) -> str:
    """The expression, normalised, or RunRefused saying which field is wrong."""
    text = " ".join(expression.split()).lower()
    if text in _MACROS:
        return text
    fields = text.split(" ")
    if len(fields) != 5:
        raise RunRefused(
            "cron expression needs 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)}: {expression!r}"
        )
    for value, (name, low, high, names) in zip(fields, _FIELDS, strict=True):
        for item in value.split(","):
            match = _ITEM.match(item)
            if not match:
                raise RunRefused(f"cron {name} field {value!r} is not valid")
            bounds = [] if match.group(1) == "*" else match.group(1).split("-")
            for bound in bounds:
                number = names.index(bound) + (low if name == "month" else 0) if bound in names else None
                if number is None and not bound.isdigit():
                    raise RunRefused(f"cron {name} field {value!r}: {bound!r} is not a number or a name")
                number = int(bound) if number is None else number
                if not low <= number <= high:
                    raise RunRefused(f"cron {name} field {value!r}: {number} is outside {low}-{high}")
            if match.group(2) is not None and int(match.group(2)) == 0:
                raise RunRefused(f"cron {name} field {value!r}: a step of 0 never fires")
    return text


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
