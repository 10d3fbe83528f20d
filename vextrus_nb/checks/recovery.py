"""Disaster recovery, judged from the evidence ledger.

The contract with the DR runbooks: a backup is a ledger entry of runbook
`dr/backup` with status `passed` for this environment, and its age runs from
its `ended_at`; the newest `dr/drill` entry for the environment says whether
recovery was last proven to work. Only sealed runs count: an entry whose
output notebook is missing, unsealed or changed since is not evidence.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vextrus_nb.checks.context import CheckContext
from vextrus_nb.checks.model import Finding, Outcome, check
from vextrus_nb.evidence import ledger

BACKUP_RUNBOOK = "dr/backup"
DRILL_RUNBOOK = "dr/drill"


def _newest(ctx: CheckContext, runbook: str, status: str | None = None) -> dict[str, Any] | None:
    entries = [
        e
        for e in ledger.sealed_entries(ctx.outputs_dir)
        if e.get("runbook") == runbook and e.get("env") == ctx.env.name and status in (None, e.get("status"))
    ]
    return max(entries, key=lambda e: str(e.get("ended_at", "")), default=None)


def _age_hours(entry: dict[str, Any]) -> float:
    ended = datetime.fromisoformat(str(entry["ended_at"]))
    return (datetime.now(UTC) - ended).total_seconds() / 3600


@check(
    "DR-BACKUP-RPO",
    "disaster_recovery",
    "high",
    title="The newest backup is younger than the RPO",
    probes=f"the ledger's newest sealed, passed {BACKUP_RUNBOOK} run for this environment",
    criterion="its age is at most the environment's rpo_hours",
    remediation=f"Run the {BACKUP_RUNBOOK} runbook now, then schedule it (cron, a Kubernetes CronJob) "
    "at least once per RPO.",
)
async def backup_within_rpo(ctx: CheckContext) -> Outcome:
    entry = _newest(ctx, BACKUP_RUNBOOK, status="passed")
    rpo = ctx.env.rpo_hours
    if entry is None:
        return Outcome.of(
            f"no sealed, passed {BACKUP_RUNBOOK} run in the ledger (RPO {rpo:g} h)",
            [Finding(ctx.env.name, f"no backup recorded for '{ctx.env.name}'")],
        )
    age = _age_hours(entry)
    evidence = (
        f"newest backup {age:.1f} h old (run {entry.get('run_id')}, ended {entry['ended_at']}); RPO {rpo:g} h"
    )
    return Outcome.of(evidence, [Finding(ctx.env.name, evidence)] if age > rpo else [])


@check(
    "DR-DRILL",
    "disaster_recovery",
    "high",
    title="The newest DR drill passed",
    probes=f"the ledger's newest sealed {DRILL_RUNBOOK} run for this environment",
    criterion="it exists and its status is passed",
    remediation=f"Open the failed drill's output notebook (`vextrus-nb report`), fix what it names, "
    f"and run `vextrus-nb run {DRILL_RUNBOOK} --env ENV` again.",
)
async def drill_passed(ctx: CheckContext) -> Outcome:
    entry = _newest(ctx, DRILL_RUNBOOK)
    if entry is None:
        return Outcome.of(
            f"no sealed {DRILL_RUNBOOK} run in the ledger (a run counts once its notebook is sealed)",
            [Finding(ctx.env.name, f"recovery has never been drilled on '{ctx.env.name}'")],
        )
    evidence = (
        f"newest drill {entry.get('status')} (run {entry.get('run_id')}, ended {entry.get('ended_at')}, "
        f"{_age_hours(entry):.1f} h ago)"
    )
    if entry.get("status") != "passed":
        cause = "; ".join(entry.get("failures") or []) or entry.get("cause") or entry.get("status")
        return Outcome.of(
            evidence, [Finding(ctx.env.name, f"the newest drill {entry.get('status')}: {cause}")]
        )
    return Outcome.of(evidence)
