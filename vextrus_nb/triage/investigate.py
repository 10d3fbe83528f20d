"""Triage as one call: collect everything at once, diagnose on the dependency graph, and the
settings and command templates it needs. Read-only, always."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vextrus_nb import drivers
from vextrus_nb.errors import VextrusError
from vextrus_nb.evidence import scrub
from vextrus_nb.live_context import MIN_POOL
from vextrus_nb.probe_targets import endpoints
from vextrus_nb.triage.collect import collect
from vextrus_nb.triage.context import TriageSettings
from vextrus_nb.triage.diagnose import diagnose
from vextrus_nb.triage.ha import SENTINELS
from vextrus_nb.triage.model import Signal
from vextrus_nb.triage.results import TriageResult
from vextrus_nb.triage.rules import load_rules

if TYPE_CHECKING:
    from vextrus_nb.config import Environment, Inventory


def settings_for(env: Environment, **overrides: float | str | None) -> TriageSettings:
    """The environment's probe settings, then the runbook's parameters. None leaves a setting
    unset (the environment's, else the default); every other value, 0 included, is used."""
    base = TriageSettings(timeout_s=env.probe.timeout_s, latency_budget_ms=env.probe.latency_budget_ms)
    chosen = {k: v for k, v in overrides.items() if v is not None}
    return TriageSettings(**{**base.__dict__, **chosen})


def template_values(env: Environment, inventory: Inventory) -> dict[str, dict[str, str]]:
    """Per component, what the rule table's commands need: its port, the datastores' ports, paths."""
    where = endpoints(env, inventory)
    common = {
        "env": env.name,
        "postgres_port": str(where.get("postgres", ("", ""))[1]),
        "postgres_user": env.postgres.user if env.postgres else "postgres",
        "redis_port": str(where.get("redis", ("", ""))[1]),
        **_ha_values(env, where),
    }
    # Only a driver that writes logs to files (the local one) can name the file to tail.
    log_file = getattr(drivers.for_environment(env), "log_file", None) if env.driver == "local" else None
    values = {
        name: {**common, "port": str(port), "log_file": _log_file(log_file, name)}
        for name, (_, port) in where.items()
    }
    values[SENTINELS] = {**common, "port": common.get("sentinel_port", "")}
    return values


def _log_file(log_file: Callable[[str], Path | None] | None, name: str) -> str:
    """The file to tail, or "" when the driver cannot say (a local environment with no sandbox
    state to read: a command without its file beats a triage that fails)."""
    try:
        return str(log_file(name) or "") if log_file else ""
    except VextrusError:
        return ""


def _ha_values(env: Environment, where: dict[str, tuple[str, int]]) -> dict[str, str]:
    """The replica's port, a Sentinel's port and the service it monitors (`ha:`), when declared."""
    ha = env.ha
    values: dict[str, str] = {}
    if ha and ha.postgres and ha.postgres.replica in where:
        values["replica_port"] = str(where[ha.postgres.replica][1])
    if ha and ha.redis:
        values["sentinel_service"] = ha.redis.service
        if ha.redis.sentinels and ha.redis.sentinels[0] in where:
            values["sentinel_port"] = str(where[ha.redis.sentinels[0]][1])
    return values


def triage(
    env: Environment,
    inventory: Inventory,
    settings: TriageSettings,
    scrubber: scrub.Scrubber | None = None,
    concurrency: int = MIN_POOL,
    one_after_another: bool = False,
) -> TriageResult:
    """Collect everything at once, then diagnose. Read-only."""
    from vextrus_nb.probe_targets import components_in_scope

    scrubbing = scrubber or scrub.Scrubber()
    reports, seconds, at = collect(env, inventory, settings, scrubbing, concurrency, one_after_another)
    signals: list[Signal] = [s for r in reports for s in r.signals]
    logs: dict[str, list[str]] = next((r.data.get("lines", {}) for r in reports if r.name == "logs"), {})
    findings = diagnose(
        signals, inventory, load_rules(), env.driver, template_values(env, inventory), log_lines=logs
    )
    for finding in findings:
        finding.evidence = [scrubbing.text(e) for e in finding.evidence]
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
