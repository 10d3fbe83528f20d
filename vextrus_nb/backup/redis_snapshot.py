"""Redis: BGSAVE, wait for LASTSAVE to move, check the save succeeded, copy the RDB.

The copy is read from the server's own directory (CONFIG GET dir/dbfilename),
which the local driver can reach; where it cannot, `redis-cli --rdb` would
stream the same file over the network (not needed by any environment yet).
"""

from __future__ import annotations

import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import redis

from vextrus_nb.backup.manifest import RedisEntry
from vextrus_nb.errors import BackupError

SAVE_TIMEOUT_S = 120.0


# redis-py types every reply as Awaitable | Any, for its sync and async clients alike: these say
# what the sync client's replies are, once, for the backup modules.
def info(client: redis.Redis, section: str) -> dict[str, Any]:
    return cast(dict[str, Any], client.info(section))


def rdb_file(client: redis.Redis) -> Path:
    """Where the server writes its RDB (CONFIG GET dir and dbfilename)."""
    directory = cast(dict[str, str], client.config_get("dir"))["dir"]
    return Path(directory) / cast(dict[str, str], client.config_get("dbfilename"))["dbfilename"]


def key_count(client: redis.Redis) -> int:
    """Keys in every dbN, not only db 0."""
    return sum(int(db.get("keys", 0)) for db in info(client, "keyspace").values())


def last_save(client: redis.Redis) -> int:
    return int(cast(datetime, client.lastsave()).timestamp())


def snapshot(client: redis.Redis, target: Path, timeout_s: float = SAVE_TIMEOUT_S) -> RedisEntry:
    """A fresh RDB of the live data set, copied to `target`."""
    before_info = info(client, "persistence")
    before_saves = int(
        before_info.get("rdb_saves", -1)
    )  # Redis 7 counts saves; older ones only have LASTSAVE
    before_lastsave = last_save(client)
    keys = key_count(client)
    started = time.monotonic()
    try:
        client.bgsave()
    except redis.ResponseError as exc:  # a save already running: ours is queued behind it
        if "in progress" not in str(exc):
            raise BackupError(f"Redis refused BGSAVE: {exc}") from None
        client.bgsave(schedule=True)
    while True:
        persistence = info(client, "persistence")
        saved_at = last_save(client)
        moved = (
            int(persistence.get("rdb_saves", -1)) > before_saves
            if before_saves >= 0
            else saved_at > before_lastsave
        )
        if moved and not persistence.get("rdb_bgsave_in_progress"):
            break
        if time.monotonic() - started > timeout_s:
            raise BackupError(f"Redis BGSAVE did not finish within {timeout_s:g}s")
        time.sleep(0.05)
    status = persistence.get("rdb_last_bgsave_status")
    if status != "ok":
        raise BackupError(f"Redis BGSAVE failed: rdb_last_bgsave_status {status}")
    source = rdb_file(client)
    if not source.is_file():
        raise BackupError(f"the RDB file {source} is not reachable from here")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return RedisEntry(file=target.name, bytes=target.stat().st_size, lastsave=saved_at, keys=keys)


def server_version(client: redis.Redis) -> str:
    return str(info(client, "server").get("redis_version", "?"))


def check_rdb(path: Path) -> tuple[bool, int | None, str]:
    """redis-check-rdb on a copied RDB: whether it is a valid, complete snapshot, and how many keys
    it holds. The sha256 in the manifest proves the file did not change; this proves it was good."""
    import re
    import subprocess

    tool = shutil.which("redis-check-rdb")
    if tool is None:
        return False, None, "redis-check-rdb not found (Debian: redis-tools)"
    done = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False, timeout=600)
    output = done.stdout + done.stderr
    keys = re.search(r"(\d+) keys read", output)
    ok = done.returncode == 0 and "RDB looks OK" in output
    detail = "RDB looks OK" if ok else (output.strip().splitlines() or ["no output"])[-1]
    return ok, int(keys.group(1)) if keys else None, detail
