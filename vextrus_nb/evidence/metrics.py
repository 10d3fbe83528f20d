"""The project's own evidence as Prometheus metrics, so alert rules can watch it.

The ledger already says whether recovery was proven (DR drills), how old the newest backup is
and what the readiness checklist scored; this module turns it into gauges for a scrape. Which
runs are which evidence, and which gauges they give, each runbook declares in its own steps
module (`EVIDENCE = Evidence(kinds=(Kind(...),))`, evidence/declared.py): a kind's newest
sealed run of the environment (by `ended_at`; only passed ones when `passed_only`, only ones
holding the kind's summary `figure` as a number when it names one) sets its gauges: when it
ended, whether it passed, or the figure. The backup and drill kinds are the checks' own contract
(checks/recovery.py). Only sealed entries count (ledger.sealed_entries): an entry whose notebook
is missing or was edited is not evidence.

Absent evidence is made visible rather than silent: for every environment and kind,
`vextrus_evidence_present{kind=...}` is 1 or 0, and a kind's gauges are simply not exported
when there is nothing to time, so a rule can alert on "never ran" as well as on "too old".
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest, write_to_textfile

from vextrus_nb import paths
from vextrus_nb.evidence import declared, ledger
from vextrus_nb.evidence.declared import Declarations, Kind
from vextrus_nb.evidence.declared import Gauge as DeclaredGauge


def evidence_kinds(evidence: Declarations | None = None) -> dict[str, str]:
    """The kind label of vextrus_evidence_present -> the runbook whose sealed runs are that evidence."""
    return {kind.kind: runbook for runbook, kind in _kinds(evidence)}


def _kinds(evidence: Declarations | None) -> list[tuple[str, Kind]]:
    declarations = declared.discover() if evidence is None else evidence
    return [(runbook, kind) for runbook, d in declarations.items() for kind in d.kinds]


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""What an HTTP handler serving exposition() should answer with (Prometheus text format 0.0.4)."""


@dataclass(frozen=True)
class EnvironmentEvidence:
    """The newest sealed runs that count as evidence for one environment, by kind (None: none)."""

    environment: str
    newest: dict[str, dict[str, Any] | None]

    def present(self, kind: str) -> bool:
        return self.newest.get(kind) is not None


def _ended_at(entry: dict[str, Any]) -> float:
    """Seconds since the epoch at which the run ended (an entry without ended_at never ended)."""
    return datetime.fromisoformat(str(entry["ended_at"])).timestamp()


def _figure(entry: dict[str, Any], key: str) -> Any:
    summary = entry.get("summary")
    return summary.get(key) if isinstance(summary, dict) else None


def _counts(entry: dict[str, Any], env: str, runbook: str, kind: Kind) -> bool:
    """Whether a sealed entry is evidence of this kind for env: a finished run of the runbook,
    passed if the kind says so, holding the kind's figure as a number if it names one."""
    figure = _figure(entry, kind.figure) if kind.figure else 0
    return bool(
        entry.get("env") == env
        and entry.get("runbook") == runbook
        and entry.get("ended_at")
        and (not kind.passed_only or entry.get("status") == "passed")
        and isinstance(figure, int | float)
        and not isinstance(figure, bool)
    )


def gather(
    outputs_dir: Path, environments: Collection[str] | None = None, evidence: Declarations | None = None
) -> list[EnvironmentEvidence]:
    """The evidence per environment: the given environments, else every one the sealed ledger names."""
    kinds = _kinds(evidence)
    sealed = ledger.sealed_entries(outputs_dir)
    named = {str(e["env"]) for e in sealed if e.get("env")}
    names = sorted(environments if environments is not None else named)
    return [
        EnvironmentEvidence(
            environment=env,
            newest={
                kind.kind: max(
                    (e for e in sealed if _counts(e, env, runbook, kind)), key=_ended_at, default=None
                )
                for runbook, kind in kinds
            },
        )
        for env in names
    ]


def registry_for(
    outputs_dir: Path,
    rpo_target_s: float,
    environments: Collection[str] | None = None,
    evidence: Declarations | None = None,
) -> CollectorRegistry:
    """A fresh registry holding the evidence gauges (fresh each scrape: the ledger is the state)."""
    declarations = declared.discover() if evidence is None else evidence
    kinds = [kind for _, kind in _kinds(declarations)]
    registry = CollectorRegistry()
    labels = ["environment"]

    def gauge(name: str, documentation: str, labelnames: list[str] = labels) -> Gauge:
        return Gauge(name, documentation, labelnames, registry=registry)

    present = gauge(
        "vextrus_evidence_present",
        "1 when the ledger holds sealed evidence of this kind for the environment, else 0",
        ["environment", "kind"],
    )
    rpo_target = gauge(
        "vextrus_rpo_target_seconds", "The recovery point objective: the oldest a backup may be"
    )
    gauges = {(kind.kind, g.name): gauge(g.name, g.documentation) for kind in kinds for g in kind.gauges}

    for evidence_of in gather(outputs_dir, environments, declarations):
        env = evidence_of.environment
        rpo_target.labels(environment=env).set(rpo_target_s)
        for kind in kinds:
            newest = evidence_of.newest.get(kind.kind)
            present.labels(environment=env, kind=kind.kind).set(0 if newest is None else 1)
            if newest is None:
                continue
            for declared_gauge in kind.gauges:
                value = _value(newest, kind, declared_gauge)
                gauges[(kind.kind, declared_gauge.name)].labels(environment=env).set(value)
    return registry


def _value(entry: dict[str, Any], kind: Kind, gauge: DeclaredGauge) -> float:
    if gauge.value == "ended_at":
        return _ended_at(entry)
    if gauge.value == "passed":
        return 1.0 if entry.get("status") == "passed" else 0.0
    return float(_figure(entry, str(kind.figure)))


def exposition(
    outputs_dir: Path,
    rpo_target_s: float,
    environments: Collection[str] | None = None,
    evidence: Declarations | None = None,
) -> bytes:
    """The evidence of outputs_dir's ledger in the Prometheus text format, for a /metrics handler.

    environments: the ones this exporter answers for (absent evidence is exported as 0 for each,
    even with an empty ledger); None means every environment the sealed ledger names.
    evidence: the runbooks' declarations; None reads every runbook's own (`declared.discover()`)."""
    return generate_latest(registry_for(outputs_dir, rpo_target_s, environments, evidence))


def write_textfile(registry: CollectorRegistry, name: str) -> Path:
    """A run's gauges as `<name>.prom` in paths.metrics_dir(), where node_exporter's textfile
    collector (or the report) reads them; the file is replaced whole, never half-written."""
    directory = paths.metrics_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.prom"
    write_to_textfile(str(path), registry)
    return path
