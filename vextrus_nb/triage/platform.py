"""What the platform says: the driver's run state and events, the recent
error lines of every component that is not healthy, and the runbooks that ran
in the window (from the ledger: what changed recently is the first question)."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

from vextrus_nb.evidence import ledger
from vextrus_nb.probes import ProbeResult
from vextrus_nb.triage.context import TriageContext
from vextrus_nb.triage.model import CollectorReport, Signal, TimelineEvent

# What counts as an error line in NestJS, PostgreSQL and redis-server logs.
ERROR_LINE = re.compile(
    r"\b(ERROR|FATAL|PANIC|WARN(ING)?|Exception|Error|refused|timeout|timed out|shut ?down|OOM)\b|#\s",
    re.IGNORECASE,
)


async def collect_driver(ctx: TriageContext) -> CollectorReport:
    if ctx.driver is None:
        return CollectorReport("driver", "skipped", detail=ctx.driver_problem)
    driver = ctx.driver
    names = [c.name for c in ctx.components()]
    states, events = await asyncio.gather(
        ctx.bounded(asyncio.to_thread(driver.status, names)),
        ctx.bounded(asyncio.to_thread(driver.events, ctx.since)),
    )
    signals: list[Signal] = []
    for state in states.values():
        if state.state == "stopped":
            exit_code = f", exit code {state.exit_code}" if state.exit_code is not None else ""
            signals.append(
                Signal(
                    "not_running",
                    state.component,
                    f"{driver.name} driver: {state.state}{exit_code} ({state.detail})",
                    "driver",
                    subject=driver.name,
                )
            )
        if state.oom_killed:
            signals.append(
                Signal("oom_killed", state.component, f"{driver.name} driver: OOMKilled", "driver")
            )
        if state.state == "running" and state.restarts and state.started_at and state.started_at >= ctx.since:
            signals.append(
                Signal(
                    "restarted",
                    state.component,
                    f"{state.restarts} restart(s), last start {state.started_at:%H:%M:%S} UTC",
                    "driver",
                    magnitude=state.restarts,
                )
            )
    timeline = [
        TimelineEvent(e.at, "driver", e.component, f"{e.kind} {e.reason}: {ctx.scrubber.text(e.message)}")
        for e in events
    ]
    running = sum(s.state == "running" for s in states.values())
    return CollectorReport(
        "driver",
        detail=f"{driver.name}: {running} of {len(states)} running, {len(events)} events in the window",
        signals=signals,
        events=timeline,
        data={"states": list(states.values())},
    )


async def collect_logs(ctx: TriageContext, health: asyncio.Task[CollectorReport]) -> CollectorReport:
    """Recent error lines of each component whose health is not all green (and of the suspect)."""
    if ctx.driver is None:
        return CollectorReport("logs", "skipped", detail=ctx.driver_problem)
    report = await health
    results: list[ProbeResult] = report.data.get("results", [])
    wanted = sorted({r.component for r in results if r.status != "up"} | ({ctx.settings.suspected} - {""}))
    driver = ctx.driver

    async def errors_of(name: str) -> tuple[str, list]:
        lines = await ctx.bounded(asyncio.to_thread(driver.logs, name, ctx.since, 400))
        return name, [line for line in lines if ERROR_LINE.search(line.text)]

    found = dict(await asyncio.gather(*(errors_of(n) for n in wanted)))
    keep = ctx.settings.log_lines
    by_component = {
        name: [ctx.scrubber.text(line.text) for line in lines[-keep:]] for name, lines in found.items()
    }
    timeline = [
        TimelineEvent(line.at, "log", name, ctx.scrubber.text(line.text))
        for name, lines in found.items()
        for line in lines[-keep:]
        if line.at is not None
    ]
    return CollectorReport(
        "logs",
        detail=f"error lines of {len(wanted)} component(s): "
        + (", ".join(f"{n} {len(found[n])}" for n in wanted) or "none needed"),
        events=timeline,
        data={"lines": by_component},
    )


async def collect_ledger(ctx: TriageContext) -> CollectorReport:
    """Runbook runs against this environment in the window: deployments, rotations, restores."""
    entries = await asyncio.to_thread(ledger.read_entries)
    timeline = []
    for entry in entries:
        if entry.get("env") != ctx.env.name:
            continue
        try:
            at = datetime.fromisoformat(entry["started_at"])
        except (KeyError, ValueError):
            continue
        if at >= ctx.since:
            what = (
                f"runbook {entry.get('runbook')} run {entry.get('run_id')} "
                f"by {entry.get('operator')}: {entry.get('status')}"
            )
            timeline.append(TimelineEvent(at, "ledger", entry.get("runbook", "?"), what))
    return CollectorReport("ledger", detail=f"{len(timeline)} runbook run(s) in the window", events=timeline)
