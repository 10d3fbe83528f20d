"""The steps of the dr/backup, dr/restore and dr/drill runbooks.

Backup only adds a set to the store (pruning old sets is its one destructive
step, dry-run by default). Restore verifies the set before touching anything,
restores into a scratch database and proves it; only a live restore
(`target="live"`, `dry_run=false`, `confirm` in production) swaps the proven
copy in, keeping the old database. The drill restores every database of the
newest set into scratch databases, proves and drops them, and records RTO and
RPO.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from vextrus_nb import paths
from vextrus_nb.backup import redis_snapshot, sets
from vextrus_nb.backup.manifest import BackupError, Manifest
from vextrus_nb.backup.postgres import PostgresLogin
from vextrus_nb.backup.restore import RestoreOutcome, restore_database
from vextrus_nb.backup.s3_store import S3Store
from vextrus_nb.config import Component, ConfigError, Environment, Inventory
from vextrus_nb.display import Progress
from vextrus_nb.errors import RunRefused
from vextrus_nb.targets import endpoints

if TYPE_CHECKING:
    from vextrus_nb.runbook import Runbook

TARGETS = ("scratch", "live")
STORES = ("local", "s3")


# -- input ------------------------------------------------------------------------------------
def choose_services(inventory: Inventory, services: str) -> list[Component]:
    """Services named in a comma-separated list (all with a database when empty)."""
    with_database = [c for c in inventory.services() if c.database]
    names = [n.strip() for n in services.split(",") if n.strip()]
    if not names:
        return with_database
    unknown = [n for n in names if n not in {c.name for c in with_database}]
    if unknown:
        raise RunRefused(
            f"unknown service(s) or service(s) without a database: {', '.join(unknown)}; "
            f"known: {', '.join(c.name for c in with_database)}"
        )
    return [c for c in with_database if c.name in names]


def validate(
    env_name: str, services: str, target: str = "scratch", set_id: str = "", from_store: str = "local"
) -> None:
    """Refuse bad parameters before anything is touched (the runner exits 2)."""
    from vextrus_nb.config import load_environment, load_inventory

    inventory = load_inventory()
    choose_services(inventory, services)
    if target not in TARGETS:
        raise RunRefused(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
    try:
        env = load_environment(env_name, inventory)
        env.backup_directory()
    except ConfigError as exc:
        raise RunRefused(str(exc)) from None
    if from_store not in STORES:
        raise RunRefused(f"from_store must be one of {', '.join(STORES)}, not {from_store!r}")
    if from_store == "s3" and (env.backup is None or env.backup.s3 is None):
        raise RunRefused(f"environment '{env.name}' has no S3 store (backup.s3)")
    if set_id and from_store == "local" and not (store(env) / set_id).is_dir():
        known = ", ".join(s.set_id for s in sets.list_sets(store(env))) or "none"
        raise RunRefused(f"no backup set '{set_id}' in {store(env)}; sets: {known}")


# -- connections ------------------------------------------------------------------------------
def postgres_login(rb: Runbook) -> PostgresLogin:
    from vextrus_nb.sandbox.postgres_cluster import find_bindir

    if rb.env.postgres is None:
        raise BackupError(f"environment '{rb.env.name}' has no PostgreSQL login")
    host, port = endpoints(rb.env, rb.inventory)["postgres"]
    return PostgresLogin(
        host, port, rb.env.postgres.user, rb.secret(rb.env.postgres.password_secret), find_bindir()
    )


def redis_client(rb: Runbook) -> redis.Redis | None:
    if rb.env.redis is None:
        return None
    host, port = endpoints(rb.env, rb.inventory)["redis"]
    return redis.Redis(
        host=host,
        port=port,
        username=rb.env.redis.user,
        password=rb.secret(rb.env.redis.password_secret),
        socket_timeout=30,
    )


def store(env: Environment) -> Path:
    return env.backup_directory() / env.name


def s3_store(rb: Runbook) -> S3Store | None:
    """The environment's second store, when it names one."""
    target = rb.env.backup.s3 if rb.env.backup else None
    if target is None:
        return None
    return S3Store.connect(target, rb.secret(target.access_key_secret), rb.secret(target.secret_key_secret))


# -- backup -------------------------------------------------------------------------------------
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


def retention(rb: Runbook) -> Any:
    """Sets the policy no longer needs: pruned when dry_run is false, listed either way."""
    import pandas as pd

    policy = rb.env.backup
    assert policy is not None
    now = datetime.now(UTC)
    doomed = sets.to_prune(sets.list_sets(store(rb.env)), policy.keep_last, policy.keep_days, now)
    second = s3_store(rb)
    doomed_copies = (
        sets.to_prune(sets.from_ids(second.set_ids()), policy.keep_last, policy.keep_days, now)
        if second
        else []
    )
    if not rb.dry_run:
        sets.prune(doomed)
        for copy in doomed_copies:
            second.delete(copy.set_id)  # type: ignore[union-attr]
    if second is not None:
        rb.summary["s3_pruned" if not rb.dry_run else "s3_would_prune"] = [c.set_id for c in doomed_copies]
    action = "pruned" if not rb.dry_run else "would prune (dry run)"
    rb.summary["pruned" if not rb.dry_run else "would_prune"] = [s.set_id for s in doomed]
    kept = sets.list_sets(store(rb.env))
    frame = pd.DataFrame(
        [
            {
                "set": s.set_id,
                "finished": s.finished,
                "ended": s.ended_at,
                "MiB": round(s.bytes / 2**20, 2),
                "retention": action if s in doomed else "kept",
            }
            for s in kept
        ]
    )
    return frame


# -- restore and drill ------------------------------------------------------------------------
def find_set(rb: Runbook, set_id: str = "", from_store: str = "local") -> Path:
    """The named set, or the newest finished one; from S3, fetched into a staging folder first."""
    root = store(rb.env)
    if from_store == "s3":
        second = s3_store(rb)
        if second is None:
            raise BackupError(f"environment '{rb.env.name}' has no S3 store (backup.s3)")
        chosen = set_id or (second.set_ids() or [""])[-1]
        if not chosen:
            raise BackupError(f"no finished backup set in {second.location}")
        staging = root.parent / f".staging-{rb.run_id}"
        shutil.rmtree(staging, ignore_errors=True)
        return second.fetch(chosen, staging)
    if set_id:
        path = root / set_id
        if not path.is_dir():
            known = ", ".join(s.set_id for s in sets.list_sets(root)) or "none"
            raise BackupError(f"no backup set '{set_id}' in {root}; sets: {known}")
        return path
    found = sets.newest(root)
    if found is None:
        raise BackupError(f"no finished backup set in {root}; run dr/backup first")
    return found.path


def verify_set(rb: Runbook, path: Path) -> Manifest:
    """Every file against the manifest before anything is restored; a problem stops the run, naming it."""
    manifest, problems = sets.verify(path)
    if problems or manifest is None:
        named = "; ".join(str(p) for p in problems)
        raise BackupError(f"backup set {path.name} failed verification, nothing was restored: {named}")
    rb.summary["set_id"] = manifest.set_id
    return manifest


@dataclass
class RestoreResult:
    outcomes: list[RestoreOutcome] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)

    def table(self) -> Any:
        """The restores (or, on a dry run, the plan); a sentence when there is neither."""
        from vextrus_nb.display import note

        frame = self.frame()
        return note("No database was restored.") if frame.empty else frame

    def frame(self) -> Any:
        import pandas as pd

        if not self.outcomes:
            return pd.DataFrame(self.planned)
        return pd.DataFrame(
            [
                {
                    "service": o.service,
                    "restored into": o.database,
                    "live": o.live,
                    "tables": o.tables,
                    "rows": o.rows,
                    "seconds": o.seconds,
                    "MiB/s": o.throughput_mib_s,
                    "proven": o.proven,
                    "mismatches": "; ".join(o.mismatches),
                    "old database kept as": o.kept_as,
                }
                for o in self.outcomes
            ]
        )

    @property
    def unproven(self) -> list[str]:
        return [o.service for o in self.outcomes if not o.proven]


def plan(manifest: Manifest, services: list[Component], target: str, dry_run: bool) -> list[dict[str, Any]]:
    chosen = {s.name for s in services}
    return [
        {
            "service": d.service,
            "from": f"{manifest.set_id}/{d.directory}",
            "into": d.database if target == "live" else f"scratch copy of {d.database}",
            "tables": len(d.tables),
            "action": "nothing (dry run)" if target == "live" and dry_run else "restore, then prove",
        }
        for d in manifest.databases
        if d.service in chosen
    ]


def restore(
    rb: Runbook,
    path: Path,
    manifest: Manifest,
    services: str = "",
    target: str = "scratch",
    keep_scratch: bool = True,
) -> RestoreResult:
    chosen = choose_services(rb.inventory, services)
    result = RestoreResult(planned=plan(manifest, chosen, target, rb.dry_run))
    if target == "live" and rb.dry_run:
        return result  # a live restore changes nothing without dry_run=false
    login = postgres_login(rb)
    entries = [manifest.database(s.name) for s in chosen if s.name in {d.service for d in manifest.databases}]
    bar = Progress(len(entries), f"restoring {len(entries)} databases")
    try:
        for entry in entries:
            outcome = restore_database(
                login,
                path,
                entry,
                target == "live",
                rb.run_id,
                rb.env.backup.jobs if rb.env.backup else 2,
                keep_scratch,
            )
            result.outcomes.append(outcome)
            bar.step(f"{entry.service}: {'proven' if outcome.proven else 'MISMATCH'}")
    finally:
        bar.close()
    return result


# -- the scheduled drill ---------------------------------------------------------------------------
METRICS_DIR_VAR = "VEXTRUS_METRICS_DIR"  # node_exporter's textfile collector directory, where one runs


@dataclass
class DrillResult:
    set_id: str = ""
    fresh_backup: bool = False
    backup_ended_at: datetime | None = None
    restore: RestoreResult = field(default_factory=RestoreResult)
    rto_s: float = 0.0
    rpo_s: float = 0.0
    failure: str = ""
    redis_check: dict[str, Any] = field(default_factory=dict)  # redis-check-rdb on the set's RDB

    @property
    def passed_verification(self) -> bool:
        redis_ok = self.redis_check.get("ok", True)
        return not self.failure and bool(self.restore.outcomes) and not self.restore.unproven and redis_ok

    def redis_note(self) -> Any:
        from vextrus_nb.display import note

        check = self.redis_check
        if self.failure:
            return note(f"Nothing was restored or checked: {self.failure}")
        if not check:
            return note("No Redis snapshot in this set.")
        return note(
            f"Redis snapshot: {check['detail']}; {check['keys']} keys in the RDB "
            f"({check['keys_at_backup']} when BGSAVE was asked for)."
        )

    def figure(self) -> Any:
        import plotly.express as px

        frame = self.restore.frame()
        if frame.empty or "seconds" not in frame:
            frame = frame.assign(seconds=[], service=[])
        fig = px.bar(
            frame,
            x="service",
            y="seconds",
            color="proven" if "proven" in frame else None,
            hover_data=[c for c in ("rows", "MiB/s", "restored into") if c in frame],
            color_discrete_map={True: "#1a7f37", False: "#cf222e"},
            title=f"Restore and proof per database (RTO {self.rto_s:.1f} s, RPO {self.rpo_s / 60:.1f} min)",
        )
        fig.update_layout(xaxis_tickangle=-45, yaxis_title="restore + proof (s)", height=450)
        return fig

    def summary(self) -> dict[str, Any]:
        outcomes = self.restore.outcomes
        seconds = sum(o.seconds for o in outcomes)
        size = sum(o.bytes for o in outcomes)
        return {
            "set_id": self.set_id,
            "fresh_backup": self.fresh_backup,
            "databases_verified": sum(o.proven for o in outcomes),
            "databases": len(outcomes),
            "rto_s": round(self.rto_s, 2),
            "rpo_s": round(self.rpo_s, 1),
            "bytes": size,
            "throughput_mib_s": round(size / 2**20 / seconds, 1) if seconds else 0.0,
            "verified": self.passed_verification,
            "redis_rdb_ok": self.redis_check.get("ok"),
            "redis_keys": self.redis_check.get("keys"),
        }


def drill(
    rb: Runbook, services: str = "", fresh_backup: bool = False, from_store: str = "local"
) -> DrillResult:
    """Newest set (or a fresh one), verified, every database restored into scratch and proven, then
    dropped. RTO: drill start to the last proven restore. RPO: age of the set at that moment."""
    started = time.perf_counter()
    result = DrillResult()
    try:
        if fresh_backup or (from_store == "local" and sets.newest(store(rb.env)) is None):
            taken = back_up(rb, services)
            path, result.fresh_backup = taken.path, True
            if from_store == "s3":
                path = find_set(rb, taken.manifest.set_id, "s3")  # drill what the second store holds
        else:
            path = find_set(rb, "", from_store)
        result.set_id = path.name  # named in the record even when the set fails verification
        manifest = verify_set(rb, path)
        result.backup_ended_at = datetime.fromisoformat(manifest.ended_at)
        result.restore = restore(rb, path, manifest, services, target="scratch", keep_scratch=False)
        if manifest.redis is not None:
            ok, keys, detail = redis_snapshot.check_rdb(path / sets.RDB_FILE)
            result.redis_check = {
                "ok": ok,
                "keys": keys,
                "keys_at_backup": manifest.redis.keys,
                "detail": detail,
            }
    except BackupError as exc:
        result.failure = rb.scrubber.text(str(exc))
    finally:
        discard_staging(rb)
    result.rto_s = time.perf_counter() - started
    if result.backup_ended_at:
        result.rpo_s = (datetime.now(UTC) - result.backup_ended_at).total_seconds()
    return result


def judge_drill(rb: Runbook, result: DrillResult) -> Path:
    """Record the figures, write the alerting metric (also when the drill failed), fail the run if it did."""
    rb.summary.update(result.summary())
    path = write_drill_metrics(rb, result)
    rb.add_artifact(path)
    if result.failure:
        rb.fail(result.failure)
    elif result.restore.unproven:
        rb.fail(f"restore not proven for: {', '.join(result.restore.unproven)}")
    if result.redis_check and not result.redis_check["ok"]:
        rb.fail(f"the Redis snapshot does not check out: {result.redis_check['detail']}")
    target_s = rb.env.rpo_hours * 3600
    if result.backup_ended_at and result.rpo_s > target_s:
        rb.fail(f"RPO {result.rpo_s / 3600:.1f} h exceeds the target of {rb.env.rpo_hours:g} h")
    return path


def write_drill_metrics(rb: Runbook, result: DrillResult) -> Path:
    """A Prometheus textfile (node_exporter's textfile collector) so a failed drill alerts."""
    import os

    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    labels = {"env": rb.env.name}
    for name, doc, value in (
        (
            "vextrus_dr_drill_success",
            "1 if the last DR drill proved every restore",
            result.passed_verification,
        ),
        ("vextrus_dr_drill_rto_seconds", "drill start to the last proven restore", result.rto_s),
        ("vextrus_dr_drill_rpo_seconds", "age of the backup set the drill restored", result.rpo_s),
        ("vextrus_dr_drill_timestamp_seconds", "when the last drill ended", time.time()),
    ):
        Gauge(name, doc, list(labels), registry=registry).labels(**labels).set(float(value))
    directory = Path(os.environ.get(METRICS_DIR_VAR) or paths.outputs_dir() / "metrics")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"vextrus_dr_drill_{rb.env.name}.prom"
    write_to_textfile(str(path), registry)
    return path


def discard_staging(rb: Runbook) -> None:
    """A set fetched from S3 for this run is a working copy: it goes when the run is done with it."""
    shutil.rmtree(store(rb.env).parent / f".staging-{rb.run_id}", ignore_errors=True)
