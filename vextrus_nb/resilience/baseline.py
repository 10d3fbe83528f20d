"""The load baseline, from the evidence ledger: the newest sealed, passed, live `resilience/load`
run of the environment. Only sealed runs whose notebook verifies count (`ledger.is_sealed`), as
for the disaster-recovery evidence; a dry run measured nothing and is never a baseline.

The record's contract (written by runbooks/resilience/load.py): `summary.endpoints` maps each
endpoint to its figures, `p95_ms` among them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vextrus_nb.evidence import ledger

LOAD_RUNBOOK = "resilience/load"


def endpoint_p95(entry: dict[str, Any]) -> dict[str, float]:
    """p95 in ms per endpoint of a load run's record; {} for a run that measured nothing."""
    endpoints = (entry.get("summary") or {}).get("endpoints")
    if not isinstance(endpoints, dict):
        return {}
    return {
        name: float(figures["p95_ms"])
        for name, figures in endpoints.items()
        if isinstance(figures, dict) and isinstance(figures.get("p95_ms"), int | float)
    }


def sealed_load_runs(
    outputs_dir: Path | None = None, entries: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Sealed load runs that measured something, in ledger order (of `entries` when given)."""
    candidates = entries if entries is not None else ledger.read_entries(outputs_dir)
    return [
        e
        for e in candidates
        if e.get("runbook") == LOAD_RUNBOOK and endpoint_p95(e) and ledger.is_sealed(e, outputs_dir)
    ]


def newest_baseline(env: str, outputs_dir: Path | None = None) -> dict[str, Any] | None:
    """The newest sealed, passed load run of `env` that measured something, or None."""
    passed = [e for e in sealed_load_runs(outputs_dir) if e.get("env") == env and e.get("status") == "passed"]
    return max(passed, key=lambda e: str(e.get("ended_at", "")), default=None)


@dataclass(frozen=True)
class Change:
    endpoint: str
    baseline_p95_ms: float
    p95_ms: float
    allowed_ms: float  # the most p95 may grow before it is a regression

    @property
    def regressed(self) -> bool:
        return self.p95_ms - self.baseline_p95_ms > self.allowed_ms

    @property
    def change(self) -> float:
        return (self.p95_ms - self.baseline_p95_ms) / self.baseline_p95_ms if self.baseline_p95_ms else 0.0


@dataclass(frozen=True)
class Comparison:
    baseline_run_id: str | None
    baseline_ended_at: str | None = None
    changes: list[Change] = field(default_factory=list)

    @property
    def regressions(self) -> list[Change]:
        return [c for c in self.changes if c.regressed]


def compare(
    p95_ms: dict[str, float], baseline: dict[str, Any] | None, margin: float, floor_ms: float
) -> Comparison:
    """Each endpoint both runs measured: a regression when p95 grew by more than `margin` of the
    baseline and by more than `floor_ms` (at loopback latencies, a few ms are noise, not a change)."""
    if baseline is None:
        return Comparison(None)
    before = endpoint_p95(baseline)
    changes = [
        Change(name, before[name], value, max(before[name] * margin, floor_ms))
        for name, value in p95_ms.items()
        if name in before
    ]
    return Comparison(str(baseline.get("run_id")), str(baseline.get("ended_at")), changes)
