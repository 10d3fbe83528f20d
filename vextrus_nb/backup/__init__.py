"""Backup, restore and the scheduled DR drill: dump, manifest, verify, restore, prove.

Layout: manifest (what a set holds and how to prove it), postgres (pg_dump /
pg_restore in directory format, table statistics), redis_snapshot (BGSAVE and
the RDB copy), sets (take, verify, list, prune), access (a run's logins, stores
and sets), take (a new set), restore (scratch first, then prove, then swap in for
a live restore), s3_store (the second store), redis_restore (an RDB proven in a scratch
redis-server, swapped in through the driver), objects (the platform bucket's objects copied
into a set, restored into a bucket and proven), kafka_metadata (topics and group offsets
exported and re-applied), datastores (dr/restore's `datastores`: those three restored).
The runbooks' steps are in vextrus_nb/runbooks/dr/.
"""

from vextrus_nb.backup.manifest import Manifest
from vextrus_nb.errors import BackupError

__all__ = ["BackupError", "Manifest"]
