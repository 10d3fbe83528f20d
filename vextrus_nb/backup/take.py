"""Taking a backup set: every chosen database, Redis and the configuration, manifest last."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vextrus_nb import paths
from vextrus_nb.backup import pgbackrest, sets
from vextrus_nb.backup.access import (
    choose_services,
    kafka_bootstrap,
    object_store_client,
    physical_stanza,
    postgres_login,
    redis_client,
    s3_store,
    store,
)
from vextrus_nb.backup.manifest import Manifest, PhysicalEntry
from vextrus_nb.display import Progress
from vextrus_nb.run_context import RunContext


@dataclass
class BackupResult:
    manifest: Manifest
    path: Path
    seconds: float
    copied_to: str = ""  # the S3 copy, when the environment has a second store

    def databases(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "service": d.service,
                    "database": d.database,
                    "tables": len(d.tables),
                    "rows": sum(t.rows for t in d.tables.values()),
                    "MiB": round(d.bytes / 2**20, 2),
                    "seconds": d.seconds,
                    "MiB/s": round(d.bytes / 2**20 / d.seconds, 1) if d.seconds else 0.0,
                }
                for d in self.manifest.databases
            ]
        )

    def summary(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "set_id": m.set_id,
            "databases": len(m.databases),
            "files": len(m.files),
            "bytes": m.total_bytes,
            "redis_keys": m.redis.keys if m.redis else None,
            "objects": len(m.objects),
            "kafka_topics": m.kafka.topics if m.kafka else None,
            "kafka_groups": m.kafka.groups if m.kafka else None,
            "backup_seconds": round(self.seconds, 2),
            "postgres_version": m.postgres_version,
            "redis_version": m.redis_version,
            "copied_to": self.copied_to or None,
            **(self.physical_summary()),
        }

    def physical_summary(self) -> dict[str, Any]:
        physical = self.manifest.physical
        if physical is None:
            return {}
        copies = self.manifest.physical_copies
        return {
            "pgbackrest_label": physical.label,
            "pgbackrest_kind": physical.kind,
            "pgbackrest_lsn": f"{physical.start_lsn}..{physical.stop_lsn}",
            "pgbackrest_seconds": physical.seconds,
            "pgbackrest_repository_bytes": physical.repository_bytes,
            **({"pgbackrest_copies": {f"repo{c.repo}": c.label for c in copies}} if copies else {}),
        }


def take_physical(stanza: pgbackrest.Stanza, kind: pgbackrest.BackupKind, repo: int = 1) -> PhysicalEntry:
    """A pgBackRest backup of the whole cluster into one repository; its label, LSN range and
    times for the manifest."""
    started = time.perf_counter()
    taken = pgbackrest.backup(stanza, kind, repo)
    return PhysicalEntry(
        stanza=stanza.name,
        repository=str(stanza.repo_path) if repo == 1 else stanza.repository_location(repo),
        repo=repo,
        label=taken.label,
        kind=taken.kind,
        prior=taken.prior,
        start_lsn=taken.start_lsn,
        stop_lsn=taken.stop_lsn,
        wal_start=taken.wal_start,
        wal_stop=taken.wal_stop,
        started_at=taken.started_at,
        stopped_at=taken.stopped_at,
        database_bytes=taken.database_bytes,
        repository_bytes=taken.repository_bytes,
        seconds=round(time.perf_counter() - started, 3),
    )


def back_up(run: RunContext, services: str = "", kind: str = "") -> BackupResult:
    """Take a new set: a pgBackRest backup of the cluster (when the environment names a stanza;
    `kind` full or incr, the environment's default when empty), then the chosen databases'
    logical dumps, Redis and the configuration. Read-only for the platform."""
    chosen = choose_services(run.inventory, services)
    set_id = sets.new_set_id(run.run_id)
    login = postgres_login(run)
    manifest = Manifest(
        set_id=set_id,
        env=run.env.name,
        run_id=run.run_id,
        source={"postgres": f"{login.host}:{login.port}", "driver": run.env.driver},
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    config_files = [
        paths.parameters_dir() / "environments" / f"{run.env.name}.yaml",
        paths.parameters_dir() / "inventory.yaml",
        *run.env.deployment_files().values(),
    ]
    copies = 1 if run.env.backup and run.env.backup.s3 else 0
    stanza = physical_stanza(run)
    physical = len(stanza.repositories) if stanza else 0
    object_client, broker = object_store_client(run), kafka_bootstrap(run)
    others = (object_client is not None) + (broker is not None)
    bar = Progress(
        len(chosen) + 1 + copies + physical + others,
        f"backing up {len(chosen)} databases and the other datastores",
    )
    started = time.perf_counter()
    try:
        if stanza is not None:
            settings = run.env.backup.pgbackrest  # type: ignore[union-attr]
            chosen_kind = kind or (settings.kind if settings else "full")
            # Into each repository in turn (one pgBackRest backup writes to one): the S3 one
            # survives the loss of the database host and its disks.
            for repo in stanza.repositories:
                taken = take_physical(stanza, chosen_kind, repo)  # type: ignore[arg-type]
                if repo == 1:
                    manifest.physical = taken
                else:
                    manifest.physical_copies.append(taken)
                bar.step(f"pgbackrest {taken.kind} backup {taken.label} in repo{repo}")
        path = store(run.env) / set_id
        sets.take(
            path,
            manifest,
            login,
            chosen,
            redis_client(run),
            config_files,
            run.env.backup.jobs if run.env.backup else 2,
            progress=lambda what, size: bar.step(what),
            object_client=object_client,
            kafka_bootstrap=broker,
        )
        second = s3_store(run)
        copied_to = ""
        if second is not None:
            second.put(path)
            copied_to = f"{second.location}/{set_id}"
            bar.step(f"copied to {copied_to}")
    finally:
        bar.close()
    return BackupResult(manifest, path, time.perf_counter() - started, copied_to)
