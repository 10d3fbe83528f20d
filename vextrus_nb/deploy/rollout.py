"""Start a phase and wait on real health: wave by wave, each within the phase's deadline.

No fixed sleeps: the driver's health (Docker's healthcheck, Kubernetes'
readiness, the sandbox's own endpoints) is polled, and each component's
start-to-healthy time is recorded. When the deadline passes, the components
that are not healthy are named with their state and last log lines; with
`rollback` what this run started is stopped again, otherwise the account says
exactly what is left running.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from vextrus_nb.display import Progress

if TYPE_CHECKING:
    import pandas as pd

    from vextrus_nb.deploy.phase_plan import PhasePlan
    from vextrus_nb.drivers import Driver, LogLine

LOG_LINES = 15


@dataclass
class ComponentStart:
    component: str
    wave: int
    action: str  # started | already healthy | not reached (an earlier wave failed)
    asked_at: datetime | None = None
    healthy_after_s: float | None = None
    health: str = ""
    detail: str = ""


@dataclass
class PhaseRollout:
    starts: list[ComponentStart]
    seconds: float
    deadline_s: float
    failed: list[str] = field(default_factory=list)
    logs: dict[str, list[LogLine]] = field(default_factory=dict)
    rolled_back: list[str] = field(default_factory=list)
    left_running: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def table(self) -> pd.DataFrame:
        import pandas as pd

        rows = [
            {
                "order": s.wave + 1,
                "component": s.component,
                "action": s.action,
                "asked (UTC)": s.asked_at.strftime("%H:%M:%S.%f")[:-3] if s.asked_at else "",
                "start to healthy (s)": s.healthy_after_s,
                "health": s.health,
                "detail": s.detail,
            }
            for s in self.starts
        ]
        return pd.DataFrame(rows)

    def failure_text(self) -> str:
        if self.ok:
            return "Every component of the phase is healthy."
        lines = [
            f"Not healthy within {self.deadline_s:g} s: {', '.join(self.failed)}.",
        ]
        if self.rolled_back:
            lines.append(f"Rolled back (stopped again): {', '.join(self.rolled_back)}.")
        if self.left_running:
            healthy = [
                s.component for s in self.starts if s.component in self.left_running and s.health == "healthy"
            ]
            failing = [n for n in self.left_running if n not in healthy]
            lines.append(
                f"Left running as they are: {len(healthy)} healthy ({', '.join(healthy) or 'none'}), "
                f"{len(failing)} not healthy ({', '.join(failing) or 'none'})."
            )
        lines.append("The earlier phases were not touched.")
        return " ".join(lines)

    def log_text(self) -> str:
        """The failing components' last log lines, whole (a table would cut them short)."""
        blocks = []
        for name, lines in self.logs.items():
            shown = "\n".join(f"  {line.text}" for line in lines) or "  (no log lines since the phase began)"
            blocks.append(f"{name}, last {len(lines)} log lines:\n{shown}")
        return "\n\n".join(blocks)


def start_phase(
    driver: Driver,
    plan: PhasePlan,
    deadline_s: float,
    poll_s: float = 0.5,
    rollback: bool = False,
) -> PhaseRollout:
    """Start the plan's components wave by wave and wait until each is healthy."""
    began = time.monotonic()
    since = datetime.now(UTC)
    entries = {
        c.component: ComponentStart(c.component, c.wave, "not reached", health=c.health)
        for c in plan.components
    }
    progress = Progress(len(entries), f"phase {plan.spec.number} healthy")
    failed: list[str] = []
    started: list[str] = []
    for names in plan.waves:
        for name in names:
            if name not in plan.to_start:
                entries[name].action, entries[name].health = "already healthy", "healthy"
                progress.step(f"{name} already healthy")
        to_start = [n for n in names if n in plan.to_start]
        if not to_start:
            continue
        asked = datetime.now(UTC)
        asked_clock = time.monotonic()
        driver.start(to_start)
        started += to_start
        for name in to_start:
            entries[name].action, entries[name].asked_at = "started", asked
        waiting = set(to_start)
        while waiting:
            health = driver.health(sorted(waiting))
            now = time.monotonic()
            for name, state in health.items():
                entries[name].health, entries[name].detail = state.health, state.detail
                if state.health == "healthy":
                    waiting.discard(name)
                    entries[name].healthy_after_s = round(now - asked_clock, 2)
                    progress.step(f"{name} {entries[name].healthy_after_s:.1f} s")
            if waiting and now - began >= deadline_s:
                failed = sorted(waiting, key=[c.component for c in plan.components].index)
                break
            if waiting:
                time.sleep(poll_s)
        if failed:
            break
    progress.close()
    rollout = PhaseRollout(list(entries.values()), round(time.monotonic() - began, 2), deadline_s, failed)
    if failed:
        for name in failed:
            rollout.logs[name] = driver.logs(name, since, LOG_LINES)[-LOG_LINES:]
        if rollback:
            driver.stop(started)
            rollout.rolled_back = list(started)
        else:
            states = driver.status(started)
            rollout.left_running = [n for n in started if states[n].state in ("running", "restarting")]
    return rollout
