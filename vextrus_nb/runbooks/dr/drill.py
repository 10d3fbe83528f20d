"""The steps of notebooks/dr/drill.ipynb: the newest set (or a fresh one), verified, every
database restored into scratch, proven and dropped; RTO and RPO recorded and written as a metric."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vextrus_nb import paths
from vextrus_nb.backup import redis_snapshot, sets
from vextrus_nb.backup.access import check_set_choice, discard_staging, find_set, store, verify_set
from vextrus_nb.backup.manifest import BackupError
from vextrus_nb.backup.restore import RestoreResult, restore_set
from vextrus_nb.backup.take import back_up
from vextrus_nb.config import Environment

if TYPE_CHECKING:
    from vextrus_nb.run.session import Runbook


def validate(env: Environment, parameters: dict[str, Any]) -> None:
    """Refuse bad parameters before anything is touched (the runner exits 2, before a kernel)."""
    check_set_choice(env, parameters)


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


def drill(rb: Runbook) -> DrillResult:
    """Newest set (or a fresh one), verified, every database restored into scratch and proven, then
    dropped. RTO: drill start to the last proven restore. RPO: age of the set at that moment."""
    services, fresh_backup = rb.parameters.get("services", ""), rb.parameters.get("fresh_backup", False)
    from_store = rb.parameters.get("from_store", "local")
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
        result.restore = restore_set(rb, path, manifest, services, target="scratch", keep_scratch=False)
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
