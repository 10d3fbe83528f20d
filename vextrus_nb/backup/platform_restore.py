"""The complete-failure drill's restore half: every datastore of a verified set into a second,
fresh platform (drivers.ScratchPlatform), each proven there, each timed from the drill's start.

PostgreSQL comes back as in a real complete failure: the whole cluster (roles and passwords
included) restored with pgBackRest from a repository and its archived WAL to the latest moment
(or a time), into the second platform's data directory before its server first starts
(PhysicalRecovery, the platform's drivers.PostgresRecovery), and proven there as dr/restore
proves a point-in-time copy (pitr.prove) before anything of that platform writes to it; the
platform's services take the environment's credentials, which the restored roles have.
`postgres_from=dumps` instead restores the set's logical dumps with dr/restore's `target=live`
restore, one database at a time into a fresh database of a fresh cluster, proven, swapped in.

The other datastores are restored as dr/restore's `target=live` does, aimed at the second
platform, side by side (they are independent): Redis's RDB through its driver, the objects into
its buckets, Kafka's topics and group offsets onto its broker. What the fresh platform held
before is kept beside each, as those restores do, and goes with the platform when the drill
tears it down.

A set is verified file by file before anything is started, and a problem is named by the
datastore whose file it is: a drill of a damaged set fails saying which datastore it could not
have restored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from vextrus_nb.backup import kafka_metadata, objects, pgbackrest, pitr, redis_restore, sets
from vextrus_nb.backup.manifest import Manifest
from vextrus_nb.backup.postgres import PostgresLogin
from vextrus_nb.backup.restore import restore_database
from vextrus_nb.config import Component, Environment, Inventory
from vextrus_nb.drivers.base import ScratchPlatform
from vextrus_nb.errors import BackupError
from vextrus_nb.evidence.scrub import Scrubber
from vextrus_nb.postgres_binaries import find_bindir
from vextrus_nb.probe_targets import endpoints

DATASTORES = ("postgres", "redis", "objects", "kafka")
PostgresSource = Literal["pgbackrest", "dumps"]
POSTGRES_SOURCES: tuple[PostgresSource, ...] = ("pgbackrest", "dumps")


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


def plan(manifest: Manifest, physical: PhysicalRecovery | None = None) -> list[dict[str, Any]]:
    """What a drill of this set (and, with `physical`, of the pgBackRest repository) would
    restore, datastore by datastore, and into what."""
    kafka, redis_entry = manifest.kafka, manifest.redis
    holds = {
        "postgres": physical.describe()
        if physical is not None
        else f"{len(manifest.databases)} databases, "
        f"{sum(t.rows for d in manifest.databases for t in d.tables.values())} rows (logical dumps)",
        "redis": f"{redis_entry.keys} keys (RDB)" if redis_entry else "nothing",
        "objects": f"{len(manifest.objects)} objects",
        "kafka": f"{kafka.topics} topics, {kafka.groups} groups (metadata)" if kafka else "nothing",
    }
    into = {
        "postgres": "the second platform's data directory, before its server first starts: "
        "recovered and promoted while its other parts start, proven before any of them writes to it"
        if physical is not None
        else "the second platform's cluster: a fresh database each, proven, swapped in",
        "redis": "the second platform's Redis: stopped, the RDB put in place, started, proven",
        "objects": "the second platform's buckets, every object read back and proven",
        "kafka": "the second platform's broker: topics created, offsets committed, proven",
    }
    present = datastores_in(manifest)
    if physical is not None and "postgres" not in present:
        present.insert(0, "postgres")
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
class PhysicalRecovery:
    """drivers.PostgresRecovery with pgBackRest: the environment's whole cluster restored from
    repository `repo` (the newest backup that fits the target, chosen by `choose` before anything
    starts) and its archived WAL, to `target_time` or the latest archived moment, into the second
    platform's data directory, and, once its server has promoted, proven against the live
    cluster: the heartbeats row for row up to the recovery point before anything of the platform
    writes to it, then every table's rows and checksum beside the live ones (`workers` at a
    time: None, the machine's cores; the live ones read while the copy recovers) while the
    platform starts the rest. RPO is measured in the restored cluster to the latest moment: its
    newest heartbeat against `drill_started_at` (0 when it holds beats written after the drill
    began). A drill to `target_time` has no RPO (that figure would be the target's age): what
    it proves is that the cluster recovered to the target and never past it
    (`recovered_to_target`).

    Its threads (the live tables' read, the table proof) end in `close`, which the drill calls
    whatever happened: a platform that failed after `proven` leaves no proof reading a torn-down
    cluster, or writing findings while they are judged.

    The copy is reached with the live cluster's own login: the restored roles and passwords are
    the environment's, which the second platform's services also take from the secret store."""

    stanza: pgbackrest.Stanza
    live: PostgresLogin
    services: list[Component]
    drill_started: float  # time.perf_counter() at the drill's start
    drill_started_at: datetime  # the same moment on the wall clock, for the RPO
    repo: int = 1
    target_time: datetime | None = None
    workers: int | None = None
    backup_label: str = ""  # chosen before anything starts (choose)
    result: pitr.PitrResult = field(init=False)
    recovery: DatastoreRecovery = field(init=False)
    rpo_s: float | None = None
    _began: float = 0.0
    _restored: float = 0.0
    _proving: float = 0.0
    _tables: threading.Thread | None = None
    _reading: ThreadPoolExecutor | None = None
    _live_read: Future[pitr.LiveTables] | None = None

    def __post_init__(self) -> None:
        self._reset()

    def _end_threads(self) -> None:
        """The table proof joined and the live tables' reader shut down (each at most once)."""
        if self._tables is not None:
            self._tables.join()
        if self._reading is not None:
            self._reading.shutdown(wait=True)
        self._reading = None

    def _reset(self) -> None:
        self._end_threads()  # a platform that retried its start: the last proof ends first
        target = self.target_time.isoformat() if self.target_time else "latest"
        self.result = pitr.PitrResult(target=target, repo=self.repo, backup_label=self.backup_label)
        self.recovery = DatastoreRecovery("postgres")
        self.rpo_s, self._tables, self._live_read = None, None, None

    def choose(self) -> str:
        """The backup the restore starts from, chosen before anything starts: BackupError (naming
        the target) when the repository holds none that fits, so no platform is started for it."""
        self.backup_label = pgbackrest.choose_backup(self.stanza, self.target_time, self.repo).label
        self.result.backup_label = self.backup_label
        return self.backup_label

    def describe(self) -> str:
        target = self.target_time.isoformat() if self.target_time else "the latest archived moment"
        backup = f"backup {self.backup_label} of " if self.backup_label else ""
        return (
            f"the whole cluster: {backup}pgBackRest repository {self.repo} "
            f"({self.stanza.repository_location(self.repo)}) and its archived WAL, to {target}"
        )

    def restore_into(self, datadir: Path) -> None:
        if not self.backup_label:
            raise BackupError("no backup was chosen before the restore (PhysicalRecovery.choose)")
        self._reset()  # a platform that retried its start restores afresh
        self._began = time.perf_counter()
        self.result.datadir = str(datadir)
        self.result.restore_s = pgbackrest.restore_files(
            self.stanza, datadir, self.target_time, self.backup_label, repo=self.repo
        )
        self._restored = time.perf_counter()
        # The live side of the table proof, read while the copy recovers: recovery mostly waits on
        # fetching WAL segments one by one (not during the restore, which wants both cores).
        self._reading = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-tables")
        self._live_read = self._reading.submit(pitr.live_tables, self.live, self.services, self.workers)

    def proven(self, host: str, port: int) -> None:
        """The recovery point at once (the heartbeats, before the platform's services process
        writes more), then every table in the background while the platform starts the rest:
        its services only read their databases, and the table proof is a long read (join it
        with tables_proven). The services wait for nothing but the recovery point."""
        proving = time.perf_counter()
        self.result.port, self.result.start_s = port, proving - self._restored
        copy = PostgresLogin(host, port, self.live.user, self.live.password, self.live.bindir)
        try:
            beats = pitr.prove_heartbeats(self.result, copy, self.live, self.target_time)
        except Exception as exc:  # the copy or the live cluster unreadable: not proven, on record
            self.result.mismatches.append(f"proof failed: {type(exc).__name__}: {str(exc).strip()[:300]}")
            beats = False
        if self.result.last_heartbeat is not None and self.target_time is None:
            behind = (self.drill_started_at - self.result.last_heartbeat).total_seconds()
            self.rpo_s = max(0.0, behind)
        self._proving = proving
        self._tables = threading.Thread(
            target=self._prove_tables, args=(copy,) if beats else (None,), name="table-proof", daemon=True
        )
        self._tables.start()

    def _prove_tables(self, copy: PostgresLogin | None) -> None:
        try:
            if copy is not None:
                live_read = self._live_read.result() if self._live_read is not None else None
                pitr.prove_tables(self.result, copy, self.live, self.services, self.workers, live_read)
        except Exception as exc:  # a database unreadable mid-proof: not proven, on record
            self.result.mismatches.append(f"proof failed: {type(exc).__name__}: {str(exc).strip()[:300]}")
        finally:
            self.result.prove_s = time.perf_counter() - self._proving
            self._finish()

    def tables_proven(self) -> DatastoreRecovery:
        """PostgreSQL's recovery, once the table proof proven() started has ended."""
        if self._tables is not None:
            self._tables.join()
        return self.recovery

    def close(self, scrub: Callable[[str], str]) -> None:
        """Its threads ended (also when the platform failed after `proven`), then its findings
        passed through the run's scrubber (`scrub`: a database's error may quote a connection
        string), on the caller's thread once nothing else adds to them."""
        self._end_threads()
        self.result.mismatches[:] = [scrub(m) for m in self.result.mismatches]
        self.recovery.mismatches[:] = [scrub(m) for m in self.recovery.mismatches]

    def recovered_to_target(self) -> str | None:
        """What a drill to `target_time` proved instead of an RPO (None for the latest moment)."""
        if self.target_time is None:
            return None
        beat = self.result.last_heartbeat
        if beat is None:
            return f"not shown: the restored cluster gave no heartbeat to compare with {self.result.target}"
        return (
            f"recovered to the target {self.result.target}: newest restored heartbeat "
            f"{beat.isoformat()}, not past it"
        )

    def _finish(self) -> None:
        recovery = self.recovery
        recovery.mismatches = list(self.result.mismatches)
        changed = sum(1 for t in self.result.tables if not t["same as live"])
        recovery.restored = (
            f"cluster from backup {self.result.backup_label} (repo{self.repo}), "
            f"{len({t['database'] for t in self.result.tables})} databases, {len(self.result.tables)} tables "
            f"({changed} changed since), {self.result.heartbeat_rows} heartbeats"
        )
        recovery.seconds = time.perf_counter() - self._began
        recovery.ready_at_s = time.perf_counter() - self.drill_started

    def phases(self) -> dict[str, float]:
        """Its own phases, in seconds: pgBackRest's restore of the files, the server's start,
        recovery and promotion, the proof."""
        return {
            "postgres_restore_s": round(self.result.restore_s, 2),
            "postgres_recover_s": round(self.result.start_s, 2),
            "postgres_prove_s": round(self.result.prove_s, 2),
        }

    def summary(self) -> dict[str, Any]:
        beat = self.result.last_heartbeat
        return {
            "backup_label": self.result.backup_label,
            "repo": self.repo,
            "target": self.result.target,
            "recovery_point": beat.isoformat() if beat else None,
            "recovered_to_target": self.recovered_to_target(),
            "heartbeat_rows": self.result.heartbeat_rows,
            "tables_proven": len(self.result.tables),
            "tables_changed_since": sum(1 for t in self.result.tables if not t["same as live"]),
        }


@dataclass
class _Target:
    """The second platform as the restores reach it, its secrets registered with the scrubber."""

    env: Environment
    where: dict[str, tuple[str, int]]
    scrubber: Scrubber
    # The datastores are restored side by side: the scrubber's set is not to change mid-scrub.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def secret(self, name: str) -> str:
        value = self.env.resolve_secret(name)
        with self.lock:
            self.scrubber.add([value])
        return value

    def scrubbed(self, text: str) -> str:
        with self.lock:
            return self.scrubber.text(text)


def restore_platform(
    platform: ScratchPlatform,
    inventory: Inventory,
    path: Path,
    manifest: Manifest,
    run_id: str,
    drill_started: float,
    scrubber: Scrubber,
    jobs: int = 2,
    postgres_recovered: Callable[[], DatastoreRecovery] | None = None,
) -> list[DatastoreRecovery]:
    """Every datastore the set holds into `platform`, side by side (they are independent), each
    proven; a datastore whose restore raises is recorded as not proven (its error, scrubbed) and
    the others still go on, so the record times all of them. `drill_started` is a
    time.perf_counter() reading. `postgres_recovered`: PostgreSQL was already recovered into the
    platform as it started (PhysicalRecovery), so the set's dumps are not restored: this waits
    for its proof, beside the others."""
    target = _Target(platform.environment, endpoints(platform.environment, inventory), scrubber)
    restorers = {"postgres": _postgres, "redis": _redis, "objects": _objects, "kafka": _kafka}
    names = [n for n in datastores_in(manifest) if n != "postgres" or postgres_recovered is None]
    if postgres_recovered is not None:
        names.insert(0, "postgres")

    def restore(name: str) -> DatastoreRecovery:
        if name == "postgres" and postgres_recovered is not None:
            return postgres_recovered()
        started = time.perf_counter()
        recovery = DatastoreRecovery(name)
        try:
            restorers[name](target, platform, path, manifest, run_id, jobs, recovery)
        except Exception as exc:  # the drill's record names it; the other datastores go on
            detail = (str(exc).strip().splitlines() or [""])[0]
            recovery.mismatches.append(target.scrubbed(f"{type(exc).__name__}: {detail}"))
        recovery.seconds = time.perf_counter() - started
        recovery.ready_at_s = time.perf_counter() - drill_started
        return recovery

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return list(pool.map(restore, names))


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
