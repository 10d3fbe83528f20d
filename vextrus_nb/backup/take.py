"""Taking a backup set: every chosen database, Redis and the configuration, manifest last."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vextrus_nb import paths
from vextrus_nb.backup import sets
from vextrus_nb.backup.access import choose_services, postgres_login, redis_client, s3_store, store
from vextrus_nb.backup.manifest import Manifest
from vextrus_nb.display import Progress

if TYPE_CHECKING:
    from vextrus_nb.run.session import Runbook


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
            "backup_seconds": round(self.seconds, 2),
            "postgres_version": m.postgres_version,
            "redis_version": m.redis_version,
            "copied_to": self.copied_to or None,
        }


def back_up(rb: Runbook, services: str = "") -> BackupResult:
    """Take a new set of the chosen databases, Redis and the configuration. Read-only for the platform."""
    chosen = choose_services(rb.inventory, services)
    set_id = sets.new_set_id(rb.run_id)
    login = postgres_login(rb)
    manifest = Manifest(
        set_id=set_id,
        env=rb.env.name,
        run_id=rb.run_id,
        source={"postgres": f"{login.host}:{login.port}", "driver": rb.env.driver},
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    config_files = [
        paths.parameters_dir() / "environments" / f"{rb.env.name}.yaml",
        paths.parameters_dir() / "inventory.yaml",
        *rb.env.deployment_files().values(),
    ]
    copies = 1 if rb.env.backup and rb.env.backup.s3 else 0
    bar = Progress(len(chosen) + 1 + copies, f"backing up {len(chosen)} databases and Redis")
    started = time.perf_counter()
    try:
        path = store(rb.env) / set_id
        sets.take(
            path,
            manifest,
            login,
            chosen,
            redis_client(rb),
            config_files,
            rb.env.backup.jobs if rb.env.backup else 2,
            progress=lambda what, size: bar.step(what),
        )
        second = s3_store(rb)
        copied_to = ""
        if second is not None:
            second.put(path)
            copied_to = f"{second.location}/{set_id}"
            bar.step(f"copied to {copied_to}")
    finally:
        bar.close()
    return BackupResult(manifest, path, time.perf_counter() - started, copied_to)
