"""The project's alerting, both ways: the evidence exporter's gauges, the alert rules under
promtool, the scrape configuration built from the inventory, and end to end a real Prometheus
scraping a ledger's evidence and a real Alertmanager delivering a failed drill to a webhook."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from vextrus_nb.config import load_inventory
from vextrus_nb.errors import ConfigError
from vextrus_nb.evidence import ledger, metrics
from vextrus_nb.sandbox import observability, real_servers, supervisor

pytestmark = pytest.mark.servers

RULES = observability.rules_path()
RULE_TESTS = RULES.with_name("alerts.test.yml")
RPO_TARGET_S = 24 * 3600.0
ALERT_NAMES = [
    "VextrusDrDrillFailed",
    "VextrusDrDrillStale",
    "VextrusRpoExceeded",
    "VextrusWalArchiveBehind",
    "VextrusReadinessBelowThreshold",
    "VextrusEvidenceExporterDown",
    "VextrusCriticalComponentDown",
]


def wait(condition: Any, timeout: float, what: str) -> None:
    met, last = supervisor.wait_for(condition, timeout, interval=0.1)
    assert met, f"{what} not within {timeout}s (last error: {last!r})"


# -- ledgers as the runbooks leave them ---------------------------------------------------------


def _ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat(timespec="seconds")


def _run(
    outputs: Path,
    runbook: str,
    env: str,
    status: str,
    ended_at: str,
    summary: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append a run whose output notebook is sealed (it exists and hashes as recorded)."""
    run_id = f"r{len(ledger.read_entries(outputs)):04d}"
    notebook = outputs / env / "2026-12-01" / f"{run_id}.ipynb"
    notebook.parent.mkdir(parents=True, exist_ok=True)
    notebook.write_text(json.dumps({"cells": [], "metadata": {"run": run_id, "status": status}}))
    record = {
        "run_id": run_id,
        "runbook": runbook,
        "env": env,
        "status": status,
        "started_at": ended_at,
        "ended_at": ended_at,
        "summary": summary or {},
        "failures": [] if status == "passed" else [f"{runbook} {status}"],
        "output": str(notebook.relative_to(outputs)),
        "output_sha256": ledger.sha256_file(notebook),
    }
    return ledger.append_entry(record, outputs)


def _samples(outputs: Path, **kwargs: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The exporter's text, parsed back: (metric name, sorted labels) -> value."""
    text = metrics.exposition(outputs, RPO_TARGET_S, **kwargs).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _env(environment: str, **labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"environment": environment, **labels}.items()))


def _timestamp(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(entry["ended_at"]).timestamp()


# -- the exporter --------------------------------------------------------------------------------


def test_a_passing_drill_is_exported_with_its_time_and_every_kind_present(tmp_path: Path) -> None:
    drill = _run(tmp_path, "dr/drill", "staging", "passed", _ago(hours=2))
    backup = _run(tmp_path, "dr/backup", "staging", "passed", _ago(hours=3))
    _run(tmp_path, "verify/checklist", "staging", "passed", _ago(hours=1), {"score": 87.5})
    samples = _samples(tmp_path)
    assert samples[("vextrus_dr_drill_last_passed", _env("staging"))] == 1
    assert samples[("vextrus_dr_drill_last_run_timestamp_seconds", _env("staging"))] == _timestamp(drill)
    assert samples[("vextrus_backup_last_success_timestamp_seconds", _env("staging"))] == _timestamp(backup)
    assert samples[("vextrus_rpo_target_seconds", _env("staging"))] == RPO_TARGET_S
    assert samples[("vextrus_readiness_score", _env("staging"))] == 87.5
    for kind in metrics.evidence_kinds():
        assert samples[("vextrus_evidence_present", _env("staging", kind=kind))] == 1


def test_a_failing_drill_after_a_passing_one_is_exported_as_failed(tmp_path: Path) -> None:
    _run(tmp_path, "dr/drill", "staging", "passed", _ago(hours=5))
    failed = _run(tmp_path, "dr/drill", "staging", "failed", _ago(hours=1))
    _run(tmp_path, "dr/drill", "production", "passed", _ago(hours=1))
    samples = _samples(tmp_path)
    assert samples[("vextrus_dr_drill_last_passed", _env("staging"))] == 0
    assert samples[("vextrus_dr_drill_last_run_timestamp_seconds", _env("staging"))] == _timestamp(failed)
    assert samples[("vextrus_dr_drill_last_passed", _env("production"))] == 1


def test_no_drill_is_visible_as_absent_evidence_not_as_silence(tmp_path: Path) -> None:
    _run(tmp_path, "dr/backup", "staging", "passed", _ago(hours=1))
    samples = _samples(tmp_path)
    assert samples[("vextrus_evidence_present", _env("staging", kind="dr_drill"))] == 0
    assert samples[("vextrus_evidence_present", _env("staging", kind="backup"))] == 1
    names = {name for name, _ in samples}
    assert "vextrus_dr_drill_last_run_timestamp_seconds" not in names
    assert "vextrus_dr_drill_last_passed" not in names
    # an empty ledger still answers for the environments it is asked about
    empty = _samples(tmp_path / "empty", environments=["sandbox"])
    assert {
        labels: value for (name, labels), value in empty.items() if name == "vextrus_evidence_present"
    } == {_env("sandbox", kind=kind): 0 for kind in metrics.evidence_kinds()}


def test_only_sealed_passed_runs_count_and_an_unscored_checklist_says_nothing(tmp_path: Path) -> None:
    drill = _run(tmp_path, "dr/drill", "staging", "passed", _ago(hours=1))
    (tmp_path / drill["output"]).write_text("edited after sealing")  # no longer evidence
    _run(tmp_path, "dr/backup", "staging", "failed", _ago(hours=1))  # a failed backup is no backup
    _run(tmp_path, "verify/checklist", "staging", "failed", _ago(hours=3), {"score": 61.0})
    _run(tmp_path, "verify/checklist", "staging", "error", _ago(hours=1))  # died before scoring
    samples = _samples(tmp_path)
    assert samples[("vextrus_evidence_present", _env("staging", kind="dr_drill"))] == 0
    assert samples[("vextrus_evidence_present", _env("staging", kind="backup"))] == 0
    assert samples[("vextrus_readiness_score", _env("staging"))] == 61.0


# -- the rules under promtool ----------------------------------------------------------------------


def test_the_alert_rules_pass_promtool_check_and_a_broken_rule_is_rejected(tmp_path: Path) -> None:
    check = real_servers.promtool("check", "rules", str(RULES))
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {len(ALERT_NAMES)} rules found" in check.stdout
    broken = tmp_path / "alerts.yml"
    broken.write_text(
        RULES.read_text().replace("vextrus_dr_drill_last_passed == 0", "vextrus_dr_drill_last_passed ==")
    )
    rejected = real_servers.promtool("check", "rules", str(broken))
    assert rejected.returncode != 0
    assert "VextrusDrDrillFailed" in rejected.stdout + rejected.stderr


def test_the_rules_unit_tests_pass_and_a_wrong_expectation_fails(tmp_path: Path) -> None:
    passed = real_servers.promtool("test", "rules", str(RULE_TESTS))
    assert passed.returncode == 0 and "SUCCESS" in passed.stdout, passed.stdout + passed.stderr
    # The same tests against a drill that passed: "a failed drill alerts at once" must now fail.
    shutil.copy(RULES, tmp_path / RULES.name)
    flipped = RULE_TESTS.read_text().replace('values: "0x10"', 'values: "1x10"', 1)
    (tmp_path / RULE_TESTS.name).write_text(flipped)
    failed = real_servers.promtool("test", "rules", str(tmp_path / RULE_TESTS.name))
    assert failed.returncode != 0
    assert "a failed drill alerts at once" in failed.stdout + failed.stderr


def test_every_rule_is_unit_tested_firing_and_not_firing() -> None:
    rules = yaml.safe_load(RULES.read_text())
    assert sorted(r["alert"] for g in rules["groups"] for r in g["rules"]) == sorted(ALERT_NAMES)
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    cases = [
        case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]
    ]
    for name in ALERT_NAMES:
        outcomes = {bool(case["exp_alerts"]) for case in cases if case["alertname"] == name}
        assert outcomes == {True, False}, f"{name} is not tested both firing and not firing"


# -- the scrape configuration ----------------------------------------------------------------------


def test_scrape_config_labels_every_target_and_promtool_accepts_it(tmp_path: Path) -> None:
    inventory = load_inventory()
    ports = {c.name: c.port for c in inventory.components.values()}
    jobs = observability.scrape_configs(
        inventory,
        ports,
        prometheus_port=9090,
        alertmanager_port=9093,
        traefik_metrics_port=8082,
        evidence_address="127.0.0.1:9400",
        evidence_path="/metrics/evidence",
    )
    by_job = {job["job_name"]: job for job in jobs}
    services = {s.name for s in inventory.services()}
    assert set(by_job) == services | {"traefik", "prometheus", "alertmanager", "evidence"}
    for name, job in by_job.items():
        (static,) = job["static_configs"]
        assert static["labels"]["component"] == name
        assert static["targets"][0].startswith("127.0.0.1:")
    assert by_job["finance"]["static_configs"][0]["labels"]["criticality"] == "critical"
    assert by_job["crm"]["static_configs"][0]["labels"]["criticality"] == "low"
    assert by_job["evidence"]["metrics_path"] == "/metrics/evidence"
    assert by_job["traefik"]["static_configs"][0]["targets"] == ["127.0.0.1:8082"]
    config = tmp_path / "prometheus.yml"
    config.write_text(json.dumps(observability.prometheus_config(jobs, [RULES], alertmanager_port=9093)))
    check = real_servers.promtool("check", "config", str(config))
    assert check.returncode == 0, check.stdout + check.stderr


def test_nothing_but_loopback_is_configured(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        observability.scrape_configs(
            load_inventory(), {}, prometheus_port=9090, evidence_address="10.0.0.5:9400"
        )
    with pytest.raises(ConfigError, match="loopback"):
        observability.alertmanager_config("http://hooks.example.com/alert")
    # and a configuration Prometheus would refuse is caught before it starts: two jobs of one name
    config = tmp_path / "prometheus.yml"
    jobs = observability.scrape_configs(load_inventory(), {"auth": 3001}, prometheus_port=9090)
    config.write_text(json.dumps(observability.prometheus_config([*jobs, jobs[0]], [RULES])))
    refused = real_servers.promtool("check", "config", str(config))
    assert refused.returncode != 0 and "auth" in refused.stdout + refused.stderr


def test_alertmanager_restarts_on_the_port_it_is_given(tmp_path: Path) -> None:
    port = supervisor.free_port()
    first = observability.start_alertmanager_for(tmp_path, port=port)
    first.stop()
    assert not supervisor.port_open(port)
    with observability.start_alertmanager_for(tmp_path, "http://127.0.0.1:9/hook", port=port) as again:
        assert again.port == port
        status = httpx.get(f"{again.extra['url']}/api/v2/status", timeout=2).json()
        assert "http://127.0.0.1:9/hook" in status["config"]["original"]


# -- end to end: ledger -> exporter -> Prometheus -> Alertmanager -> webhook --------------------------


class _Serve(BaseHTTPRequestHandler):
    """GET: the evidence of server.outputs; POST: an Alertmanager notification, kept."""

    server: Any

    def do_GET(self) -> None:
        body = metrics.exposition(self.server.outputs, RPO_TARGET_S)
        self.send_response(200)
        self.send_header("Content-Type", metrics.CONTENT_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        with self.server.lock:
            self.server.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _http_server(**attributes: Any) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Serve)
    server.lock = threading.Lock()  # type: ignore[attr-defined]
    server.received = []  # type: ignore[attr-defined]
    for name, value in attributes.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """staging's newest drill failed; sandbox's passed an hour ago. A critical service is
    configured on a port where nothing listens."""
    root = tmp_path_factory.mktemp("alerting")
    outputs = root / "outputs"
    _run(outputs, "dr/drill", "staging", "failed", _ago(hours=1))
    _run(outputs, "dr/drill", "sandbox", "passed", _ago(hours=1))
    exporter = _http_server(outputs=outputs)
    webhook = _http_server()
    alertmanager = observability.start_alertmanager_for(root, f"http://127.0.0.1:{webhook.server_port}/hook")
    prometheus = None
    try:
        prometheus = observability.start_prometheus_for(
            root,
            {"finance": supervisor.free_port()},
            alertmanager_port=alertmanager.port,
            evidence_address=f"127.0.0.1:{exporter.server_port}",
            interval="1s",
        )
        yield {"prometheus": prometheus, "alertmanager": alertmanager, "webhook": webhook}
    finally:
        if prometheus is not None:
            prometheus.stop()
        alertmanager.stop()
        exporter.shutdown()
        webhook.shutdown()


def _api(server: real_servers.RealServer, path: str, **params: str) -> Any:
    response = httpx.get(f"{server.extra['url']}/api/v1/{path}", params=params, timeout=2)
    response.raise_for_status()
    return response.json()["data"]


def _rfc3339(text: str) -> datetime:
    """Prometheus' timestamps carry nanoseconds; Python reads microseconds."""
    return datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", text).replace("Z", "+00:00"))


def test_a_failed_drill_reaches_the_webhook_through_prometheus_and_alertmanager(
    stack: dict[str, Any],
) -> None:
    webhook = stack["webhook"]

    def delivered() -> list[dict[str, Any]]:
        with webhook.lock:
            notifications = list(webhook.received)
        return [
            alert
            for notification in notifications
            for alert in notification["alerts"]
            if alert["labels"].get("alertname") == "VextrusDrDrillFailed" and alert["status"] == "firing"
        ]

    wait(delivered, 30.0, "VextrusDrDrillFailed at the webhook")
    (alert,) = delivered()[:1]
    assert alert["labels"]["environment"] == "staging"
    assert alert["labels"]["severity"] == "critical"
    assert alert["labels"]["component"] == "evidence"
    assert "staging" in alert["annotations"]["summary"]


def test_a_passing_fresh_drill_does_not_alert_once_the_rules_have_seen_it(stack: dict[str, Any]) -> None:
    prometheus = stack["prometheus"]
    query = 'timestamp(vextrus_dr_drill_last_passed{environment="sandbox"} == 1)'

    def scraped_at() -> float | None:
        result = _api(prometheus, "query", query=query)["result"]
        return float(result[0]["value"][1]) if result else None

    wait(scraped_at, 30.0, "the sandbox's passing drill scraped")
    sample_time = datetime.fromtimestamp(scraped_at() or 0, UTC)

    def evidence_group() -> dict[str, Any]:
        (group,) = [g for g in _api(prometheus, "rules")["groups"] if g["name"] == "vextrus-evidence"]
        return group

    wait(lambda: _rfc3339(evidence_group()["lastEvaluation"]) > sample_time, 10.0, "a rule evaluation")
    (rule,) = [r for r in evidence_group()["rules"] if r["name"] == "VextrusDrDrillFailed"]
    assert rule["health"] == "ok", rule.get("lastError")
    failed_drills = [a["labels"]["environment"] for a in rule["alerts"]]
    assert failed_drills == ["staging"]  # the rule works, and the sandbox is not among them
    active = _api(prometheus, "alerts")["alerts"]
    assert not [
        a
        for a in active
        if a["labels"].get("environment") == "sandbox" and "Drill" in a["labels"]["alertname"]
    ]


def test_prometheus_scrapes_each_target_with_its_component_and_criticality(stack: dict[str, Any]) -> None:
    prometheus = stack["prometheus"]

    def targets() -> dict[str, dict[str, Any]]:
        active = _api(prometheus, "targets")["activeTargets"]
        return {t["labels"]["component"]: t for t in active if t["health"] != "unknown"}

    wait(
        lambda: {"finance", "evidence", "prometheus", "alertmanager"} <= set(targets()),
        30.0,
        "every target scraped",
    )
    seen = targets()
    assert seen["evidence"]["health"] == "up" and seen["evidence"]["labels"]["criticality"] == "high"
    assert seen["finance"]["health"] == "down"  # nothing listens there: the broken case, named
    assert seen["finance"]["labels"]["criticality"] == "critical"
    assert seen["alertmanager"]["health"] == "up"
    rules = {r["name"] for g in _api(prometheus, "rules")["groups"] for r in g["rules"]}
    assert rules == set(ALERT_NAMES)
