"""The data of a triage: what collectors observed (signals), what they could
not observe (collector reports), and what it means (findings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

CollectorStatus = Literal["ok", "error", "skipped"]


@dataclass(frozen=True)
class Signal:
    """One symptom, observed on one component: the input of the rule table.

    `implicates`: components the symptom points at (the dependencies a red
    readiness names). `affected`: components that suffer from it (the services
    whose queries a lock blocks)."""

    symptom: str
    component: str
    evidence: str
    source: str
    subject: str = ""
    implicates: tuple[str, ...] = ()
    affected: tuple[str, ...] = ()
    magnitude: float = 0.0


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime
    source: str  # driver | log | ledger | postgres
    component: str
    what: str


@dataclass
class CollectorReport:
    """What one collector gathered, or why it could not: evidence of what was looked at."""

    name: str
    status: CollectorStatus = "ok"
    seconds: float = 0.0
    detail: str = ""
    signals: list[Signal] = field(default_factory=list)
    events: list[TimelineEvent] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Finding:
    """A diagnosis: a symptom read through the rule table and ranked on the dependency graph."""

    rank: int
    component: str
    symptom: str
    severity: str
    title: str
    likely_cause: str
    first_action: str
    evidence: list[str]
    root_cause: bool
    explained_by: list[str] = field(default_factory=list)
    affected: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    magnitude: float = 0.0

    def as_row(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "component": self.component,
            "severity": self.severity,
            "finding": self.title,
            "role": "root cause" if self.root_cause else f"caused by {', '.join(self.explained_by)}",
            "affected": ", ".join(self.affected),
            "likely cause": self.likely_cause,
            "first action": self.first_action,
            "evidence": "; ".join(self.evidence),
        }
