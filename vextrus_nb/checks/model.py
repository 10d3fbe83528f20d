"""What a check is, what it returns, and the catalogue they register in.

A check is data (id, category, severity, what it probes, the pass criterion,
a remediation hint) plus one async function that measures. The function
returns an Outcome: the evidence it measured and a finding per subject at
fault (a component, a file, an entrypoint). No findings means passed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from vextrus_nb.config import Severity

if TYPE_CHECKING:
    from vextrus_nb.checks.context import CheckContext

Category = Literal[
    "infrastructure", "services", "security", "observability", "disaster_recovery", "performance"
]
Status = Literal["passed", "failed", "error", "not_applicable"]

# The reference documents' weighted categories (DESIGN.md); they sum to 100.
CATEGORY_WEIGHTS: dict[str, int] = {
    "infrastructure": 25,
    "services": 20,
    "security": 20,
    "observability": 15,
    "disaster_recovery": 10,
    "performance": 10,
}
CATEGORY_TITLES: dict[str, str] = {
    "infrastructure": "Infrastructure stability",
    "services": "Service health monitoring",
    "security": "Security hardening",
    "observability": "Observability",
    "disaster_recovery": "Disaster recovery",
    "performance": "Performance",
}
# Within a category a check counts by its severity.
SEVERITY_WEIGHTS: dict[str, int] = {"critical": 3, "high": 2, "medium": 1, "low": 1}


@dataclass(frozen=True)
class Finding:
    subject: str  # the component, file or entrypoint at fault
    detail: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.detail}"


@dataclass(frozen=True)
class Outcome:
    evidence: str
    findings: tuple[Finding, ...] = ()
    applicable: bool = True

    @classmethod
    def of(cls, evidence: str, findings: list[Finding] | None = None) -> Outcome:
        return cls(evidence, tuple(findings or ()))

    @classmethod
    def not_applicable(cls, why: str) -> Outcome:
        return cls(why, (), applicable=False)


CheckFunction = Callable[["CheckContext"], Awaitable[Outcome]]


@dataclass(frozen=True)
class Check:
    id: str
    category: Category
    severity: Severity
    title: str
    probes: str
    criterion: str
    remediation: str
    measure: CheckFunction = field(repr=False, compare=False)

    @property
    def weight(self) -> int:
        return SEVERITY_WEIGHTS[self.severity]

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "severity": self.severity,
            "title": self.title,
            "probes": self.probes,
            "criterion": self.criterion,
            "remediation": self.remediation,
        }


@dataclass(frozen=True)
class CheckResult:
    check: Check
    status: Status
    evidence: str
    findings: tuple[Finding, ...] = ()
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def counted(self) -> bool:
        """Whether it weighs in the score: a check that could not run counts as failed."""
        return self.status != "not_applicable"

    @property
    def subjects(self) -> list[str]:
        return list(dict.fromkeys(f.subject for f in self.findings))

    def as_row(self) -> dict[str, Any]:
        return {
            "id": self.check.id,
            "category": self.check.category,
            "severity": self.check.severity,
            "title": self.check.title,
            "status": self.status,
            "failing": ", ".join(self.subjects),
            "evidence": self.evidence,
            "findings": "; ".join(str(f) for f in self.findings),
            "criterion": self.check.criterion,
            "remediation": "" if self.passed else self.check.remediation,
            "seconds": round(self.seconds, 3),
        }


CATALOGUE: dict[str, Check] = {}


def check(
    id: str,
    category: Category,
    severity: Severity,
    title: str,
    probes: str,
    criterion: str,
    remediation: str,
) -> Callable[[CheckFunction], CheckFunction]:
    """Register the decorated measuring function as a check in the catalogue."""

    def register(measure: CheckFunction) -> CheckFunction:
        if id in CATALOGUE:
            raise ValueError(f"check id {id} registered twice")
        CATALOGUE[id] = Check(id, category, severity, title, probes, criterion, remediation, measure)
        return measure

    return register
