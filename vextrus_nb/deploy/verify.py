"""Verify a phase once it is up: every phase component answers all its health
endpoints (the Terminus three for services; PostgreSQL and Redis by a real
login), the phase's own checklist checks pass (parameters/phases.yaml), and its
tasks' results are there (the Kafka topics after phase 2). Read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vextrus_nb.asyncio_bridge import run_sync
from vextrus_nb.deploy import kafka_topics
from vextrus_nb.deploy.phase_plan import PhaseSpec, phase_components
from vextrus_nb.evidence import scrub
from vextrus_nb.probe_targets import probe_targets
from vextrus_nb.probes import describe_error, run_probes

if TYPE_CHECKING:
    import pandas as pd

    from vextrus_nb.config import Environment, Inventory


@dataclass(frozen=True)
class Verification:
    check: str
    subject: str
    passed: bool
    detail: str


@dataclass
class PhaseVerification:
    rows: list[Verification]

    @property
    def failures(self) -> list[Verification]:
        return [r for r in self.rows if not r.passed]

    def table(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            [
                {"check": r.check, "subject": r.subject, "passed": r.passed, "detail": r.detail}
                for r in self.rows
            ],
            columns=["check", "subject", "passed", "detail"],
        )


def verify_phase(
    env: Environment, inventory: Inventory, spec: PhaseSpec, scrubber: scrub.Scrubber
) -> PhaseVerification:
    components = phase_components(env, inventory, spec.number)
    rows: list[Verification] = []
    results = run_sync(
        run_probes(
            probe_targets(env, inventory, components, all_health_paths=True),
            timeout=env.probe.timeout_s,
            concurrency=env.probe.concurrency,
        )
    )
    for result in results:
        passed = result.status != "down"
        detail = f"{result.detail} ({result.latency_ms:.0f} ms)"
        rows.append(Verification(f"health: {result.check}", result.component, passed, scrubber.text(detail)))
    if spec.checks:
        from vextrus_nb.checks.execution import run_checklist, select

        checklist = run_checklist(env, inventory, select(ids=spec.checks), scrubber=scrubber)
        for check in checklist.results:
            if check.status == "not_applicable":
                continue
            subjects = ", ".join(check.subjects)
            detail = check.evidence + (f"; at fault: {subjects}" if subjects else "")
            rows.append(Verification(check.check.id, check.check.title, check.passed, detail))
    if "kafka_topics" in spec.tasks:
        try:
            report = kafka_topics.list_topics(env, inventory, env.probe.timeout_s)
            missing = report.missing
            rows.append(
                Verification(
                    "kafka topics",
                    "kafka",
                    not missing,
                    f"{len(report.wanted) - len(missing)} of {len(report.wanted)} domain-event topics exist"
                    + (f"; missing: {', '.join(missing)}" if missing else ""),
                )
            )
        except Exception as exc:
            rows.append(Verification("kafka topics", "kafka", False, f"cannot list: {describe_error(exc)}"))
    return PhaseVerification(rows)
