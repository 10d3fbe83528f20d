"""Backup sets in a store (a directory per set): take one, verify one against
its manifest, list them, and prune them by the retention policy."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vextrus_nb.backup import kafka_metadata, objects, postgres, redis_restore, redis_snapshot
from vextrus_nb.backup.manifest import (
    MANIFEST_FILE,
    DatabaseEntry,
    KafkaEntry,
    Manifest,
    file_entries,
    sha256_of,
)
from vextrus_nb.config import Component
from vextrus_nb.errors import BackupError

Progress = Callable[[str, int], None]  # (what was just done, bytes it added)
RDB_FILE = "redis/dump.rdb"


def new_set_id(run_id: str, when: datetime | None = None) -> str:
    return f"{(when or datetime.now(UTC)):%Y%m%dT%H%M%SZ}-{run_id}"


@dataclass(frozen=True)
class Problem:
    """One way a set differs from its manifest, naming the file."""

    path: str
    problem: str  # missing | truncated | corrupted | unexpected | unreadable manifest

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


def take(
    directory: Path,
    manifest: Manifest,
    login: postgres.PostgresLogin,
    services: list[Component],
    redis_client: object | None,
    config_files: list[Path],
    jobs: int,
    progress: Progress | None = None,
    object_client: object | None = None,
    kafka_bootstrap: str | None = None,
) -> Manifest:
    """Dump each service's database, snapshot Redis (its key count and a sample of DUMP digests
    read from the copied RDB), copy the platform bucket's objects and export Kafka's metadata
    (when given a client and a broker), copy the configuration, then write the manifest last: a
    set without one is unfinished, and restore refuses it."""
    directory.mkdir(parents=True, exist_ok=False)
    manifest.postgres_version = postgres.server_version(login)
    for service in services:
        target = directory / "postgres" / service.name
        stats, timings = postgres.dump_database(login, service.database or "", target, jobs)
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        manifest.databases.append(
            DatabaseEntry(
                database=service.database or "",
                service=service.name,
                directory=str(target.relative_to(directory)),
                tables=stats,
                bytes=size,
                seconds=round(timings.dump_s, 3),
                statistics_seconds=round(timings.statistics_s, 3),
            )
        )
        if progress:
            progress(f"{service.name}: {len(stats)} tables, {sum(t.rows for t in stats.values())} rows", size)
    if redis_client is not None:
        manifest.redis_version = redis_snapshot.server_version(redis_client)  # type: ignore[arg-type]
        manifest.redis = redis_snapshot.snapshot(redis_client, directory / RDB_FILE)  # type: ignore[arg-type]
        manifest.redis.keys, manifest.redis.sample = redis_restore.describe_rdb(directory / RDB_FILE)
        if progress:
            progress(f"redis: {manifest.redis.keys} keys", manifest.redis.bytes)
    if object_client is not None:
        manifest.objects = objects.copy_buckets(object_client, directory)
        if progress:
            progress(f"objects: {len(manifest.objects)}", sum(o.bytes for o in manifest.objects))
    if kafka_bootstrap is not None:
        exported = kafka_metadata.export(kafka_bootstrap, datetime.now(UTC).isoformat(timespec="seconds"))
        exported.write(directory / kafka_metadata.KAFKA_FILE)
        manifest.kafka = KafkaEntry(
            file=kafka_metadata.KAFKA_FILE, topics=len(exported.topics), groups=len(exported.groups)
        )
        if progress:
            progress(f"kafka: {len(exported.topics)} topics, {len(exported.groups)} groups", 0)
    for path in config_files:
        if path.is_file():
            (directory / "config").mkdir(exist_ok=True)
            shutil.copyfile(path, directory / "config" / path.name)
            manifest.config_files.append(f"config/{path.name}")
    manifest.files = file_entries(directory, directory)
    manifest.ended_at = datetime.now(UTC).isoformat(timespec="seconds")
    manifest.write(directory)
    return manifest


def verify(directory: Path) -> tuple[Manifest | None, list[Problem]]:
    """Every file of the set against the manifest: present, full size, same sha256; nothing extra."""
    try:
        manifest = Manifest.read(directory)
    except BackupError as exc:
        return None, [Problem(MANIFEST_FILE, str(exc))]
    problems = []
    listed = {f.path for f in manifest.files}
    for entry in manifest.files:
        path = directory / entry.path
        if not path.is_file():
            problems.append(Problem(entry.path, "missing"))
        elif path.stat().st_size != entry.bytes:
            problems.append(
                Problem(
                    entry.path,
                    f"truncated or extended: {path.stat().st_size} bytes, manifest says {entry.bytes}",
                )
            )
        elif sha256_of(path) != entry.sha256:
            problems.append(Problem(entry.path, "corrupted: sha256 differs from the manifest"))
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = str(path.relative_to(directory))
        if relative not in listed and relative != MANIFEST_FILE:
            problems.append(Problem(relative, "unexpected: not in the manifest"))
    return manifest, problems


@dataclass(frozen=True)
class SetInfo:
    set_id: str
    path: Path
    finished: bool
    ended_at: datetime | None
    bytes: int


def list_sets(store: Path) -> list[SetInfo]:
    """The sets in a store, oldest first; an unfinished one (no manifest) is listed as such."""
    sets = []
    for path in sorted(p for p in store.iterdir() if p.is_dir()) if store.is_dir() else []:
        try:
            manifest = Manifest.read(path)
            sets.append(
                SetInfo(
                    path.name, path, True, datetime.fromisoformat(manifest.ended_at), manifest.total_bytes
                )
            )
        except (BackupError, ValueError):
            sets.append(SetInfo(path.name, path, False, None, 0))
    return sets


def from_ids(set_ids: list[str]) -> list[SetInfo]:
    """SetInfo for sets known only by id (a remote store): the id starts with the set's time."""
    found = []
    for set_id in set_ids:
        try:
            when = datetime.strptime(set_id.split("-")[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            continue  # not one of ours
        found.append(SetInfo(set_id, Path(set_id), True, when, 0))
    return found


def newest(store: Path) -> SetInfo | None:
    finished = [s for s in list_sets(store) if s.finished]
    return max(finished, key=lambda s: s.ended_at or datetime.min.replace(tzinfo=UTC)) if finished else None


def to_prune(sets: list[SetInfo], keep_last: int, keep_days: float, now: datetime) -> list[SetInfo]:
    """Finished sets beyond the newest `keep_last` that are also older than `keep_days`. Both must
    hold, so neither a burst of backups nor a long pause can leave fewer than the policy promises.
    Unfinished sets (a crashed backup) older than a day go too."""
    finished = sorted((s for s in sets if s.finished), key=lambda s: s.ended_at, reverse=True)  # type: ignore[arg-type, return-value]
    cutoff = now - timedelta(days=keep_days)
    doomed = [s for s in finished[keep_last:] if s.ended_at and s.ended_at < cutoff]
    stale = now - timedelta(days=1)
    for s in sets:
        if not s.finished and datetime.fromtimestamp(s.path.stat().st_mtime, UTC) < stale:
            doomed.append(s)
    return doomed


def prune(sets: list[SetInfo]) -> list[str]:
    for s in sets:
        shutil.rmtree(s.path)
    return [s.set_id for s in sets]
