"""Redis: BGSAVE, wait for LASTSAVE to move, check the save succeeded, copy the RDB.

The copy is read from the server's own directory (CONFIG GET dir/dbfilename),
which the local driver can reach; where it cannot, `redis-cli --rdb` would
stream the same file over the network (not needed by any environment yet).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import redis

from vextrus_nb.backup.manifest import RedisEntry
from vextrus_nb.errors import BackupError

SAVE_TIMEOUT_S = 120.0


def snapshot(client: redis.Redis, target: Path, timeout_s: float = SAVE_TIMEOUT_S) -> RedisEntry:
    """A fresh RDB of the live data set, copied to `target`."""
    before_info = client.info("persistence")
    before_saves = int(
        before_info.get("rdb_saves", -1)
    )  # Redis 7 counts saves; older ones only have LASTSAVE
    before_lastsave = int(client.lastsave().timestamp())
    keys = sum(int(db.get("keys", 0)) for db in client.info("keyspace").values())  # every dbN, not only 0
    started = time.monotonic()
    try:
        client.bgsave()
    except redis.ResponseError as exc:  # a save already running: ours is queued behind it
        if "in progress" not in str(exc):
            raise BackupError(f"Redis refused BGSAVE: {exc}") from None
        client.bgsave(schedule=True)
    while True:
        info = client.info("persistence")
        saved_at = int(client.lastsave().timestamp())
        moved = (
            int(info.get("rdb_saves", -1)) > before_saves if before_saves >= 0 else saved_at > before_lastsave
        )
        if moved and not info.get("rdb_bgsave_in_progress"):
            break
        if time.monotonic() - started > timeout_s:
            raise BackupError(f"Redis BGSAVE did not finish within {timeout_s:g}s")
        time.sleep(0.05)
    if info.get("rdb_last_bgsave_status") != "ok":
        raise BackupError(f"Redis BGSAVE failed: rdb_last_bgsave_status {info.get('rdb_last_bgsave_status')}")
    config = client.config_get("dir") | client.config_get("dbfilename")
    source = Path(config["dir"]) / config["dbfilename"]
    if not source.is_file():
        raise BackupError(f"the RDB file {source} is not reachable from here")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return RedisEntry(file=target.name, bytes=target.stat().st_size, lastsave=saved_at, keys=keys)


def server_version(client: redis.Redis) -> str:
    return str(client.info("server").get("redis_version", "?"))


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
