"""The steps of notebooks/dr/restore.ipynb: verify the set, restore into scratch and prove it;
only a live restore (`target="live"`, `dry_run=false`, `confirm` in production) swaps the
proven copy in, keeping the old database."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from vextrus_nb.backup.access import (
    TARGETS,
    check_set_choice,
    discard_staging,
    find_set,
    verify_set,
)
from vextrus_nb.backup.manifest import Manifest
from vextrus_nb.backup.restore import RestoreResult, restore_set
from vextrus_nb.config import Environment
from vextrus_nb.errors import RunRefused

if TYPE_CHECKING:
    from vextrus_nb.run.session import Runbook


def validate(env: Environment, parameters: dict[str, Any]) -> None:
    """Refuse bad parameters before anything is touched (the runner exits 2, before a kernel)."""
    check_set_choice(env, parameters)
    target = parameters.get("target", "scratch")
    if target not in TARGETS:
        raise RunRefused(f"target must be one of {', '.join(TARGETS)}, not {target!r}")


def verify(rb: Runbook) -> tuple[Path, Manifest]:
    """The named (or newest) set, every file checked against its manifest before anything is touched."""
    path = find_set(rb, rb.parameters.get("set_id", ""), rb.parameters.get("from_store", "local"))
    return path, verify_set(rb, path)


def restore(rb: Runbook, path: Path, manifest: Manifest) -> RestoreResult:
    """Restore and prove; a set fetched from S3 is a working copy, discarded whatever happens."""
    try:
        restored = restore_set(
            rb, path, manifest, rb.parameters.get("services", ""), rb.parameters.get("target", "scratch")
        )
    finally:
        discard_staging(rb)
    rb.summary["restored"] = [o.service for o in restored.outcomes]
    if restored.unproven:
        rb.fail(f"restore not proven for: {', '.join(restored.unproven)}")
    return restored
