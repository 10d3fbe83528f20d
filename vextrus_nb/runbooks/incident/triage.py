"""The steps of the incident/triage runbook: validate, collect and diagnose, judge.

Triage is read-only, always: it probes, reads PostgreSQL's and Redis's
statistics in read-only sessions, reads logs, events and the ledger. It takes
no lock, so it runs while a destructive runbook holds the environment.

Verdict: the run fails when a finding of severity critical or high stands (an
incident is on), and the run record names the top finding's component.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vextrus_nb import audit
from vextrus_nb.drivers.local import LocalDriver
from vextrus_nb.errors import ConfigError, RunRefused
from vextrus_nb.targets import endpoints
from vextrus_nb.triage.collect import MIN_POOL, collect
from vextrus_nb.triage.context import TriageSettings
from vextrus_nb.triage.diagnose import diagnose
from vextrus_nb.triage.model import Signal
from vextrus_nb.triage.results import TriageResult
from vextrus_nb.triage.rules import load_rules

if TYPE_CHECKING:
    from vextrus_nb.config import Environment, Inventory
    from vextrus_nb.runbook import Runbook


def validate(service: str, window_minutes: float, timeout_s: float) -> None:
    """Refuse bad parameters before anything is measured (the runner exits 2)."""
    if window_minutes <= 0:
        raise RunRefused(f"window_minutes must be positive, not {window_minutes:g}")
    if timeout_s < 0:
        raise RunRefused(f"timeout_s must be 0 (the environment's setting) or positive, not {timeout_s:g}")
    if service:
        from vextrus_nb.config import load_inventory

        try:
            load_inventory().get(service)
        except ConfigError as exc:
            raise RunRefused(f"service: {exc}") from None
    try:
        load_rules()
    except ConfigError as exc:
        raise RunRefused(str(exc)) from None


def settings_for(env: Environment, **overrides: float | str) -> TriageSettings:
    """The environment's probe settings, then the runbook's parameters (0 or "" keeps the default)."""
    base = TriageSettings(timeout_s=env.probe.timeout_s, latency_budget_ms=env.probe.latency_budget_ms)
    chosen = {k: v for k, v in overrides.items() if v not in (0, 0.0, "", None)}
    return TriageSettings(**{**base.__dict__, **chosen})  # type: ignore[arg-type]


def template_values(env: Environment, inventory: Inventory) -> dict[str, dict[str, str]]:
    """Per component, what the rule table's commands need: its port, the datastores' ports, paths."""
    where = endpoints(env, inventory)
    common = {
        "postgres_port": str(where.get("postgres", ("", ""))[1]),
        "postgres_user": env.postgres.user if env.postgres else "postgres",
        "redis_port": str(where.get("redis", ("", ""))[1]),
    }
    log_file = LocalDriver.for_sandbox().log_file if env.driver == "local" else None
    return {
        name: {**common, "port": str(port), "log_file": str(log_file(name)) if log_file else ""}
        for name, (_, port) in where.items()
    }


def triage(
    env: Environment,
    inventory: Inventory,
    settings: TriageSettings,
    scrubber: audit.Scrubber | None = None,
    concurrency: int = MIN_POOL,
    one_after_another: bool = False,
) -> TriageResult:
    """Collect everything at once, then diagnose. Read-only."""
    from vextrus_nb.targets import components_in_scope

    scrub = scrubber or audit.Scrubber()
    reports, seconds, at = collect(env, inventory, settings, scrub, concurrency, one_after_another)
    signals: list[Signal] = [s for r in reports for s in r.signals]
    logs = next((r.data.get("lines", {}) for r in reports if r.name == "logs"), {})
    findings = diagnose(
        signals, inventory, load_rules(), env.driver, template_values(env, inventory), log_lines=logs
    )
    for finding in findings:
        finding.evidence = [scrub.text(e) for e in finding.evidence]
    return TriageResult(
        reports=reports,
        findings=findings,
        components=components_in_scope(env, inventory),
        seconds=seconds,
        at=at,
        window_minutes=settings.window_minutes,
        suspected=settings.suspected,
        suspected_path=frozenset(_with_dependencies(inventory, settings.suspected)),
    )


def _with_dependencies(inventory: Inventory, name: str) -> set[str]:
    if not name:
        return set()
    found, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo += inventory.get(current).depends_on
    return found


def run(rb: Runbook, **parameters: float | str) -> TriageResult:
    """The runbook's collection and diagnosis, with its parameters and its scrubber."""
    return triage(rb.env, rb.inventory, settings_for(rb.env, **parameters), rb.scrubber)


def judge(rb: Runbook, result: TriageResult) -> None:
    rb.summary.update(result.summary())
    if result.incident:
        top = result.incident[0]
        rb.fail(f"incident: {top.title} (top finding; {len(result.incident)} of severity high or critical)")
