"""Every live check of the checklist, seen passing on the healthy sandbox and
failing with the fault injected into the real component (named in the finding)."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from vextrus_nb import checks
from vextrus_nb.checks import Check, ChecklistResult, Outcome
from vextrus_nb.checks.execution import run_checks_async
from vextrus_nb.config import load_environment, load_inventory
from vextrus_nb.evidence import ledger, scrub
from vextrus_nb.sandbox import manager
from vextrus_nb.sandbox.faults import SERVICE_MODES as MODES
from vextrus_nb.sandbox_state import SandboxState

from .helpers import admin_connection

LIVE_CATEGORIES = ("infrastructure", "services", "observability", "performance")


def run(*ids: str, **options: float) -> ChecklistResult:
    inventory = load_inventory()
    env = load_environment("sandbox", inventory)
    return checks.run_checklist(env, inventory, checks.select(ids=ids), **options)  # type: ignore[arg-type]


def failing(result: ChecklistResult, check_id: str) -> list[str]:
    return result.result(check_id).subjects


def test_every_live_check_passes_on_the_healthy_hardened_sandbox(healthy: SandboxState) -> None:
    """Hardened: the planted variant's topics (replication factor 1), Temporal retention (a day)
    and manifests are findings by design (tests/test_checklist_runbook.py)."""
    inventory = load_inventory()
    env = load_environment("sandbox", inventory)
    manager.use_deployment("hardened", healthy.root)
    try:
        # The latency budget is the one check whose outcome depends on the machine's load, not on
        # the sandbox: it gets its own pass/fail test below with budgets far from the measured ones.
        result = checks.run_checklist(
            env, inventory, checks.select(categories=LIVE_CATEGORIES), timeout_s=5, latency_budget_ms=4000
        )
    finally:
        manager.use_deployment("planted", healthy.root)
    not_applicable = {r.check.id for r in result.results if r.status == "not_applicable"}
    # The S3 stand-in has no versioning API; nothing has consumed, so no group has offsets. The six
    # HA checks judge the hardened variant's replicas, PgBouncer and Sentinels, and pass.
    high_availability = {c.id for c in checks.catalogue() if c.measure.__module__ == "vextrus_nb.checks.ha"}
    assert len(high_availability) == 6
    assert not_applicable == {"INF-OBJECT-VERSIONING", "INF-KAFKA-LAG"}, result.findings()
    assert {r.check.id for r in result.results if r.status == "passed"} >= high_availability
    assert [r.check.id for r in result.results if r.status in ("failed", "error")] == [], result.findings()
    assert {r.check.category for r in result.results} == set(LIVE_CATEGORIES)


@pytest.mark.parametrize(
    ("component", "mode", "check_id"),
    [
        ("postgres", "down", "INF-PG-ACCEPT"),
        ("postgres", "down", "INF-PG-CONNECTIONS"),
        ("redis", "down", "INF-REDIS-AUTH"),
        ("redis", "down", "PERF-REDIS-MEMORY"),
        ("elasticsearch", "unhealthy", "INF-ES-HEALTH"),
        ("elasticsearch", "down", "INF-ES-HEALTH"),
        ("kafka", "down", "INF-KAFKA"),
        ("zookeeper", "down", "INF-KAFKA"),
        ("minio", "down", "INF-MINIO"),
        ("minio", "down", "INF-OBJECT-BUCKETS"),
        ("temporal", "down", "INF-TEMPORAL"),
        ("zookeeper", "down", "INF-ZK-HEALTH"),
        ("rabbitmq", "down", "INF-RABBITMQ"),
        ("kafka", "down", "INF-KAFKA-BROKERS"),
        ("prometheus", "down", "OBS-STACK"),
        ("grafana", "unhealthy", "OBS-STACK"),
        ("signoz", "slow", "OBS-STACK"),
    ],
)
def test_an_infrastructure_fault_fails_its_check_naming_the_component(
    healthy: SandboxState, component: str, mode: str, check_id: str
) -> None:
    assert run(check_id).result(check_id).passed
    manager.fault(component, mode, root=healthy.root)
    result = run(check_id)
    assert result.result(check_id).status == "failed"
    assert failing(result, check_id) == [component], result.findings()


def test_any_service_in_any_mode_fails_the_matching_check_and_is_named(healthy: SandboxState) -> None:
    """Each of the 18 services takes each fault mode once, over four rounds of the checklist."""
    matching = {
        "down": ("SVC-HEALTH", "SVC-READY", "SVC-LIVE", "OBS-METRICS"),
        "unhealthy": ("SVC-HEALTH", "SVC-READY"),
        "slow": ("SVC-HEALTH", "SVC-READY", "SVC-LIVE", "OBS-METRICS"),
        "live-deps": ("SVC-LIVE-INDEPENDENT",),
    }
    assert set(matching) == set(MODES)
    services = [s.name for s in load_inventory().services()]
    for round_number in range(len(MODES)):
        assigned = {s: MODES[(i + round_number) % len(MODES)] for i, s in enumerate(services)}
        for service, mode in assigned.items():
            manager.fault(service, mode, root=healthy.root, delay_s=10 if mode == "slow" else None)
        # 4 s: far from the slow faults' 10 s, and from a loaded machine's healthy answers (at 1.5 s, a
        # clean-clone run beside two other test runs saw healthy liveness answers time out).
        result = run(*{c for ids in matching.values() for c in ids}, timeout_s=4)
        for service, mode in assigned.items():
            for check_id in matching[mode]:
                assert service in failing(result, check_id), (service, mode, check_id, result.findings())
        # ...and no check names a service for a fault it does not have.
        assert set(failing(result, "SVC-LIVE-INDEPENDENT")) == {
            s for s, m in assigned.items() if m == "live-deps"
        }
        assert set(failing(result, "SVC-READY")) == {s for s, m in assigned.items() if m != "live-deps"}, (
            result.findings().to_string()
        )
        manager.heal(root=healthy.root)


def test_federation_names_the_missing_subgraph_and_the_silent_gateway(healthy: SandboxState) -> None:
    assert run("FED-SUBGRAPHS").result("FED-SUBGRAPHS").passed
    manager.fault("finance", "down", root=healthy.root)
    assert failing(run("FED-SUBGRAPHS"), "FED-SUBGRAPHS") == ["finance"]
    manager.fault("api-gateway", "down", root=healthy.root)
    assert failing(run("FED-SUBGRAPHS"), "FED-SUBGRAPHS") == ["api-gateway"]


def test_connections_above_80_percent_of_max_connections_fail(healthy: SandboxState) -> None:
    assert run("INF-PG-CONNECTIONS").result("INF-PG-CONNECTIONS").passed
    with admin_connection(healthy) as conn:
        used, limit = conn.execute(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
            " current_setting('max_connections')::int"
        ).fetchone()  # type: ignore[misc]
    needed = int(limit * 0.8) - used + 2
    with ThreadPoolExecutor(16) as pool:
        held = list(pool.map(lambda _: admin_connection(healthy), range(needed)))
    try:
        result = run("INF-PG-CONNECTIONS")
        assert failing(result, "INF-PG-CONNECTIONS") == ["postgres"]
        assert "ceiling 80%" in result.result("INF-PG-CONNECTIONS").evidence
    finally:
        for conn in held:
            conn.close()


def _redis(state: SandboxState) -> redis.Redis:
    return redis.Redis(port=state.ports["redis"], password=state.secret("redis_password"))


def test_redis_without_a_password_is_a_finding(healthy: SandboxState) -> None:
    assert run("INF-REDIS-AUTH").result("INF-REDIS-AUTH").passed
    client = _redis(healthy)
    client.execute_command("ACL", "SETUSER", "default", "nopass")
    try:
        result = run("INF-REDIS-AUTH")
        assert failing(result, "INF-REDIS-AUTH") == ["redis"]
        assert "unauthenticated client got PONG" in result.result("INF-REDIS-AUTH").findings[0].detail
    finally:
        client.execute_command(
            "ACL", "SETUSER", "default", "resetpass", f">{healthy.secret('redis_password')}"
        )


def test_redis_near_or_without_maxmemory_is_a_finding(healthy: SandboxState) -> None:
    assert run("PERF-REDIS-MEMORY").result("PERF-REDIS-MEMORY").passed
    # 8 MB of data, so that used_memory is mostly data: on its own (about 1 MB, most of it client
    # buffers) it moved by more than 10% between this read and the check's. Written on a
    # connection of its own, closed before the read: the 8 MB command's query buffer counts in
    # used_memory until Redis shrinks it, which made the 95% below read as 48% by the check.
    with _redis(healthy) as writer:
        writer.set("vextrus-test:ballast", b"x" * 8 * 2**20)
    client = _redis(healthy)
    used = int(client.info("memory")["used_memory"])
    try:
        client.config_set("maxmemory", str(int(used / 0.95)))
        assert failing(run("PERF-REDIS-MEMORY"), "PERF-REDIS-MEMORY") == ["redis"]
        client.config_set("maxmemory", "0")
        result = run("PERF-REDIS-MEMORY")
        assert "maxmemory is not set" in result.result("PERF-REDIS-MEMORY").findings[0].detail
    finally:
        client.config_set("maxmemory", "256mb")
        client.delete("vextrus-test:ballast")


def test_a_slow_service_fails_the_latency_budget_and_only_it(healthy: SandboxState) -> None:
    # 1 s, though 18 readiness probes at once on the sandbox's one services process can queue past
    # it on a loaded machine: a service is judged on its latency alone, not on the probes' queue.
    assert (
        run("PERF-HEALTH-LATENCY", timeout_s=5, latency_budget_ms=1000).result("PERF-HEALTH-LATENCY").passed
    )
    manager.fault("hr", "slow", root=healthy.root, delay_s=2.5)
    result = run("PERF-HEALTH-LATENCY", "SVC-READY", timeout_s=5, latency_budget_ms=2000)
    assert failing(result, "PERF-HEALTH-LATENCY") == ["hr"]
    assert result.result("SVC-READY").passed  # slow, but it answered: a performance finding only


# -- disaster recovery, from the evidence ledger ------------------------------------------------


def _ledger(
    outputs: Path, runbook: str, status: str, hours_ago: float, env: str = "sandbox", sealed: bool = True
) -> Path:
    """A ledger entry; sealed ones point at a notebook with its sha256, as a sealed run's do."""
    ended = (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat(timespec="seconds")
    run_id = f"{runbook.replace('/', '-')}-{hours_ago}-{status}"
    notebook = outputs / env / f"{run_id}.ipynb"
    notebook.parent.mkdir(parents=True, exist_ok=True)
    notebook.write_text(json.dumps({"cells": [], "metadata": {"run": run_id}, "nbformat": 4}))
    ledger.append_entry(
        {
            "run_id": run_id,
            "runbook": runbook,
            "env": env,
            "status": status,
            "ended_at": ended,
            "output": str(notebook.relative_to(outputs)) if sealed else None,
            "output_sha256": ledger.sha256_file(notebook) if sealed else None,
        },
        outputs,
    )
    return notebook


def test_backup_age_is_judged_against_the_environments_rpo(sandbox: SandboxState, outputs: Path) -> None:
    assert failing(run("DR-BACKUP-RPO"), "DR-BACKUP-RPO") == ["sandbox"]  # nothing recorded yet
    _ledger(outputs, "dr/backup", "passed", hours_ago=30)  # older than the sandbox's 24 h RPO
    _ledger(outputs, "dr/backup", "passed", hours_ago=1, env="staging")  # another environment's
    _ledger(outputs, "dr/backup", "failed", hours_ago=0.5)  # a failed backup is no backup
    result = run("DR-BACKUP-RPO")
    assert failing(result, "DR-BACKUP-RPO") == ["sandbox"]
    assert "30.0 h old" in result.result("DR-BACKUP-RPO").evidence
    _ledger(outputs, "dr/backup", "passed", hours_ago=2)
    assert run("DR-BACKUP-RPO").result("DR-BACKUP-RPO").passed


def test_the_newest_drill_decides(sandbox: SandboxState, outputs: Path) -> None:
    assert failing(run("DR-DRILL"), "DR-DRILL") == ["sandbox"]
    _ledger(outputs, "dr/drill", "failed", hours_ago=1)
    _ledger(outputs, "dr/drill", "passed", hours_ago=5)
    assert "the newest drill failed" in run("DR-DRILL").result("DR-DRILL").findings[0].detail
    _ledger(outputs, "dr/drill", "passed", hours_ago=0.1)
    assert run("DR-DRILL").result("DR-DRILL").passed


def test_only_a_sealed_intact_drill_or_backup_counts(sandbox: SandboxState, outputs: Path) -> None:
    """An unsealed run (no notebook on record) and a tampered one (its notebook changed) are no evidence."""
    _ledger(outputs, "dr/drill", "failed", hours_ago=3)
    _ledger(outputs, "dr/drill", "passed", hours_ago=0.2, sealed=False)
    assert "the newest drill failed" in run("DR-DRILL").result("DR-DRILL").findings[0].detail
    tampered = _ledger(outputs, "dr/drill", "passed", hours_ago=0.1)
    assert run("DR-DRILL").result("DR-DRILL").passed
    tampered.write_text(tampered.read_text().replace("dr-drill", "dr-drilL"))  # one byte
    assert not run("DR-DRILL").result("DR-DRILL").passed
    _ledger(outputs, "dr/backup", "passed", hours_ago=1, sealed=False)
    assert failing(run("DR-BACKUP-RPO"), "DR-BACKUP-RPO") == ["sandbox"]
    backup = _ledger(outputs, "dr/backup", "passed", hours_ago=1)
    assert run("DR-BACKUP-RPO").result("DR-BACKUP-RPO").passed
    backup.unlink()
    assert failing(run("DR-BACKUP-RPO"), "DR-BACKUP-RPO") == ["sandbox"]


# -- the runner: a check that cannot run counts as failed ---------------------------------------


def test_a_check_that_hangs_or_raises_is_an_error_that_counts_as_failed(sandbox: SandboxState) -> None:
    async def hangs(ctx: object) -> Outcome:
        await asyncio.sleep(60)
        return Outcome.of("never")

    async def raises(ctx: object) -> Outcome:
        raise RuntimeError("the probe library broke")

    made_up = [
        Check("X-HANGS", "performance", "high", "hangs", "-", "-", "-", hangs),
        Check("X-RAISES", "performance", "high", "raises", "-", "-", "-", raises),
        *checks.select(ids=["PERF-REDIS-MEMORY"]),
    ]
    inventory = load_inventory()
    env = load_environment("sandbox", inventory)
    results = asyncio.run(
        run_checks_async(made_up, env, inventory, 0.5, 8, 500, sandbox.root, scrub.Scrubber())
    )
    by_id = {r.check.id: r for r in results}
    assert by_id["X-HANGS"].status == "error" and "no result within 1s" in by_id["X-HANGS"].evidence
    assert by_id["X-RAISES"].status == "error" and "the probe library broke" in by_id["X-RAISES"].evidence
    outcome = ChecklistResult(results, 1.0, "sandbox", 500)
    performance = outcome.categories().set_index("category").loc["performance"]
    assert performance["checks"] == 3 and performance["passed"] == 1
    assert {"X-HANGS", "X-RAISES"} <= set(outcome.summary()["failed_checks"])


def test_unknown_check_ids_and_categories_are_refused_by_name() -> None:
    from vextrus_nb.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown check or category: SVC-NOPE, securty"):
        checks.select(ids=["SVC-NOPE"], categories=["securty"])


def test_the_catalogue_is_data_every_check_fully_described() -> None:
    catalogue = checks.catalogue()
    assert len(catalogue) >= 20
    assert len({c.id for c in catalogue}) == len(catalogue)
    assert {c.category for c in catalogue} == set(checks.CATEGORY_WEIGHTS)
    assert sum(checks.CATEGORY_WEIGHTS.values()) == 100
    for check in catalogue:
        assert all(check.describe().values()), check.id
