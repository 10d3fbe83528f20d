"""The steps of notebooks/dr/drill.ipynb: the newest set (or a fresh one, only when asked),
verified, every database restored into scratch, proven and dropped; RTO and RPO recorded and
written as a metric, whatever failed (a dead datastore included: the metric then says 0).

RPO is measured: with WAL archiving (backup.pgbackrest) it is the age of the last archived
segment, what a point-in-time restore would lose now; without, the age of the set."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vextrus_nb.backup import pgbackrest, redis_snapshot, sets
from vextrus_nb.backup.access import (
    check_set_choice,
    discard_staging,
    find_set,
    physical_stanza,
    postgres_login,
    store,
    verify_set,
)
from vextrus_nb.backup.restore import RestoreResult, restore_set
from vextrus_nb.backup.take import back_up
from vextrus_nb.config import Environment
from vextrus_nb.errors import BackupError

if TYPE_CHECKING:
    from vextrus_nb.run.session import Runbook


def validate(env: Environment, parameters: dict[str, Any]) -> None:
    """Refuse bad parameters before anything is touched (the runner exits 2, before a kernel)."""
    check_set_choice(env, parameters)


@dataclass
class DrillResult:
    set_id: str = ""
    fresh_backup: bool = False
    backup_ended_at: datetime | None = None
    restore: RestoreResult = field(default_factory=RestoreResult)
    rto_s: float = 0.0
    rpo_s: float = 0.0
    rpo_source: str = ""  # "wal archive" | "backup set age" | "" (not measured)
    archive: dict[str, Any] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)  # what the drill wrote: never a dry run
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
            "rpo_source": self.rpo_source or None,
            **{k: v for k, v in self.archive.items() if k != "rpo_s"},
            "writes": self.writes,
            "failure": self.failure or None,
            "bytes": size,
            "throughput_mib_s": round(size / 2**20 / seconds, 1) if seconds else 0.0,
            "verified": self.passed_verification,
            "redis_rdb_ok": self.redis_check.get("ok"),
            "redis_keys": self.redis_check.get("keys"),
        }


def drill(rb: Runbook) -> DrillResult:
    """The newest set (a fresh one only with fresh_backup=True), verified, every database restored
    into scratch and proven, then dropped. RTO: drill start to the last proven restore. RPO: the
    last archived WAL segment's age (or, without archiving, the set's). Never raises for a
    failure of the platform: the failure is recorded, so the metric still says the drill failed."""
    services, fresh_backup = rb.parameters.get("services", ""), rb.parameters.get("fresh_backup", False)
    from_store = rb.parameters.get("from_store", "local")
    started = time.perf_counter()
    result = DrillResult()
    doing = "finding the backup set"
    try:
        if fresh_backup:
            doing = "taking a fresh backup set (fresh_backup=True)"
            taken = back_up(rb, services)
            path, result.fresh_backup = taken.path, True
            result.writes.append(f"backup set {taken.manifest.set_id} (fresh_backup=True)")
            if from_store == "s3":
                path = find_set(rb, taken.manifest.set_id, "s3")  # drill what the second store holds
        elif from_store == "local" and sets.newest(store(rb.env)) is None:
            raise BackupError(
                f"no backup set to drill in {store(rb.env)}: run dr/backup first, or drill with "
                "fresh_backup=True to take one"
            )
        else:
            path = find_set(rb, "", from_store)
        result.set_id = path.name  # named in the record even when the set fails verification
        doing = f"verifying set {path.name}"
        manifest = verify_set(path)
        rb.summary["set_id"] = manifest.set_id
        result.backup_ended_at = datetime.fromisoformat(manifest.ended_at)
        doing = f"restoring set {path.name} into scratch databases"
        result.writes.append("scratch databases (created, proven, dropped)")
        result.restore = restore_set(rb, path, manifest, services, target="scratch", keep_scratch=False)
        if manifest.redis is not None:
            ok, keys, detail = redis_snapshot.check_rdb(path / sets.RDB_FILE)
            result.redis_check = {
                "ok": ok,
                "keys": keys,
                "keys_at_backup": manifest.redis.keys,
                "detail": detail,
            }
    except Exception as exc:  # a datastore down or refusing us: the drill failed, and says so
        result.failure = _failure(rb, doing, exc)
    finally:
        discard_staging(rb)
    result.rto_s = time.perf_counter() - started
    try:  # whatever the set's fate: what a point-in-time restore would lose now
        _measure_rpo(rb, result)
    except Exception as exc:
        result.failure = result.failure or _failure(rb, "measuring the recovery point", exc)
    if not result.rpo_source and result.backup_ended_at:
        result.rpo_s = (datetime.now(UTC) - result.backup_ended_at).total_seconds()
        result.rpo_source = "backup set age"
    return result


def _failure(rb: Runbook, doing: str, exc: Exception) -> str:
    """What failed, scrubbed: a BackupError already names it; anything else with what we were doing."""
    if isinstance(exc, BackupError):
        return rb.scrubber.text(str(exc))
    detail = (str(exc).strip().splitlines() or [""])[0]
    return rb.scrubber.text(f"{doing} failed: {type(exc).__name__}: {detail}")


def _measure_rpo(rb: Runbook, result: DrillResult) -> None:
    """With WAL archiving, RPO is what a point-in-time restore would lose now: the age of the
    last segment the repository holds (pg_stat_archiver, checked against pgbackrest info)."""
    stanza = physical_stanza(rb)
    if stanza is None:
        return
    with postgres_login(rb).connect("postgres") as conn:
        status = pgbackrest.archive_status(conn, stanza)
    result.archive = status.summary()
    result.rpo_s, result.rpo_source = status.rpo_s, "wal archive"
    if status.failing:
        raise BackupError(
            f"WAL archiving is failing (last archived {status.last_archived_wal or 'none'}, "
            f"{status.failed_count} failures): the recovery point is falling behind"
        )


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
    if result.rpo_source and result.rpo_s > target_s:
        rb.fail(f"RPO {result.rpo_s / 3600:.1f} h exceeds the target of {rb.env.rpo_hours:g} h")
    return path


def write_drill_metrics(rb: Runbook, result: DrillResult) -> Path:
    """A Prometheus textfile (node_exporter's textfile collector) so a failed drill alerts."""

    from prometheus_client import CollectorRegistry, Gauge

    from vextrus_nb.evidence import metrics

    registry = CollectorRegistry()
    labels = {"env": rb.env.name}
    for name, doc, value in (
        (
            "vextrus_dr_drill_success",
            "1 if the last DR drill proved every restore",
            result.passed_verification,
        ),
        ("vextrus_dr_drill_rto_seconds", "drill start to the last proven restore", result.rto_s),
        (
            "vextrus_dr_drill_rpo_seconds",
            "what a restore would lose now: the last archived WAL's age (or the set's)",
            result.rpo_s,
        ),
        ("vextrus_dr_drill_timestamp_seconds", "when the last drill ended", time.time()),
    ):
        Gauge(name, doc, list(labels), registry=registry).labels(**labels).set(float(value))
    return metrics.write_textfile(registry, f"vextrus_dr_drill_{rb.env.name}")


# -- Evidence: what the report and the metrics read of this runbook's runs ---------------------
# Plain data (evidence/declared.py): read from this source without importing the module, so it
# names only the declaration types (as declared.X) and literals.
from vextrus_nb.evidence import declared  # noqa: E402

EVIDENCE = declared.Evidence(
    figures=(
        declared.Figure("rto_s", "RTO", "s"),
        declared.Figure("rpo_s", "RPO", "s"),
        declared.Figure("databases_verified", "databases proven"),
        declared.Figure("databases"),
        declared.Figure("verified"),
    ),
    trends=(
        declared.Trend(
            "DR drill: RTO and RPO (seconds)",
            plots=(declared.Plot("rto_s"), declared.Plot("rpo_s")),
            per_environment=False,
            sealed_only=False,
            line_title="figure",
            unit="s",
        ),
    ),
    kinds=(
        declared.Kind(
            "dr_drill",
            gauges=(
                declared.Gauge(
                    "vextrus_dr_drill_last_run_timestamp_seconds",
                    "When the newest sealed DR drill ended",
                    "ended_at",
                ),
                declared.Gauge(
                    "vextrus_dr_drill_last_passed",
                    "1 when the newest sealed DR drill passed, else 0",
                    "passed",
                ),
            ),
        ),
    ),
)
