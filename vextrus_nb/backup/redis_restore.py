"""Redis: prove a set's RDB holds what the manifest says, and put it back.

The proof is a key count and a sample of keys, each with the sha256 of its DUMP (Redis's own
serialisation of the value, type and all). Both are read at backup time from the copied RDB
loaded into a scratch redis-server, not from the live server: writes after BGSAVE cannot make
the sample disagree with the file it describes.

A restore always loads the RDB into a scratch server first and proves it there. A live restore
then, only once that proof holds: BGSAVEs the live data and keeps that RDB beside the server's
(the rollback), stops Redis through the environment's driver, puts the set's RDB in the
server's own dir/dbfilename, starts Redis through the driver and proves the live server.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import redis

from vextrus_nb.backup.redis_snapshot import info, key_count, rdb_file, snapshot
from vextrus_nb.errors import BackupError
from vextrus_nb.ports import free_ports

SAMPLE_SIZE = 200
START_TIMEOUT_S = 30.0
"""Loading an RDB takes about a second per GB; the sandbox's are a few MB."""


def dump_digest(client: redis.Redis, key: bytes) -> str | None:
    """sha256 of DUMP's payload: equal payloads mean equal type and value (None: no such key)."""
    payload = cast(bytes | None, client.dump(key))
    return None if payload is None else hashlib.sha256(payload).hexdigest()


def sample_digests(client: redis.Redis, size: int = SAMPLE_SIZE) -> dict[str, str]:
    """Up to `size` keys of db 0 (the sorted first ones SCAN returns, so a re-run picks the same
    ones on the same data) with the sha256 of their DUMP."""
    keys = sorted(client.scan_iter(count=1000))[:size]
    digests = {}
    for key in keys:
        digest = dump_digest(client, key)
        if digest is not None:
            digests[key.decode("utf-8", "backslashreplace")] = digest
    return digests


def compare(client: redis.Redis, keys: int, sample: dict[str, str]) -> list[str]:
    """What differs between a server and the manifest's key count and sample, one line each."""
    mismatches = []
    found = key_count(client)
    if found != keys:
        mismatches.append(f"{found} keys, manifest says {keys}")
    for key, expected in sample.items():
        digest = dump_digest(client, key.encode("utf-8", "surrogateescape"))
        if digest is None:
            mismatches.append(f"key {key!r}: missing")
        elif digest != expected:
            mismatches.append(f"key {key!r}: value differs (DUMP sha256)")
    return mismatches


def _redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        raise BackupError("redis-server not found (Debian: redis-server): a Redis restore needs one")
    return found


@contextlib.contextmanager
def scratch_server(rdb: Path) -> Iterator[redis.Redis]:
    """A redis-server on a free loopback port that loaded `rdb` (a copy: the set stays as it
    is), with a random password, stopped and deleted on exit. BackupError when it cannot load
    the file (a missing or damaged RDB), with redis-server's own last words."""
    if not rdb.is_file():
        raise BackupError(f"{rdb.name}: missing, no RDB to load")
    with tempfile.TemporaryDirectory(prefix="vextrus-redis-restore-") as folder:
        workdir = Path(folder)
        shutil.copyfile(rdb, workdir / "dump.rdb")
        [port] = free_ports(1)
        password = secrets.token_urlsafe(24)
        conf = workdir / "redis.conf"
        conf.touch(mode=0o600)  # the password is in it
        conf.write_text(
            "\n".join(
                [
                    f"port {port}",
                    "bind 127.0.0.1",
                    "protected-mode yes",
                    f"dir {workdir}",
                    "dbfilename dump.rdb",
                    'save ""',
                    "appendonly no",
                    f"requirepass {password}",
                    f"logfile {workdir / 'redis.log'}",
                ]
            )
            + "\n"
        )
        process = subprocess.Popen(
            [_redis_server(), str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5)
        try:
            _wait_until_loaded(client, process, workdir / "redis.log")
            yield client
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_loaded(client: redis.Redis, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            last = log.read_text(errors="replace").strip().splitlines()[-1:] if log.is_file() else []
            raise BackupError(f"redis-server could not load the RDB: {(last or ['no log'])[0]}")
        try:
            if int(info(client, "persistence").get("loading", 1)) == 0:
                return
        except redis.BusyLoadingError:
            pass
        except redis.ConnectionError:
            pass  # not listening yet
        time.sleep(0.05)
    raise BackupError(f"redis-server did not finish loading the RDB within {START_TIMEOUT_S:g}s")


def describe_rdb(rdb: Path, size: int = SAMPLE_SIZE) -> tuple[int, dict[str, str]]:
    """The key count and sample digests of an RDB, read by loading it into a scratch server."""
    with scratch_server(rdb) as client:
        return key_count(client), sample_digests(client, size)


@dataclass
class RedisRestoreOutcome:
    into: str  # "scratch redis-server" or the live server's address
    keys: int = 0
    sampled: int = 0
    seconds: float = 0.0
    mismatches: list[str] = field(default_factory=list)
    kept_as: str = ""  # the live data's RDB before a live restore

    @property
    def proven(self) -> bool:
        return not self.mismatches

    def row(self) -> dict[str, Any]:
        return {
            "datastore": "redis",
            "restored into": self.into,
            "keys": self.keys,
            "sampled": self.sampled,
            "seconds": self.seconds,
            "proven": self.proven,
            "mismatches": "; ".join(self.mismatches[:5]),
            "old data kept as": self.kept_as,
        }


def restore_to_scratch(rdb: Path, keys: int, sample: dict[str, str]) -> RedisRestoreOutcome:
    """Load the RDB into a scratch server and prove it against the manifest."""
    started = time.perf_counter()
    outcome = RedisRestoreOutcome("scratch redis-server", keys, len(sample))
    with scratch_server(rdb) as client:
        outcome.mismatches = compare(client, keys, sample)
    outcome.seconds = round(time.perf_counter() - started, 3)
    return outcome


def restore_live(
    rdb: Path, keys: int, sample: dict[str, str], live: redis.Redis, driver: Any, run_id: str
) -> RedisRestoreOutcome:
    """Prove in scratch, keep the live data's RDB, swap the set's RDB in through the driver's
    stop and start, prove the live server. Nothing live is touched when the scratch proof fails."""
    outcome = restore_to_scratch(rdb, keys, sample)
    if not outcome.proven:
        return outcome
    started = time.perf_counter()
    target = rdb_file(live)
    kept = target.with_name(f"{target.name}.before-{run_id}")
    snapshot(live, kept)  # the live data as it is now: the rollback
    outcome.kept_as = str(kept)
    driver.stop(["redis"])
    shutil.copyfile(rdb, target.with_name(target.name + ".restoring"))
    (target.with_name(target.name + ".restoring")).replace(target)  # atomic within the directory
    driver.start(["redis"])
    kwargs = live.connection_pool.connection_kwargs
    outcome.into = f"live redis {kwargs.get('host')}:{kwargs.get('port')}"
    _wait_for_live(live)
    outcome.mismatches = compare(live, keys, sample)
    outcome.seconds = round(outcome.seconds + time.perf_counter() - started, 3)
    return outcome


def _wait_for_live(client: redis.Redis) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.BusyLoadingError, redis.ConnectionError):
            if int(info(client, "persistence").get("loading", 1)) == 0:
                return
        time.sleep(0.05)
    raise BackupError(f"Redis did not come back within {START_TIMEOUT_S:g}s after the restore")
