"""Where things live: the project tree, the sandbox state, the outputs.

Every location can be moved with an environment variable so that tests, a
scheduler's container and an engineer's checkout never step on each other.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def project_root() -> Path:
    """The checkout holding `parameters/` and `notebooks/` (VEXTRUS_HOME overrides)."""
    if home := os.environ.get("VEXTRUS_HOME"):
        return Path(home).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / "parameters" / "inventory.yaml").is_file():
            return candidate
    return _PACKAGE_PARENT


def parameters_dir() -> Path:
    return Path(os.environ.get("VEXTRUS_PARAMETERS_DIR") or project_root() / "parameters")


def notebooks_dir() -> Path:
    return Path(os.environ.get("VEXTRUS_NOTEBOOKS_DIR") or project_root() / "notebooks")


def outputs_dir() -> Path:
    return Path(os.environ.get("VEXTRUS_OUTPUTS_DIR") or project_root() / "outputs")


def metrics_dir() -> Path:
    """Where runs write their Prometheus textfiles: node_exporter's textfile collector directory
    where one runs (VEXTRUS_METRICS_DIR), else outputs/metrics."""
    return Path(os.environ.get("VEXTRUS_METRICS_DIR") or outputs_dir() / "metrics")


def sandbox_dir() -> Path:
    return Path(os.environ.get("VEXTRUS_SANDBOX_DIR") or project_root() / ".sandbox")


def cache_dir() -> Path:
    """What can be thrown away and worked out again (VEXTRUS_CACHE_DIR, else the XDG cache)."""
    if chosen := os.environ.get("VEXTRUS_CACHE_DIR"):
        return Path(chosen)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vextrus-nb"
