"""The steps every deployment-phase runbook has, in order: preflight, plan,
start and wait, tasks, verify, judge. Each notebook calls them for its phase.

A step that cannot go on (the preflight found an earlier phase down, the
phase did not come up) records why and the later steps say they were skipped,
so the executed notebook always ends with the account of what happened. A dry
run (the default) does the preflight and the plan and nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vextrus_nb import drivers
from vextrus_nb.deploy import kafka_topics
from vextrus_nb.deploy.phase_plan import PhasePlan, PhaseSpec, phase_components, phase_spec, plan_phase
from vextrus_nb.deploy.rollout import PhaseRollout, start_phase
from vextrus_nb.deploy.verify import PhaseVerification, verify_phase
from vextrus_nb.display import Shown, note, preformatted
from vextrus_nb.errors import ConfigError, DriverUnavailable, RunRefused

if TYPE_CHECKING:
    import pandas as pd

    from vextrus_nb.config import Environment
    from vextrus_nb.drivers import Driver, HealthState
    from vextrus_nb.run.session import Runbook


def validate(env: Environment, parameters: dict[str, Any]) -> None:
    """Refuse bad parameters before anything is touched (the runner exits 2, before a kernel)."""
    deadline_s, poll_s = parameters.get("deadline_s", 600.0), parameters.get("poll_s", 0.5)
    for name, value in (("deadline_s", deadline_s), ("poll_s", poll_s)):
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise RunRefused(f"{name} must be a positive number of seconds, not {value!r}")
    if poll_s > deadline_s:
        raise RunRefused(f"poll_s ({poll_s:g}) must not exceed deadline_s ({deadline_s:g})")
    try:
        from vextrus_nb.deploy.phase_plan import load_phases

        load_phases()
    except ConfigError as exc:
        raise RunRefused(str(exc)) from None


@dataclass
class PhaseRun:
    """One phase's run: what was found, planned, done and verified."""

    rb: Runbook
    spec: PhaseSpec
    driver: Driver | None = None
    earlier_health: dict[str, HealthState] = field(default_factory=dict)
    blockers: list[str] = field(default_factory=list)
    plan: PhasePlan | None = None
    rollout: PhaseRollout | None = None
    task_rows: list[dict[str, Any]] = field(default_factory=list)
    verification: PhaseVerification | None = None
    skipped: str = ""  # why the remaining steps do nothing

    @property
    def live(self) -> bool:
        return not self.rb.dry_run

    # -- displays ----------------------------------------------------------------------
    def preflight_table(self) -> pd.DataFrame:
        import pandas as pd

        rows = [
            {
                "component": name,
                "phase": self.rb.inventory.get(name).phase,
                "health": h.health,
                "detail": h.detail,
            }
            for name, h in self.earlier_health.items()
        ]
        return pd.DataFrame(rows, columns=["component", "phase", "health", "detail"])

    def plan_table(self) -> pd.DataFrame | Shown:
        return self.plan.table() if self.plan else note(f"No plan: {self.skipped}")

    def step_note(self, step: str) -> Shown:
        """Why a step shows nothing: skipped after a failure, or a dry run."""
        if self.skipped:
            return note(f"{step}: skipped, {self.skipped}")
        if not self.live:
            return note(
                f"{step}: dry run, nothing was started or changed (pass -p dry_run=False to start the phase)"
            )
        return note(f"{step}: nothing to show")

    def start_table(self) -> pd.DataFrame | Shown:
        return self.rollout.table() if self.rollout else self.step_note("start")

    def failure_note(self) -> Shown:
        return note(self.rollout.failure_text()) if self.rollout else self.step_note("start")

    def log_lines(self) -> Shown:
        if self.rollout and self.rollout.logs:
            return preformatted(self.rollout.log_text())
        return note("No log lines to show: no component failed to come up.")

    def task_table(self) -> pd.DataFrame | Shown:
        import pandas as pd

        if not self.spec.tasks:
            return note("This phase has no tasks after start.")
        if self.task_rows:
            return pd.DataFrame(self.task_rows)
        return self.step_note("tasks")

    def verify_table(self) -> pd.DataFrame | Shown:
        return self.verification.table() if self.verification else self.step_note("verify")


def open_phase(rb: Runbook, phase: int) -> PhaseRun:
    return PhaseRun(rb, phase_spec(phase))


def preflight(run: PhaseRun) -> None:
    """The driver answers and every component of the earlier phases is healthy."""
    rb = run.rb
    try:
        run.driver = drivers.for_environment(rb.env)
    except DriverUnavailable as exc:
        run.skipped = f"the {rb.env.driver} driver cannot be used: {exc}"
        rb.fail(f"preflight: {run.skipped}")
        return
    earlier = [c.name for p in range(1, run.spec.number) for c in phase_components(rb.env, rb.inventory, p)]
    run.earlier_health = run.driver.health(earlier) if earlier else {}
    run.blockers = [n for n, h in run.earlier_health.items() if h.health != "healthy"]
    if run.blockers:
        named = ", ".join(f"{n} ({run.earlier_health[n].health})" for n in run.blockers)
        run.skipped = f"the earlier phases are not all healthy: {named}"
        rb.fail(
            f"preflight: phase {run.spec.number} needs phases 1-{run.spec.number - 1} healthy; "
            f"not healthy: {named}"
        )


def plan(run: PhaseRun) -> None:
    if run.driver is None or run.blockers:
        return
    names = [c.name for c in phase_components(run.rb.env, run.rb.inventory, run.spec.number)]
    run.plan = plan_phase(run.rb.env, run.rb.inventory, run.spec.number, run.driver.health(names))
    run.rb.summary["to_start"] = len(run.plan.to_start)


def start(run: PhaseRun) -> None:
    if run.plan is None or run.driver is None or not run.live:
        return
    chosen = run.rb.parameters
    run.rollout = start_phase(
        run.driver,
        run.plan,
        chosen.get("deadline_s", 600.0),
        chosen.get("poll_s", 0.5),
        chosen.get("rollback_on_failure", False),
    )
    if not run.rollout.ok:
        run.skipped = f"the phase did not come up ({', '.join(run.rollout.failed)})"
        run.rb.fail(f"phase {run.spec.number}: {run.rollout.failure_text()}")


def tasks(run: PhaseRun) -> None:
    if run.plan is None or not run.live or run.skipped:
        return
    env, inventory = run.rb.env, run.rb.inventory
    if "kafka_topics" in run.spec.tasks:
        report = kafka_topics.deploy_topics(env, inventory, env.probe.timeout_s)
        for topic in report.wanted:
            action = "created" if topic in report.created else "existed already"
            run.task_rows.append({"task": "kafka_topics", "object": topic, "action": action})


def verify(run: PhaseRun) -> None:
    if run.plan is None or not run.live or run.skipped:
        return
    run.verification = verify_phase(run.rb.env, run.rb.inventory, run.spec, run.rb.scrubber)
    for failure in run.verification.failures:
        run.rb.fail(f"verify: {failure.check} {failure.subject}: {failure.detail}")


def judge(run: PhaseRun) -> None:
    """The run record's summary: what the phase started and how long each took."""
    summary = run.rb.summary
    summary["phase"] = run.spec.number
    summary["phase_title"] = run.spec.title
    summary["driver"] = run.rb.env.driver
    if run.plan:
        summary["components"] = len(run.plan.components)
    if run.rollout:
        timed = [s for s in run.rollout.starts if s.action == "started" and s.healthy_after_s is not None]
        summary["started"] = len([s for s in run.rollout.starts if s.action == "started"])
        summary["healthy"] = len([s for s in run.rollout.starts if s.health == "healthy"])
        summary["phase_seconds"] = run.rollout.seconds
        summary["start_to_healthy_s"] = {s.component: s.healthy_after_s for s in timed}
        if timed:
            slowest = max(timed, key=lambda s: s.healthy_after_s or 0.0)
            summary["slowest"] = f"{slowest.component} {slowest.healthy_after_s:.1f} s"
        if run.rollout.failed:
            summary["not_healthy"] = run.rollout.failed
            summary["rolled_back"] = run.rollout.rolled_back
            summary["left_running"] = run.rollout.left_running
    if run.verification:
        summary["checks_passed"] = (
            f"{len(run.verification.rows) - len(run.verification.failures)}/{len(run.verification.rows)}"
        )


# -- Evidence: what the report and the metrics read of this runbook's runs ---------------------
# Plain data (evidence/declared.py): read from this source without importing the module, so it
# names only the declaration types (as declared.X) and literals.
from vextrus_nb.evidence import declared  # noqa: E402

EVIDENCE = declared.Evidence(
    figures=(
        declared.Figure("phase"),
        declared.Figure("healthy", "components healthy"),
        declared.Figure("not_healthy", "components not healthy"),
        declared.Figure("checks_passed", "checks passed"),
    ),
)
