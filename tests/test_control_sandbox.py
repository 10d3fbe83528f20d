"""The sandbox's own control store (`sandbox up --control`) with the real runbooks: it outlives
the platform's PostgreSQL going down, and while it is down itself (`sandbox fault control down`)
triage still runs and seals here, joining the shared chain late, while a live backup is refused
naming the store.

These tests run on a sandbox of this module's own: `sandbox up --control` wires a control store,
an alert receiver and Alertmanager webhooks into the sandbox it is given, and the faults and
workers here come and go around them, which the other modules' shared sandbox should not carry
(test_sandbox.py's service faults, run after these on the same sandbox, once saw a service's
liveness stall for 8 s)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vextrus_nb.sandbox import control_store, manager
from vextrus_nb.sandbox_state import SandboxState

from .helpers import CLI, REPO, run_cli, wait_until

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxState]:
    root = tmp_path_factory.mktemp("control-sandbox") / "sandbox"
    saved = os.environ.get("VEXTRUS_SANDBOX_DIR")
    os.environ["VEXTRUS_SANDBOX_DIR"] = str(root)
    try:
        yield manager.up(root)
    finally:
        manager.down(root)
        if saved is None:
            os.environ.pop("VEXTRUS_SANDBOX_DIR", None)
        else:
            os.environ["VEXTRUS_SANDBOX_DIR"] = saved


@pytest.fixture
def healthy(platform: SandboxState) -> Iterator[SandboxState]:
    """This module's sandbox, every fault a test injects cleared afterwards."""
    yield platform
    manager.heal(root=platform.root)


def host(state: SandboxState, name: str, tmp_path: Path) -> dict[str, str]:
    return {
        "VEXTRUS_CONTROL": str(state.root / "control.yaml"),
        "VEXTRUS_OUTPUTS_DIR": str(tmp_path / name),
        "VEXTRUS_HOST": name,
    }


def test_sandbox_up_control_starts_a_store_apart_from_the_platform(
    healthy: SandboxState, tmp_path: Path
) -> None:
    up = run_cli("sandbox", "up", "--control")
    assert up.returncode == 0, up.stderr
    assert f"VEXTRUS_CONTROL={healthy.root / 'control.yaml'}" in up.stdout
    store = control_store.of_sandbox(healthy.root)
    assert store is not None and store.is_up()
    # Its servers' files are not among the sandbox's operator-facing ones (the bucket's key is there).
    assert healthy.root not in store.home.parents

    manager.fault("postgres", "down", root=healthy.root)
    status = run_cli("control", "status", env=host(healthy, "oncall", tmp_path))
    assert status.returncode == 0 and "ledger: answers" in status.stdout, status.stderr
    shown = run_cli("sandbox", "status")
    assert "control store" in shown.stdout
    # sandbox-gated: the same platform behind production's guards, its approvers' keys written.
    assert sorted(p.name for p in (healthy.root / "approvers").iterdir()) == [
        f"{name}.{kind}" for name in ("alice", "bob", "carol") for kind in ("pem", "pub")
    ]
    gated = run_cli("run", "dr/backup", "--env", "sandbox-gated", "-p", "dry_run=false")
    assert gated.returncode == 2 and "pass -p confirm=sandbox-gated" in gated.stderr
    gated = run_cli(
        "run", "dr/backup", "--env", "sandbox-gated", "-p", "dry_run=false", "-p", "confirm=sandbox-gated"
    )
    assert gated.returncode == 2 and "needs 2 approvals of alice, bob, carol" in gated.stderr


def test_with_the_control_store_down_triage_seals_here_and_joins_late_a_live_backup_is_refused(
    healthy: SandboxState, tmp_path: Path
) -> None:
    assert run_cli("sandbox", "up", "--control").returncode == 0
    oncall = host(healthy, "oncall", tmp_path)
    down = run_cli("sandbox", "fault", "control", "down")
    assert down.returncode == 0, down.stderr
    try:
        triage = run_cli("run", "incident/triage", "--env", "sandbox", env=oncall)
        assert triage.returncode in (0, 1), triage.stderr  # a diagnosis, whatever it says
        assert "kept here until `vextrus-nb ledger sync`" in triage.stderr
        sealed = Path(triage.stdout.strip().splitlines()[-1])
        assert sealed.is_file()

        backup = run_cli("run", "dr/backup", "--env", "sandbox", "-p", "dry_run=false", env=oncall)
        assert backup.returncode == 2
        assert (
            "would change 'sandbox' live, and no lock can be taken: control store PostgreSQL" in backup.stderr
        )
        assert not list((tmp_path / "oncall").rglob("dr-backup-*.ipynb"))
    finally:
        assert run_cli("sandbox", "heal", "control").returncode == 0

    synced = run_cli("ledger", "sync", env=oncall)
    assert synced.returncode == 0 and "still waiting: 0" in synced.stdout, synced.stderr
    exported = run_cli("ledger", "export", "--format", "jsonl", env=oncall)
    [late] = [json.loads(line) for line in exported.stdout.splitlines() if '"incident/triage"' in line]
    assert late["appended_late"] is True and late["sealed_on"] == "oncall"
    assert late["output"] in str(sealed) and late["evidence"]["key"] == late["output"]
    verified = run_cli("ledger", "verify", env=oncall)
    assert verified.returncode == 0, verified.stderr


def test_a_submitted_smoke_passes_and_deploy_all_resumes_from_its_failed_phase(
    healthy: SandboxState, tmp_path: Path
) -> None:
    assert run_cli("sandbox", "up", "--control").returncode == 0
    worker = subprocess.Popen(
        [CLI, "worker", "--env", "sandbox"], env={**os.environ, **host(healthy, "deployer", tmp_path)},
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert worker.stderr is not None and "polling vextrus-runbooks-sandbox" in worker.stderr.readline()
        oncall = host(healthy, "oncall", tmp_path)
        smoke = run_cli("submit", "verify/smoke", "--env", "sandbox", "--wait", env=oncall)
        assert smoke.returncode == 0 and "verify-smoke-" in smoke.stdout, smoke.stderr
        # Phase 5's Traefik stopped: phase 5 (a dry run) plans its start and passes; phase 6's
        # preflight needs phases 1-5 healthy and stops the pipeline there.
        manager.fault("traefik", "down", root=healthy.root)
        first = run_cli("submit", "deploy/all", "--env", "sandbox", "--wait", env=oncall, timeout=600)
        assert first.returncode == 1, first.stderr
        pipeline = first.stdout.split()[0]
        assert "deploy/05-edge: passed" in first.stderr and "deploy/06-core-services: failed" in first.stderr
        assert "deploy/07" not in first.stderr

        manager.heal("traefik", root=healthy.root)
        again = run_cli(
            "submit",
            "deploy/all",
            "--env",
            "sandbox",
            "--resume",
            pipeline,
            "--wait",
            env=oncall,
            timeout=600,
        )
        assert again.returncode == 0, again.stderr
        resumed = again.stdout.split()[0]
        assert (
            "deploy/01-data-layer: passed" in again.stderr and "(finished in the resumed run)" in again.stderr
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(90)

    exported = run_cli("ledger", "export", "--format", "jsonl", env=oncall)
    entries = [json.loads(line) for line in exported.stdout.splitlines()]
    by_pipeline = {
        run: [e["runbook"] for e in entries if (e.get("submitted") or {}).get("pipeline") == run]
        for run in (pipeline, resumed)
    }
    assert [r.split("-")[0] for r in by_pipeline[pipeline]] == [f"deploy/0{n}" for n in range(1, 7)]
    assert [r.split("-")[0] for r in by_pipeline[resumed]] == ["deploy/06", "deploy/07", "deploy/08"]
    [second_entry] = [e for e in entries if e["run_id"] == resumed]
    assert second_entry["runbook"] == "deploy/all" and second_entry["resumes"] == pipeline
    assert [p["resumed"] for p in second_entry["phases"][:5]] == [True] * 5
    assert run_cli("ledger", "verify", env=oncall).returncode == 0


def test_an_alert_starts_triage_once_per_firing_and_a_failing_run_pages_until_one_passes(
    healthy: SandboxState, tmp_path: Path
) -> None:
    import httpx

    assert run_cli("sandbox", "up", "--control").returncode == 0
    state = SandboxState.load(healthy.root)
    receiver, alertmanager = (
        state.extra["alert_receiver_url"],
        f"http://127.0.0.1:{state.ports['alertmanager']}",
    )
    responder = subprocess.Popen(
        [CLI, "worker", "--env", "sandbox"], env={**os.environ, **host(healthy, "responder", tmp_path)},
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    oncall = host(healthy, "oncall", tmp_path)

    def alert_runs() -> list[dict[str, Any]]:
        exported = run_cli("ledger", "export", "--format", "jsonl", env=oncall).stdout.splitlines()
        return [e for e in map(json.loads, exported) if (e.get("submitted") or {}).get("alert")]

    def paged(active: bool = True) -> list[dict[str, Any]]:
        found = httpx.get(
            f"{alertmanager}/api/v2/alerts", params={"filter": 'alertname="VextrusRunbookFailed"'}
        )
        return [a for a in found.json() if a["status"]["state"] == "active"] if active else found.json()

    try:
        assert responder.stderr is not None and "polling" in responder.stderr.readline()
        # What the receiver refuses, answering at once: 4xx, nothing started.
        assert httpx.post(receiver, content=b"{not json", timeout=1).status_code == 400
        unrouted = {"version": "4", "status": "firing", "alerts": [
            {"status": "firing", "labels": {"alertname": "SomethingElse"}, "startsAt": "2026-01-01T00:00:00Z",
             "fingerprint": "0123"}]}  # fmt: skip
        answer = httpx.post(receiver, json=unrouted, timeout=1)
        assert answer.status_code == 422 and "no route for SomethingElse" in answer.text
        resolved = {
            **unrouted,
            "status": "resolved",
            "alerts": [{**unrouted["alerts"][0], "status": "resolved"}],
        }
        assert httpx.post(receiver, json=resolved, timeout=1).json() == {"runs": {}}

        # Prometheus fires for a stopped critical component, Alertmanager delivers, triage runs.
        manager.fault("traefik", "down", root=healthy.root)
        wait_until(lambda: alert_runs(), "the alert's triage run to be sealed", timeout_s=240)
        [triage] = alert_runs()
        alert = triage["submitted"]["alert"]
        assert triage["runbook"] == "incident/triage" and triage["parameters"]["service"] == "traefik"
        assert alert["name"] == "VextrusCriticalComponentDown" and alert["labels"]["component"] == "traefik"
        assert triage["evidence"]["key"] == triage["output"]  # sealed into the store

        # The same firing re-sent three times: one run.
        again = {"version": "4", "status": "firing", "alerts": [
            {"status": "firing", "labels": alert["labels"], "startsAt": alert["starts_at"],
             "fingerprint": alert["fingerprint"]}]}  # fmt: skip
        started = "".join(c for c in alert["starts_at"] if c.isalnum())[:20]
        for _ in range(3):
            answer = httpx.post(receiver, json=again, timeout=1).json()
            assert answer["runs"] == {f"alert-{alert['fingerprint']}-{started}": "already"}
        assert len(alert_runs()) == 1

        # Triage found Traefik down: it failed, and the failure pages through Alertmanager.
        assert triage["status"] == "failed"
        wait_until(lambda: paged(), "VextrusRunbookFailed in Alertmanager")
        [page] = paged()
        assert (
            page["labels"] | {"runbook": "incident/triage", "env": "sandbox", "status": "failed"}
            == page["labels"]
        )
        assert page["annotations"]["run_id"] == triage["run_id"]

        manager.heal("traefik", root=healthy.root)
        passing = run_cli("submit", "incident/triage", "--env", "sandbox", "--wait", env=oncall)
        assert passing.returncode == 0, passing.stderr
        wait_until(lambda: not paged(), "the page to resolve after a passing run")
    finally:
        responder.send_signal(signal.SIGTERM)
        responder.wait(90)


def test_a_live_backup_on_sandbox_gated_waits_for_two_approvals_then_runs_and_verifies(
    healthy: SandboxState, tmp_path: Path
) -> None:
    assert run_cli("sandbox", "up", "--control").returncode == 0
    keys = healthy.root / "approvers"
    worker = subprocess.Popen(
        [CLI, "worker", "--env", "sandbox-gated"],
        env={**os.environ, **host(healthy, "gatekeeper", tmp_path)},
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    alice = {**host(healthy, "alice-laptop", tmp_path), "VEXTRUS_OPERATOR": "alice"}
    try:
        assert worker.stderr is not None and "polling" in worker.stderr.readline()
        submitted = run_cli(
            "submit", "dr/backup", "--env", "sandbox-gated", "-p", "dry_run=false",
            "-p", "confirm=sandbox-gated", "-p", "services=auth", env=alice,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        run_id = submitted.stdout.strip()

        def approve(who: str) -> subprocess.CompletedProcess[str]:
            return run_cli("approve", run_id, "--as", who, "--key", str(keys / f"{who}.pem"),
                           env={**host(healthy, who, tmp_path), "VEXTRUS_OPERATOR": who})  # fmt: skip

        own = approve("alice")
        assert own.returncode == 2 and "alice asked for this run and cannot approve it" in own.stderr
        assert "1 of 2 approvals" in approve("bob").stdout
        listed = run_cli("runs", env={**alice, "COLUMNS": "250"})  # one row a line
        assert run_id in listed.stdout and "awaiting approval (1 of 2)" in listed.stdout
        assert "2 of 2 approvals" in approve("carol").stdout

        def entry() -> dict[str, Any] | None:
            exported = run_cli("ledger", "export", "--format", "jsonl", env=alice).stdout.splitlines()
            return next((e for e in map(json.loads, exported) if e["run_id"] == run_id), None)

        done = wait_until(entry, "the approved live backup's entry", timeout_s=300)
        assert (
            done["status"] == "passed" and done["runbook"] == "dr/backup" and done["env"] == "sandbox-gated"
        )
        assert [a["name"] for a in done["submitted"]["approvals"]] == ["bob", "carol"]
        assert run_cli("ledger", "verify", env=alice).returncode == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(120)
