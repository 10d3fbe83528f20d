"""The fields every run record opens with: what ran, where, by whom, from which code."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
from typing import Any

from vextrus_nb import paths
from vextrus_nb.evidence.scrub import redact_parameters


def operator() -> str:
    return os.environ.get("VEXTRUS_OPERATOR") or getpass.getuser()


HOST_VAR = "VEXTRUS_HOST"


def host() -> str:
    """The host a run is recorded from; VEXTRUS_HOST names it where the machine's name does not
    (a container's random name, or several "hosts" on one machine in the tests)."""
    return os.environ.get(HOST_VAR) or socket.gethostname()


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=paths.project_root(),
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        return "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=paths.project_root(),
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return commit + ("+dirty" if dirty else "")


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vextrus-nb")
    except PackageNotFoundError:
        return "0+unknown"


def run_identity(run_id: str, runbook: str, env: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The fields every run record opens with: what ran, where, by whom, from which code."""
    return {
        "run_id": run_id,
        "runbook": runbook,
        "env": env,
        "parameters": redact_parameters(parameters),
        "operator": operator(),
        "host": host(),
        "git_commit": git_commit(),
        "package_version": package_version(),
    }
