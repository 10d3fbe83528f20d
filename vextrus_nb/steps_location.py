"""Where a runbook's steps live, by the layout's one rule: `notebooks/<family>/<name>.ipynb` has
its steps in `vextrus_nb/runbooks/<family>/<name>.py` (dashes become underscores), unless the
family's package names one module for all its notebooks as `STEPS_MODULE` (the eight deploy
phases: `phases`). The runner (run/steps.py) and the evidence declarations (evidence/declared.py)
both ask here, so the answer cannot differ between them.
"""

from __future__ import annotations

import importlib

PACKAGE = "vextrus_nb.runbooks"


def module_name(runbook: str) -> str:
    """The dotted name of the runbook's steps module (which may not exist: a test's own notebook)."""
    family, _, name = runbook.removesuffix(".ipynb").partition("/")
    try:
        family_package = importlib.import_module(f"{PACKAGE}.{family}")
    except ModuleNotFoundError:
        family_package = None
    name = getattr(family_package, "STEPS_MODULE", name)
    return f"{PACKAGE}.{family}.{name.replace('-', '_')}"
