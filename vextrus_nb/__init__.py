"""vextrus_nb: the helper package behind the Vextrus runbooks.

Kept import-light: `import vextrus_nb` must not pull in papermill, pandas or
plotly, so the CLI starts fast; `start` imports what a runbook needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vextrus_nb.run.session import Runbook

__all__ = ["start"]


def start(runbook: str, env: str = "sandbox", **parameters: Any) -> Runbook:
    """Open a run: load the environment, check the guards, print who/what/where/when."""
    from vextrus_nb.run.session import start as _start

    return _start(runbook, env=env, **parameters)
