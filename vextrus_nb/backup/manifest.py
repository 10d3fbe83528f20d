"""The manifest of a backup set: what it holds and how to prove it came back.

Written last, so a set without a manifest is an unfinished set. Every file is
listed with its size and sha256 (a restore checks them before touching
anything); every table with its row count and a content checksum taken in the
same snapshot as the dump (a restore proves the data came back by recomputing
them).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vextrus_nb.errors import BackupError

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1
_CHUNK = 1 << 20


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileEntry(_Model):
    path: str  # relative to the set's directory
    bytes: Annotated[int, Field(ge=0)]
    sha256: str


class TableEntry(_Model):
    rows: int
    checksum: str  # sum of hashtextextended(row::text) over the table's rows: order-independent


class DatabaseEntry(_Model):
    database: str
    service: str
    directory: str  # pg_dump directory format, relative to the set
    tables: dict[str, TableEntry]
    bytes: int = 0
    seconds: float = 0.0  # pg_dump
    statistics_seconds: float = 0.0  # the table counts and checksums, after the dump


class RedisEntry(_Model):
    file: str
    bytes: int
    lastsave: int  # Redis's LASTSAVE (unix seconds) of the snapshot copied
    keys: int  # in the copied RDB itself, when `sample` was read from it
    sample: dict[str, str] = {}  # key -> sha256 of its DUMP, read from the copied RDB


class ObjectEntry(_Model):
    """One object of a platform bucket, copied into the set at `file`."""

    bucket: str
    key: str
    file: str  # relative to the set
    bytes: int
    sha256: str


class TopicEntry(_Model):
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = {}  # the topic's own (non-default) configuration


class GroupOffsets(_Model):
    group: str
    offsets: dict[str, dict[int, int]]  # topic -> partition -> committed offset


class KafkaEntry(_Model):
    """The broker's metadata (not its messages): what re-creates the topics and the groups' places."""

    file: str  # the export, relative to the set
    topics: int
    groups: int


class PhysicalEntry(_Model):
    """The pgBackRest backup taken with the set: restores the whole cluster, to any moment after it."""

    stanza: str
    repository: str
    repo: int = 1  # pgBackRest's number for the repository: 1 the local one, 2 the S3 one
    label: str
    kind: str  # full | incr | diff (pgBackRest takes a full one where a repository has none yet)
    prior: str = ""  # the backup an incremental one builds on
    start_lsn: str
    stop_lsn: str
    wal_start: str
    wal_stop: str
    started_at: str
    stopped_at: str
    database_bytes: int
    repository_bytes: int
    seconds: float


class Manifest(_Model):
    format_version: int = FORMAT_VERSION
    set_id: str
    env: str
    run_id: str
    source: dict[str, str]
    started_at: str
    ended_at: str = ""
    postgres_version: str = ""
    redis_version: str = ""
    databases: list[DatabaseEntry] = []
    redis: RedisEntry | None = None
    physical: PhysicalEntry | None = None  # in repo1
    physical_copies: list[PhysicalEntry] = []  # the same run's backup in each further repository
    objects: list[ObjectEntry] = []
    kafka: KafkaEntry | None = None
    config_files: list[str] = []
    files: list[FileEntry] = []

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def database(self, name: str) -> DatabaseEntry:
        for entry in self.databases:
            if name in (entry.database, entry.service):
                return entry
        raise BackupError(
            f"set {self.set_id} holds no database '{name}'; it holds: "
            + ", ".join(e.service for e in self.databases)
        )

    def write(self, directory: Path) -> Path:
        """Atomically: a crash leaves no half-written manifest (and so no set that looks finished)."""
        target = directory / MANIFEST_FILE
        tmp = directory / (MANIFEST_FILE + ".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        os.replace(tmp, target)
        return target

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_FILE
        if not path.is_file():
            raise BackupError(f"{directory} has no {MANIFEST_FILE}: not a finished backup set")
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except (ValueError, ValidationError) as exc:
            raise BackupError(f"{path} is not a valid manifest: {str(exc).splitlines()[0]}") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_entries(directory: Path, under: Path) -> list[FileEntry]:
    """Every file below `under`, relative to the set's `directory`, with size and sha256."""
    entries = []
    for path in sorted(p for p in under.rglob("*") if p.is_file()):
        entries.append(
            FileEntry(
                path=str(path.relative_to(directory)), bytes=path.stat().st_size, sha256=sha256_of(path)
            )
        )
    return entries
