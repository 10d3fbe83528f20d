"""The steps of the incident/triage runbook: validate, collect and diagnose, judge.

Triage is read-only, always: it probes, reads PostgreSQL's and Redis's
statistics in read-only sessions, reads logs, events and the ledger. It takes
no lock, so it runs while a destructive runbook holds the environment.

Verdict: the run fails when a finding of severity critical or high stands (an
incident is on), and the run record names the top finding's component.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vextrus_nb.config import load_inventory
from vextrus_nb.errors import ConfigError, RunRefused
from vextrus_nb.triage.investigate import settings_for, triage
from vextrus_nb.triage.results import TriageResult
from vextrus_nb.triage.rules import load_rules

if TYPE_CHECKING:
    from vextrus_nb.config import Environment
    from vextrus_nb.run.session import Runbook


def validate(env: Environment, parameters: dict[str, Any]) -> None:
    """Refuse bad parameters before anything is measured (the runner exits 2, before a kernel)."""
    window = parameters.get("window_minutes", 30.0)
    if window <= 0:
        raise RunRefused(f"window_minutes must be positive, not {window:g}")
    timeout = parameters.get("timeout_s")
    if timeout is not None and timeout <= 0:
        raise RunRefused(
            f"timeout_s must be positive, or None for the environment's setting, not {timeout:g}"
        )
    for name in ("latency_budget_ms", "long_query_s", "idle_in_tx_s", "kafka_lag_max"):
        if (value := parameters.get(name)) is not None and value < 0:
            raise RunRefused(f"{name} must not be negative, not {value:g} (0 flags any amount)")
    if service := parameters.get("service", ""):
        try:
            load_inventory().get(service)
        except ConfigError as exc:
            raise RunRefused(f"service: {exc}") from None
    try:
        load_rules()
    except ConfigError as exc:
        raise RunRefused(str(exc)) from None


# The runbook's parameters that are triage settings (the rest say what to run, not how to judge).
SETTINGS = (
    "window_minutes",
    "timeout_s",
    "latency_budget_ms",
    "long_query_s",
    "idle_in_tx_s",
    "kafka_lag_max",
)


def run(rb: Runbook) -> TriageResult:
    """The runbook's collection and diagnosis, with its parameters and its scrubber."""
    chosen = {name: rb.parameters.get(name) for name in SETTINGS}
    settings = settings_for(rb.env, suspected=rb.parameters.get("service", ""), **chosen)
    return triage(rb.env, rb.inventory, settings, rb.scrubber)


def judge(rb: Runbook, result: TriageResult) -> None:
    rb.summary.update(result.summary())
    if result.incident:
        top = result.incident[0]
        rb.fail(f"incident: {top.title} (top finding; {len(result.incident)} of severity high or critical)")


def show_postgres_evidence(result: TriageResult) -> None:
    """PostgreSQL's evidence: one table per kind (connections, long queries, idle transactions,
    lock waits, replication), each shown on its own."""
    from vextrus_nb.display import show

    for table in result.postgres_tables():
        show(table)


def show_ha_evidence(result: TriageResult) -> None:
    """High availability's evidence (an environment with `ha:`): replicas and slots, the
    replica's replay state, each Sentinel's primary and flags; one table each."""
    from vextrus_nb.display import show

    for table in result.ha_tables():
        show(table)


# -- Evidence: what the report and the metrics read of this runbook's runs ---------------------
# Plain data (evidence/declared.py): read from this source without importing the module, so it
# names only the declaration types (as declared.X) and literals.
from vextrus_nb.evidence import declared  # noqa: E402

EVIDENCE = declared.Evidence(
    figures=(
        declared.Figure("findings"),
        declared.Figure("top_finding_component", "top finding's component"),
        declared.Figure("top_severity", "top finding's severity"),
    ),
)
