"""incident/triage end to end, through `vextrus-nb run`: the output notebook an
engineer attaches to the incident, its run record, and bad input refused."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from vextrus_nb.run import locks
from vextrus_nb.sandbox import manager
from vextrus_nb.sandbox_state import SandboxState

from .helpers import ledger_entries, notebook_plain_text, run_cli

# A healthy sandbox must come out healthy on a loaded 2-core machine too, where a PostgreSQL
# connect and query in a triage's concurrent read can take past the sandbox's 2 s timeout: these
# tests are about the verdict, so they give the platform room (the findings' own tests inject).
STEADY = ("-p", "latency_budget_ms=4000", "-p", "timeout_s=8")


def _sandbox_secrets(state: SandboxState) -> list[str]:
    return [p.read_text().strip() for p in state.secrets_dir.iterdir()]


def test_a_service_down_fails_the_run_and_the_record_names_it(healthy: SandboxState, outputs: Path) -> None:
    manager.fault("finance", "down", root=healthy.root)
    done = run_cli("run", "incident/triage", "--env", "sandbox", "-p", "service=finance", *STEADY)
    assert done.returncode == 1, done.stderr
    assert "incident: finance is down: connections refused" in done.stderr
    [entry] = ledger_entries(outputs)
    summary = entry["summary"]
    assert summary["top_finding_component"] == "finance" and summary["top_severity"] == "critical"
    assert summary["collectors_failed"] == []

    notebook = Path(done.stdout.strip())
    text = notebook_plain_text(notebook)
    assert "#1 [critical] finance is down: connections refused (root cause" in text
    assert "Suspected: finance. Findings on it or on what it depends on: #1 finance" in text
    assert "stopped listening" in text  # its last log lines
    assert "vextrus-nb sandbox status" in text  # what to run next
    figures = [
        out
        for cell in nbformat.read(notebook, as_version=4).cells
        for out in cell.get("outputs", [])
        if "application/vnd.plotly.v1+json" in out.get("data", {})
    ]
    [figure] = figures
    roots = [
        t for t in figure["data"]["application/vnd.plotly.v1+json"]["data"] if t.get("name") == "root cause"
    ]
    assert roots and roots[0]["text"] == ["finance"]

    evidence = notebook.read_text() + (outputs / "ledger.jsonl").read_text()
    assert not [s for s in _sandbox_secrets(healthy) if s in evidence], "a secret reached the evidence"


def test_a_healthy_sandbox_passes(healthy: SandboxState, outputs: Path) -> None:
    done = run_cli("run", "incident/triage", "--env", "sandbox", *STEADY)
    assert done.returncode == 0, done.stderr
    [entry] = ledger_entries(outputs)
    assert entry["status"] == "passed" and entry["summary"]["incident_findings"] == 0


def test_triage_runs_while_a_destructive_runbook_holds_the_environment(
    healthy: SandboxState, outputs: Path
) -> None:
    lock = locks.acquire("sandbox", "someone-else", "dr/restore", "2026-11-22T02:00:00+00:00")
    try:
        # Live (dry_run=false), so a triage that took the environment's lock, as a destructive
        # runbook does, would be refused here naming the holder.
        done = run_cli("run", "incident/triage", "--env", "sandbox", *STEADY, "-p", "dry_run=false")
    finally:
        lock.release()
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("parameter", "says"),
    [
        ("service=payroll", "service: unknown component 'payroll'"),
        ("window_minutes=0", "window_minutes must be positive, not 0"),
        ("timeout_s=-1", "timeout_s must be positive, or None for the environment's setting, not -1"),
        ("timeout_s=0", "timeout_s must be positive, or None for the environment's setting, not 0"),
        ("long_query_s=-5", "long_query_s must not be negative, not -5 (0 flags any amount)"),
        ("window_minutes=yesterday", "window_minutes"),
    ],
)
def test_bad_parameters_are_refused_before_anything_is_collected(
    sandbox: SandboxState, outputs: Path, parameter: str, says: str
) -> None:
    done = run_cli("run", "incident/triage", "--env", "sandbox", "-p", parameter)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert not list(outputs.rglob("*.ipynb"))
    assert ledger_entries(outputs) == []
