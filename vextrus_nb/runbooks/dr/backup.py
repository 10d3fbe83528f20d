"""The steps of notebooks/dr/backup.ipynb: take a set, then apply the retention policy.

Backup only adds a set to the store; pruning old sets is its one destructive step, dry-run by
default (a dry run lists what it would prune).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vextrus_nb.backup import sets
from vextrus_nb.backup.access import check_services_and_store, s3_store, store
from vextrus_nb.backup.take import BackupResult
from vextrus_nb.backup.take import back_up as take_set
from vextrus_nb.config import Environment
from vextrus_nb.errors import RunRefused

KINDS = ("", "full", "incr", "diff")

if TYPE_CHECKING:
    from vextrus_nb.run.session import Runbook


def validate(env: Environment, parameters: dict[str, Any]) -> None:
    """Refuse bad parameters before anything is touched (the runner exits 2, before a kernel)."""
    check_services_and_store(env, parameters.get("services", ""))
    kind = parameters.get("kind", "")
    if kind not in KINDS:
        raise RunRefused(f"kind must be full, incr or diff (or empty: the environment's), not {kind!r}")
    if kind and (env.backup is None or env.backup.pgbackrest is None):
        raise RunRefused(f"kind={kind!r} needs physical backups, and '{env.name}' names no backup.pgbackrest")


def back_up(rb: Runbook) -> BackupResult:
    """Take a new set (a pgBackRest backup first, when the environment has a stanza, then the
    chosen databases, Redis and the configuration); its figures go on record."""
    taken = take_set(rb, rb.parameters.get("services", ""), rb.parameters.get("kind", ""))
    rb.summary.update(taken.summary())
    # What this run wrote whatever dry_run says (dry_run only governs pruning): never a dry run.
    physical = [taken.manifest.physical] if taken.manifest.physical else []
    rb.summary["writes"] = [f"backup set {taken.manifest.set_id}"] + [
        f"pgbackrest backup {p.label} in repo{p.repo}" for p in [*physical, *taken.manifest.physical_copies]
    ]
    return taken


def retention(rb: Runbook) -> Any:
    """Sets the policy no longer needs: pruned when dry_run is false, listed either way."""
    import pandas as pd

    policy = rb.env.backup
    assert policy is not None
    now = datetime.now(UTC)
    doomed = sets.to_prune(sets.list_sets(store(rb.env)), policy.keep_last, policy.keep_days, now)
    second = s3_store(rb)
    doomed_copies = (
        sets.to_prune(sets.from_ids(second.set_ids()), policy.keep_last, policy.keep_days, now)
        if second
        else []
    )
    if not rb.dry_run:
        sets.prune(doomed)
        for copy in doomed_copies:
            second.delete(copy.set_id)  # type: ignore[union-attr]
    if second is not None:
        rb.summary["s3_pruned" if not rb.dry_run else "s3_would_prune"] = [c.set_id for c in doomed_copies]
    action = "pruned" if not rb.dry_run else "would prune (dry run)"
    rb.summary["pruned" if not rb.dry_run else "would_prune"] = [s.set_id for s in doomed]
    kept = sets.list_sets(store(rb.env))
    frame = pd.DataFrame(
        [
            {
                "set": s.set_id,
                "finished": s.finished,
                "ended": s.ended_at,
                "MiB": round(s.bytes / 2**20, 2),
                "retention": action if s in doomed else "kept",
            }
            for s in kept
        ]
    )
    return frame


# -- Evidence: what the report and the metrics read of this runbook's runs ---------------------
# Plain data (evidence/declared.py): read from this source without importing the module, so it
# names only the declaration types (as declared.X) and literals.
from vextrus_nb.evidence import declared  # noqa: E402

EVIDENCE = declared.Evidence(
    figures=(declared.Figure("databases"),),
    kinds=(
        declared.Kind(
            "backup",
            passed_only=True,
            gauges=(
                declared.Gauge(
                    "vextrus_backup_last_success_timestamp_seconds",
                    "When the newest sealed, passed backup ended",
                    "ended_at",
                ),
            ),
        ),
    ),
)
