"""A runbook's steps module (found by steps_location.module_name), and its parameter checks.

A steps module may
define `validate(env, parameters)`: the runner calls it before any kernel starts, so a refusal
costs no kernel, and `start()` calls it again inside the kernel as the backstop for plain
papermill and JupyterLab.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

from vextrus_nb.errors import RunRefused, VextrusError
from vextrus_nb.steps_location import module_name

if TYPE_CHECKING:
    from vextrus_nb.config import Environment


def steps_module(runbook: str) -> ModuleType | None:
    """The runbook's steps, or None for a notebook that has no module (a test's own runbook;
    tests/test_layout.py holds every committed notebook to having one)."""
    wanted = module_name(runbook)
    try:
        return importlib.import_module(wanted)
    except ModuleNotFoundError as exc:
        if exc.name and wanted.startswith(exc.name):
            return None
        raise


def validate(runbook: str, env: Environment, parameters: dict[str, Any]) -> None:
    """The runbook's own checks of its parameters (RunRefused names the problem)."""
    check = getattr(steps_module(runbook), "validate", None)
    if check is None:
        return
    try:
        check(env, parameters)
    except RunRefused:
        raise
    except VextrusError as exc:  # what the check could not look at is a refusal too, said plainly
        raise RunRefused(f"{type(exc).__name__}: {exc}") from None
