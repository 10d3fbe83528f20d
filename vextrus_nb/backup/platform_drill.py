"""The complete-failure drill's restore half: every datastore of a verified set into a second,
fresh platform (drivers.ScratchPlatform), each proven there, each timed from the drill's start.

The restores are the ones dr/restore runs with `target=live`, aimed at the second platform:
PostgreSQL from the set's logical dumps (they restore into another cluster whatever its roles'
passwords, where a pgBackRest restore would bring the first cluster's roles and passwords with
it), one database at a time into a fresh database, proven, swapped in; Redis's RDB through the
second platform's driver; the objects into its buckets; Kafka's topics and group offsets onto
its broker. What the fresh platform held before is kept beside each, as those restores do, and
goes with the platform when the drill tears it down.

A set is verified file by file before anything is started, and a problem is named by the
datastore whose file it is: a drill of a damaged set fails saying which datastore it could not
have restored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vextrus_nb.backup import kafka_metadata, objects, redis_restore, sets
from vextrus_nb.backup.manifest import Manifest
from vextrus_nb.backup.postgres import PostgresLogin
from vextrus_nb.backup.restore import restore_database
from vextrus_nb.config import Environment, Inventory
from vextrus_nb.drivers.base import ScratchPlatform
from vextrus_nb.errors import BackupError
from vextrus_nb.evidence.scrub import Scrubber
from vextrus_nb.postgres_binaries import find_bindir
from vextrus_nb.targets import endpoints

DATASTORES = ("postgres", "redis", "objects", "kafka")


def datastores_in(manifest: Manifest) -> list[str]:
    """The datastores the set holds something of, in restore order."""
    holds = {
        "postgres": bool(manifest.databases),
        "redis": manifest.redis is not None,
        "objects": bool(manifest.objects),
        "kafka": manifest.kafka is not None,
    }
    return [name for name in DATASTORES if holds[name]]


def datastore_of(manifest: Manifest, path: str) -> str:
    """Which datastore a file of the set belongs to ("set" for the manifest and configuration)."""
    for entry in manifest.databases:
        if path == entry.directory or path.startswith(entry.directory.rstrip("/") + "/"):
            return "postgres"
    if path.startswith("redis/"):
        return "redis"
    if path.startswith(objects.OBJECTS_DIR + "/"):
        return "objects"
    if manifest.kafka is not None and path == manifest.kafka.file:
        return "kafka"
    return "set"


def verify_by_datastore(path: Path) -> Manifest:
    """Every file of the set against its manifest; BackupError naming each datastore with a bad
    file (and the files), before anything is started or restored."""
    manifest, problems = sets.verify(path)
    if manifest is None:
        named = "; ".join(str(p) for p in problems)
        raise BackupError(f"backup set {path.name} cannot be drilled: {named}")
    by_datastore: dict[str, list[str]] = {}
    for problem in problems:
        by_datastore.setdefault(datastore_of(manifest, problem.path), []).append(str(problem))
    if by_datastore:
        named = "; ".join(f"{name}: {', '.join(found)}" for name, found in sorted(by_datastore.items()))
        raise BackupError(
            f"backup set {path.name} failed verification for datastore(s) "
            f"{', '.join(sorted(by_datastore))}, nothing was started or restored ({named})"
        )
    return manifest


def plan(manifest: Manifest) -> list[dict[str, Any]]:
    """What a drill of this set would restore, datastore by datastore, and into what."""
    kafka, redis_entry = manifest.kafka, manifest.redis
    holds = {
        "postgres": f"{len(manifest.databases)} databases, "
        f"{sum(t.rows for d in manifest.databases for t in d.tables.values())} rows (logical dumps)",
        "redis": f"{redis_entry.keys} keys (RDB)" if redis_entry else "nothing",
        "objects": f"{len(manifest.objects)} objects",
        "kafka": f"{kafka.topics} topics, {kafka.groups} groups (metadata)" if kafka else "nothing",
    }
    into = {
        "postgres": "the second platform's cluster: a fresh database each, proven, swapped in",
        "redis": "the second platform's Redis: stopped, the RDB put in place, started, proven",
        "objects": "the second platform's buckets, every object read back and proven",
        "kafka": "the second platform's broker: topics created, offsets committed, proven",
    }
    present = datastores_in(manifest)
    return [
        {
            "datastore": name,
            "set holds": holds[name],
            "into": into[name] if name in present else "nothing: the set holds none",
        }
        for name in DATASTORES
    ]


@dataclass
class DatastoreRecovery:
    datastore: str
    restored: str = ""  # what came back, in a few words
    seconds: float = 0.0  # its own restore and proof
    ready_at_s: float = 0.0  # the drill's start to its proof
    mismatches: list[str] = field(default_factory=list)

    @property
    def proven(self) -> bool:
        return not self.mismatches

    def row(self) -> dict[str, Any]:
        return {
            "datastore": self.datastore,
            "restored": self.restored,
            "seconds": round(self.seconds, 2),
            "ready at (s since drill start)": round(self.ready_at_s, 2),
            "proven": self.proven,
            "mismatches": "; ".join(self.mismatches[:5]),
        }


@dataclass
class _Target:
    """The second platform as the restores reach it, its secrets registered with the scrubber."""

    env: Environment
    where: dict[str, tuple[str, int]]
    scrubber: Scrubber

    def secret(self, name: str) -> str:
        value = self.env.resolve_secret(name)
        self.scrubber.add([value])
        return value


def restore_platform(
    platform: ScratchPlatform,
    inventory: Inventory,
    path: Path,
    manifest: Manifest,
    run_id: str,
    drill_started: float,
    scrubber: Scrubber,
    jobs: int = 2,
) -> list[DatastoreRecovery]:
    """Every datastore the set holds into `platform`, each proven; a datastore whose restore
    raises is recorded as not proven (its error, scrubbed) and the others still go on, so the
    record times all of them. `drill_started` is a time.perf_counter() reading."""
    target = _Target(platform.environment, endpoints(platform.environment, inventory), scrubber)
    restorers = {"postgres": _postgres, "redis": _redis, "objects": _objects, "kafka": _kafka}
    recovered = []
    for name in datastores_in(manifest):
        started = time.perf_counter()
        recovery = DatastoreRecovery(name)
        try:
            restorers[name](target, platform, path, manifest, run_id, jobs, recovery)
        except Exception as exc:  # the drill's record names it; the other datastores go on
            detail = (str(exc).strip().splitlines() or [""])[0]
            recovery.mismatches.append(scrubber.text(f"{type(exc).__name__}: {detail}"))
        recovery.seconds = time.perf_counter() - started
        recovery.ready_at_s = time.perf_counter() - drill_started
        recovered.append(recovery)
    return recovered


def _postgres(
    target: _Target,
    platform: ScratchPlatform,
    path: Path,
    manifest: Manifest,
    run_id: str,
    jobs: int,
    recovery: DatastoreRecovery,
) -> None:
    login_settings = target.env.postgres
    if login_settings is None:
        raise BackupError("the second platform has no PostgreSQL login")
    host, port = target.where["postgres"]
    login = PostgresLogin(
        host, port, login_settings.user, target.secret(login_settings.password_secret), find_bindir()
    )
    rows = 0
    for entry in manifest.databases:
        outcome = restore_database(login, path, entry, True, run_id, jobs, keep_scratch=False)
        rows += outcome.rows
        recovery.mismatches += [f"{entry.service}: {m}" for m in outcome.mismatches]
    recovery.restored = f"{len(manifest.databases)} databases, {rows} rows"


def _redis(
    target: _Target,
    platform: ScratchPlatform,
    path: Path,
    manifest: Manifest,
    run_id: str,
    jobs: int,
    recovery: DatastoreRecovery,
) -> None:
    import redis

    entry, login = manifest.redis, target.env.redis
    assert entry is not None
    if login is None:
        raise BackupError("the second platform has no Redis login")
    host, port = target.where["redis"]
    password = target.secret(login.password_secret)
    client = redis.Redis(host=host, port=port, username=login.user, password=password, socket_timeout=30)
    outcome = redis_restore.restore_live(
        path / "redis" / entry.file, entry.keys, entry.sample, client, platform.driver, run_id
    )
    recovery.mismatches += outcome.mismatches
    recovery.restored = f"{outcome.keys} keys, {outcome.sampled} sampled"


def _objects(
    target: _Target,
    platform: ScratchPlatform,
    path: Path,
    manifest: Manifest,
    run_id: str,
    jobs: int,
    recovery: DatastoreRecovery,
) -> None:
    keys = target.env.object_store
    if keys is None or "minio" not in target.where:
        raise BackupError("the second platform has no object store with keys (object_store)")
    host, port = target.where["minio"]
    client = objects.s3_client(
        f"http://{host}:{port}", target.secret(keys.access_key_secret), target.secret(keys.secret_key_secret)
    )
    count = 0
    for bucket, entries in sorted(objects.buckets_of(manifest.objects).items()):
        outcome = objects.restore_bucket(client, path, bucket, entries, run_id, live=True)
        count += outcome.objects
        recovery.mismatches += [f"{bucket}: {m}" for m in outcome.mismatches]
    recovery.restored = f"{count} objects"


def _kafka(
    target: _Target,
    platform: ScratchPlatform,
    path: Path,
    manifest: Manifest,
    run_id: str,
    jobs: int,
    recovery: DatastoreRecovery,
) -> None:
    assert manifest.kafka is not None
    if "kafka" not in target.where or "kafka" in target.env.simulated:
        raise BackupError("the second platform has no broker speaking the Kafka protocol")
    host, port = target.where["kafka"]
    exported = kafka_metadata.KafkaExport.read(path / manifest.kafka.file)
    outcome = kafka_metadata.restore(exported, f"{host}:{port}")
    recovery.mismatches += outcome.mismatches
    recovery.restored = f"{outcome.topics} topics, {outcome.groups} groups"
