"""Backup, restore and the scheduled DR drill: dump, manifest, verify, restore, prove.

Layout: manifest (what a set holds and how to prove it), postgres (pg_dump /
pg_restore in directory format, table statistics), redis_snapshot (BGSAVE and
the RDB copy), sets (take, verify, list, prune), restore (scratch first, then
prove, then swap in for a live restore), steps (the runbooks' steps).
"""

from vextrus_nb.backup.manifest import BackupError, Manifest
from vextrus_nb.backup.steps import (
    back_up,
    discard_staging,
    drill,
    find_set,
    judge_drill,
    restore,
    retention,
    validate,
    verify_set,
)

__all__ = [
    "BackupError",
    "Manifest",
    "back_up",
    "discard_staging",
    "drill",
    "find_set",
    "judge_drill",
    "restore",
    "retention",
    "validate",
    "verify_set",
]
