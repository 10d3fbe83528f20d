"""Restoring a verified set's other datastores (Redis, the object store, Kafka's metadata),
each into scratch by default and proven, or swapped in for `target=live` (dry_run=false).

A dry run of a live restore plans and touches nothing; a scratch restore is the proof, so it
runs either way, and leaves nothing behind (the scratch redis-server and Kafka broker are
stopped and deleted; the scratch bucket is deleted unless `keep_scratch` or its proof failed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vextrus_nb.backup import kafka_metadata, objects, redis_restore
from vextrus_nb.backup.access import kafka_bootstrap, object_store_client, redis_client
from vextrus_nb.backup.manifest import Manifest
from vextrus_nb.errors import BackupError
from vextrus_nb.run_context import RunContext

DATASTORES = ("postgres", "redis", "objects", "kafka")
OTHERS = DATASTORES[1:]


def chosen(text: str) -> list[str]:
    """The comma-separated `datastores` parameter, in the order given, without repeats."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    return list(dict.fromkeys(names))


def unknown(names: list[str]) -> list[str]:
    return [n for n in names if n not in DATASTORES]


@dataclass
class DatastoresResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)  # the datastores' names, in order
    unproven: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)

    def table(self) -> Any:
        import pandas as pd

        from vextrus_nb.display import note

        frame = pd.DataFrame(self.rows or self.planned)
        return note("No other datastore was asked for (datastores=postgres).") if frame.empty else frame


def plan(manifest: Manifest, names: list[str], target: str, dry_run: bool) -> list[dict[str, Any]]:
    live_dry = target == "live" and dry_run
    action = "nothing (dry run)" if live_dry else "restore, then prove"
    live_into = {
        "redis": "the live Redis (stopped, RDB swapped in, started)",
        "objects": "the live buckets (old objects kept)",
        "kafka": "the environment's broker",
    }
    scratch_into = {
        "redis": "scratch redis-server",
        "objects": "scratch bucket(s)",
        "kafka": "scratch Kafka broker",
    }
    into = live_into if target == "live" else scratch_into
    holds = {
        "redis": f"{manifest.redis.keys} keys" if manifest.redis else "nothing",
        "objects": f"{len(manifest.objects)} objects",
        "kafka": (
            f"{manifest.kafka.topics} topics, {manifest.kafka.groups} groups" if manifest.kafka else "nothing"
        ),
    }
    return [{"datastore": n, "set holds": holds[n], "into": into[n], "action": action} for n in names]


def restore_datastores(
    run: RunContext,
    path: Path,
    manifest: Manifest,
    names: list[str],
    target: str,
    keep_scratch: bool = False,
) -> DatastoresResult:
    """Each named datastore of the set restored (into scratch, or live for target=live) and
    proven; a scratch bucket is deleted after its proof unless `keep_scratch` (or it failed)."""
    live = target == "live"
    result = DatastoresResult(planned=plan(manifest, names, target, run.dry_run))
    if live and run.dry_run:
        return result
    for name in names:
        row = {"redis": _redis, "objects": _objects, "kafka": _kafka}[name](
            run, path, manifest, live, keep_scratch, result
        )
        result.rows.append(row)
        result.restored.append(name)
        if not row["proven"]:
            result.unproven.append(name)
    return result


def _redis(
    run: RunContext, path: Path, manifest: Manifest, live: bool, keep: bool, result: DatastoresResult
) -> dict[str, Any]:
    if manifest.redis is None:
        raise BackupError(f"set {manifest.set_id} holds no Redis snapshot")
    rdb = path / "redis" / manifest.redis.file
    entry = manifest.redis
    if not live:
        return redis_restore.restore_to_scratch(rdb, entry.keys, entry.sample).row()
    from vextrus_nb import drivers

    client = redis_client(run)
    if client is None:
        raise BackupError(f"environment '{run.env.name}' has no Redis login")
    outcome = redis_restore.restore_live(
        rdb, entry.keys, entry.sample, client, drivers.for_environment(run.env), run.run_id
    )
    if outcome.kept_as:
        kept = Path(outcome.kept_as).name
        result.writes.append(f"live Redis replaced by the set's RDB (old data kept as {kept})")
    return outcome.row()


def _objects(
    run: RunContext, path: Path, manifest: Manifest, live: bool, keep: bool, result: DatastoresResult
) -> dict[str, Any]:
    client = object_store_client(run)
    if client is None:
        raise BackupError(f"environment '{run.env.name}' has no object store with keys (object_store)")
    grouped = objects.buckets_of(manifest.objects)
    restored = [
        objects.restore_bucket(client, path, b, e, run.run_id, live) for b, e in sorted(grouped.items())
    ]
    for outcome in restored:
        if live:
            result.writes.append(f"bucket {outcome.bucket} replaced (old objects kept in {outcome.kept_as})")
        elif keep or not outcome.proven:
            result.writes.append(f"scratch bucket {outcome.into} (kept)")
        else:
            objects.remove_bucket(client, outcome.into)
            result.writes.append(f"scratch bucket {outcome.into} (deleted after the proof)")
    mismatches = [f"{o.bucket}: {m}" for o in restored for m in o.mismatches]
    return {
        "datastore": "objects",
        "restored into": ", ".join(o.into for o in restored) or "nothing (the set holds no objects)",
        "objects": sum(o.objects for o in restored),
        "MiB": round(sum(o.bytes for o in restored) / 2**20, 2),
        "seconds": round(sum(o.seconds for o in restored), 3),
        "proven": not mismatches,
        "mismatches": "; ".join(mismatches[:5]),
        "old data kept as": ", ".join(o.kept_as for o in restored if o.kept_as),
    }


def _kafka(
    run: RunContext, path: Path, manifest: Manifest, live: bool, keep: bool, result: DatastoresResult
) -> dict[str, Any]:
    if manifest.kafka is None:
        raise BackupError(f"set {manifest.set_id} holds no Kafka export")
    exported = kafka_metadata.KafkaExport.read(path / manifest.kafka.file)
    if live:
        broker = kafka_bootstrap(run)
        if broker is None:
            raise BackupError(f"environment '{run.env.name}' has no broker speaking the Kafka protocol")
        result.writes.append(f"topics created and group offsets committed on {broker}")
        return kafka_metadata.restore(exported, broker).row()
    # A scratch broker of the same protocol, from the driver (the sandbox's: a fresh Tansu): the
    # metadata is proven there without touching the environment's broker.
    from vextrus_nb import drivers

    driver = drivers.for_environment(run.env)
    if not isinstance(driver, drivers.ScratchServers):
        raise BackupError(
            f"the {run.env.driver} driver cannot start a scratch Kafka broker to prove the export in: "
            "restore it with target=live (topics created, offsets committed on the environment's broker)"
        )
    with driver.scratch_kafka() as bootstrap:
        outcome = kafka_metadata.restore(exported, bootstrap)
    outcome.into = "scratch Kafka broker (the driver's)"
    return outcome.row()
