"""The project's own evidence as Prometheus metrics, so alert rules can watch it.

The ledger already says whether recovery was proven (DR drills), how old the newest backup is
and what the readiness checklist scored; this module turns it into gauges for a scrape. The
contract is the checks' own (checks/recovery.py): a backup is a sealed, passed `dr/backup` run,
its age runs from `ended_at`; the newest sealed `dr/drill` run says whether recovery last
worked; the readiness score is the `summary.score` of the newest sealed `verify/checklist` run.
Only sealed entries count (ledger.sealed_entries): an entry whose notebook is missing or was
edited is not evidence.

Absent evidence is made visible rather than silent: for every environment and kind,
`vextrus_evidence_present{kind=...}` is 1 or 0, and the timestamp gauges are simply not exported
when there is nothing to time, so a rule can alert on "never ran" as well as on "too old".
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest

from vextrus_nb.evidence import ledger

BACKUP_RUNBOOK = "dr/backup"
DRILL_RUNBOOK = "dr/drill"
CHECKLIST_RUNBOOK = "verify/checklist"

EVIDENCE_KINDS = {"backup": BACKUP_RUNBOOK, "dr_drill": DRILL_RUNBOOK, "checklist": CHECKLIST_RUNBOOK}
"""The kind label of vextrus_evidence_present -> the runbook whose sealed runs are that evidence."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""What an HTTP handler serving exposition() should answer with (Prometheus text format 0.0.4)."""


@dataclass(frozen=True)
class EnvironmentEvidence:
    """The newest sealed runs that count as evidence for one environment (None: there is none)."""

    environment: str
    last_drill: dict[str, Any] | None
    last_backup: dict[str, Any] | None
    last_checklist: dict[str, Any] | None

    def present(self, kind: str) -> bool:
        entry = {"backup": self.last_backup, "dr_drill": self.last_drill, "checklist": self.last_checklist}
        return entry[kind] is not None


def _ended_at(entry: dict[str, Any]) -> float:
    """Seconds since the epoch at which the run ended (an entry without ended_at never ended)."""
    return datetime.fromisoformat(str(entry["ended_at"])).timestamp()


def _newest(
    entries: list[dict[str, Any]], env: str, runbook: str, passed_only: bool = False
) -> dict[str, Any] | None:
    candidates = [
        e
        for e in entries
        if e.get("env") == env
        and e.get("runbook") == runbook
        and e.get("ended_at")
        and (not passed_only or e.get("status") == "passed")
    ]
    return max(candidates, key=_ended_at, default=None)


def _scored(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Checklist runs that produced a score: a failed run (score below the threshold) did, a run
    that errored before scoring did not and says nothing about readiness."""
    return [e for e in entries if isinstance((e.get("summary") or {}).get("score"), int | float)]


def gather(outputs_dir: Path, environments: Collection[str] | None = None) -> list[EnvironmentEvidence]:
    """The evidence per environment: the given environments, else every one the sealed ledger names."""
    sealed = ledger.sealed_entries(outputs_dir)
    named = {str(e["env"]) for e in sealed if e.get("env")}
    names = sorted(environments if environments is not None else named)
    return [
        EnvironmentEvidence(
            environment=env,
            last_drill=_newest(sealed, env, DRILL_RUNBOOK),
            last_backup=_newest(sealed, env, BACKUP_RUNBOOK, passed_only=True),
            last_checklist=_newest(_scored(sealed), env, CHECKLIST_RUNBOOK),
        )
        for env in names
    ]


def registry_for(
    outputs_dir: Path, rpo_target_s: float, environments: Collection[str] | None = None
) -> CollectorRegistry:
    """A fresh registry holding the evidence gauges (fresh each scrape: the ledger is the state)."""
    registry = CollectorRegistry()
    labels = ["environment"]

    def gauge(name: str, documentation: str, labelnames: list[str] = labels) -> Gauge:
        return Gauge(name, documentation, labelnames, registry=registry)

    present = gauge(
        "vextrus_evidence_present",
        "1 when the ledger holds sealed evidence of this kind for the environment, else 0",
        ["environment", "kind"],
    )
    drill_time = gauge("vextrus_dr_drill_last_run_timestamp_seconds", "When the newest sealed DR drill ended")
    drill_passed = gauge("vextrus_dr_drill_last_passed", "1 when the newest sealed DR drill passed, else 0")
    backup_time = gauge(
        "vextrus_backup_last_success_timestamp_seconds", "When the newest sealed, passed backup ended"
    )
    rpo_target = gauge(
        "vextrus_rpo_target_seconds", "The recovery point objective: the oldest a backup may be"
    )
    score = gauge("vextrus_readiness_score", "The newest sealed readiness checklist's score (0-100)")
    score_time = gauge(
        "vextrus_readiness_last_run_timestamp_seconds", "When the newest scored readiness checklist ended"
    )

    for evidence in gather(outputs_dir, environments):
        env = evidence.environment
        rpo_target.labels(environment=env).set(rpo_target_s)
        for kind in EVIDENCE_KINDS:
            present.labels(environment=env, kind=kind).set(1 if evidence.present(kind) else 0)
        if evidence.last_drill is not None:
            drill_time.labels(environment=env).set(_ended_at(evidence.last_drill))
            passed = evidence.last_drill.get("status") == "passed"
            drill_passed.labels(environment=env).set(1 if passed else 0)
        if evidence.last_backup is not None:
            backup_time.labels(environment=env).set(_ended_at(evidence.last_backup))
        if evidence.last_checklist is not None:
            score.labels(environment=env).set(float(evidence.last_checklist["summary"]["score"]))
            score_time.labels(environment=env).set(_ended_at(evidence.last_checklist))
    return registry


def exposition(outputs_dir: Path, rpo_target_s: float, environments: Collection[str] | None = None) -> bytes:
    """The evidence of outputs_dir's ledger in the Prometheus text format, for a /metrics handler.

    environments: the ones this exporter answers for (absent evidence is exported as 0 for each,
    even with an empty ledger); None means every environment the sealed ledger names."""
    return generate_latest(registry_for(outputs_dir, rpo_target_s, environments))
