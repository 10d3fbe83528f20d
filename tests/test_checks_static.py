"""The static security checks over deployment files: the sandbox's planted
compose file yields exactly the planted findings, the hardened one none, and
each check fails on its own fault, in compose files and Kubernetes manifests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from vextrus_nb import checks
from vextrus_nb.checks import ChecklistResult
from vextrus_nb.config import Environment, load_environment, load_inventory
from vextrus_nb.sandbox import manager

REPO = Path(__file__).resolve().parent.parent
HARDENED = REPO / "deploy" / "sandbox" / "hardened" / "docker-compose.yml"
PLANTED_LITERALS = ("vextrus_dev_2024", "vextrus-jwt-s3cret-do-not-share")
TLS_OPTION = "--entrypoints.websecure.http.tls.certresolver=letsencrypt"
REDIRECT_OPTION = "--entrypoints.web.http.redirections.entrypoint.to=websecure"
PLANTED_FINDINGS = {
    ("SEC-LITERAL-SECRETS", "postgres"),
    ("SEC-LITERAL-SECRETS", "auth"),
    ("SEC-IMAGE-TAGS", "minio"),
    ("SEC-IMAGE-TAGS", "notification"),
    ("SEC-LIMITS", "document-generator"),
    ("SEC-HEALTHCHECKS", "import-export"),
    ("SEC-TRAEFIK-INSECURE", "traefik"),
    ("SEC-ES-SECURITY", "elasticsearch"),
    ("SEC-DEV-TOOLS", "adminer"),
}


# The security checks of deployment files (checks/security.py), this file's subject.
DEPLOYMENT_FILE_CHECKS = (
    "SEC-LITERAL-SECRETS",
    "SEC-IMAGE-TAGS",
    "SEC-LIMITS",
    "SEC-HEALTHCHECKS",
    "SEC-TRAEFIK-INSECURE",
    "SEC-TLS",
    "SEC-ES-SECURITY",
    "SEC-DEV-TOOLS",
)


# The manifests' own security checks (checks/manifests.py: runAsNonRoot, read-only root
# filesystems, NetworkPolicies), tested in test_checks_manifests.py; not applicable to compose.
MANIFEST_SECURITY_CHECKS = ("SEC-NETPOL-DEFAULT-DENY", "SEC-RUN-AS-NON-ROOT", "SEC-READONLY-ROOTFS")


CORE = ("auth", "master-data", "organization", "workflow", "rules-engine", "finance", "api-gateway")


def _planted_kube_findings() -> set[tuple[str, str]]:
    inventory = load_inventory()
    deployed = [c.name for c in inventory.components.values() if c.kind != "dev_tool"]
    services = [c.name for c in inventory.services()]
    return {
        ("SEC-NETPOL-DEFAULT-DENY", "vextrus"),
        *(("SEC-RUN-AS-NON-ROOT", n) for n in deployed),
        *(("SEC-READONLY-ROOTFS", n) for n in deployed),
        *(("PERF-HPA", n) for n in CORE),
        *(("INF-PDB", n) for n in services),  # every service runs 2 replicas
        ("INF-PGBOUNCER", "pgbouncer"),
    }


# What deploy/sandbox/planted/k8s adds to PLANTED_FINDINGS: the sandbox environment names it
# (deployment.kube_manifests); test_checks_manifests.py shows each.
PLANTED_KUBE_FINDINGS = _planted_kube_findings()


def security(env: Environment) -> ChecklistResult:
    """Every static security check: what the deployment files say, no live server asked."""
    return checks.run_checklist(
        env, load_inventory(), checks.select(ids=DEPLOYMENT_FILE_CHECKS + MANIFEST_SECURITY_CHECKS)
    )


def deployment_file_checks(env: Environment) -> ChecklistResult:
    return checks.run_checklist(env, load_inventory(), checks.select(ids=DEPLOYMENT_FILE_CHECKS))


def findings(result: ChecklistResult) -> set[tuple[str, str]]:
    return {(r.check.id, f.subject) for r in result.results for f in r.findings}


def with_files(tmp_path: Path, production: bool = False, **files: Any) -> Environment:
    """The sandbox environment reading deployment files written for this test."""
    deployment = {}
    if "compose" in files:
        path = tmp_path / "docker-compose.yml"
        path.write_text(yaml.safe_dump(files["compose"], sort_keys=False))
        deployment["compose_file"] = str(path)
    if "manifests" in files:
        folder = tmp_path / "k8s"
        folder.mkdir(parents=True)
        for name, documents in files["manifests"].items():
            (folder / name).write_text(yaml.safe_dump_all(documents, sort_keys=False))
        deployment["kube_manifests"] = str(folder)
    env = load_environment("sandbox", load_inventory())
    return env.model_copy(update={"deployment": deployment, "production": production})


def hardened_compose() -> dict[str, Any]:
    return yaml.safe_load(HARDENED.read_text())


def test_the_planted_files_yield_exactly_the_planted_findings(sandbox_files: Path) -> None:
    manager.use_deployment("planted", sandbox_files)
    result = security(load_environment("sandbox"))
    assert findings(result) == PLANTED_FINDINGS | {
        f for f in PLANTED_KUBE_FINDINGS if f[0] in MANIFEST_SECURITY_CHECKS
    }
    assert {r.check.id for r in result.results if r.passed} == {"SEC-TLS"}
    text = json.dumps(result.to_json()) + result.to_junit()
    assert not [s for s in PLANTED_LITERALS if s in text], "a planted secret's value reached the evidence"


def test_the_hardened_files_pass_every_static_check(sandbox_files: Path) -> None:
    manager.use_deployment("hardened", sandbox_files)
    try:
        result = security(load_environment("sandbox"))
        assert [r.check.id for r in result.failed] == [], result.findings()
        assert len(result.results) == 11
    finally:
        manager.use_deployment("planted", sandbox_files)


def test_unknown_deployment_variant_is_refused(sandbox_files: Path) -> None:
    from vextrus_nb.errors import SandboxError

    with pytest.raises(
        SandboxError, match="unknown deployment variant 'harden'; variants: planted, hardened"
    ):
        manager.use_deployment("harden", sandbox_files)


# -- each check, failing on its own fault (compose) ------------------------------------------


def edited(edit: Any) -> dict[str, Any]:
    compose = hardened_compose()
    edit(compose["services"])
    return compose


@pytest.mark.parametrize(
    ("check_id", "edit", "subject", "says"),
    [
        ("SEC-LITERAL-SECRETS", lambda s: s["redis"]["environment"].update(REDIS_PASSWORD="hunter2hunter2"),
         "redis", "REDIS_PASSWORD has a literal value"),
        ("SEC-LITERAL-SECRETS", lambda s: s["crm"].update(environment=["CRM_API_KEY=abc123abc123"]),
         "crm", "CRM_API_KEY has a literal value"),
        ("SEC-LITERAL-SECRETS", lambda s: s["hr"]["environment"].update(DB_URL="postgres://hr:pw12345@db/hr"),
         "hr", "DB_URL embeds a literal password"),
        ("SEC-IMAGE-TAGS", lambda s: s["scm"].update(image="registry.vextrus.internal:5000/vextrus/scm"),
         "scm", "has no tag"),
        ("SEC-IMAGE-TAGS", lambda s: s["grafana"].update(image="grafana/grafana:latest"),
         "grafana", "uses the latest tag"),
        ("SEC-LIMITS", lambda s: s["postgres"]["deploy"]["resources"]["limits"].pop("memory"),
         "postgres", "no memory limit"),
        ("SEC-HEALTHCHECKS", lambda s: s["kafka"]["healthcheck"].update(disable=True),
         "kafka", "no healthcheck"),
        ("SEC-TRAEFIK-INSECURE", lambda s: s["traefik"]["command"].append("--api.insecure"),
         "traefik", "--api.insecure=true"),
        ("SEC-TLS", lambda s: s["traefik"]["command"].remove(TLS_OPTION),
         "traefik:websecure,traefik:web", "serves plain HTTP"),  # web redirects to a plain one
        ("SEC-TLS", lambda s: s["traefik"]["command"].remove(REDIRECT_OPTION),
         "traefik:web", "entrypoint web (:80) serves plain HTTP"),
        ("SEC-ES-SECURITY", lambda s: s["elasticsearch"]["environment"].pop("xpack.security.enabled"),
         "elasticsearch", "not set"),
        ("SEC-DEV-TOOLS", lambda s: s["kafka-ui"].pop("profiles"),
         "kafka-ui", "starts by default"),
    ],
)  # fmt: skip
def test_each_static_check_fails_on_its_fault_in_a_compose_file(
    sandbox_files: Path, tmp_path: Path, check_id: str, edit: Any, subject: str, says: str
) -> None:
    result = security(with_files(tmp_path, compose=edited(edit)))
    assert findings(result) == {(check_id, s) for s in subject.split(",")}, result.findings()
    assert says in result.result(check_id).findings[0].detail


def test_references_are_not_literal_secrets(sandbox_files: Path, tmp_path: Path) -> None:
    def references(services: dict[str, Any]) -> None:
        services["crm"]["environment"] = [
            "CRM_API_KEY",  # passed through from the host's environment
            "CRM_TOKEN_TTL=15m",  # about a token, not one
            "CRM_DB_PASSWORD_FILE=/run/secrets/crm_db",
            "DATABASE_URL=postgres://crm:${CRM_DB_PASSWORD}@db/crm",
        ]

    result = security(with_files(tmp_path, compose=edited(references)))
    assert findings(result) == set()


def test_missing_or_broken_deployment_files_cannot_run_and_count_as_failed(
    sandbox_files: Path, tmp_path: Path
) -> None:
    env = load_environment("sandbox")
    nothing = security(env.model_copy(update={"deployment": {}}))
    assert {r.status for r in nothing.results} == {"error"}
    assert "names no deployment files" in nothing.results[0].evidence
    assert nothing.categories().set_index("category").loc["security", "category_score"] == 0

    gone = security(env.model_copy(update={"deployment": {"compose_file": str(tmp_path / "nope.yml")}}))
    assert "nope.yml not found" in gone.results[0].evidence
    broken = tmp_path / "broken.yml"
    broken.write_text("services:\n  auth: [unclosed\n")
    bad = security(env.model_copy(update={"deployment": {"compose_file": str(broken)}}))
    assert bad.results[0].status == "error" and "malformed YAML" in bad.results[0].evidence


# -- Kubernetes manifests ------------------------------------------------------------------------


def deployment(name: str, **container: Any) -> dict[str, Any]:
    spec = {
        "name": name,
        "image": f"registry.vextrus.internal/vextrus/{name}:1.8.0",
        "resources": {"limits": {"cpu": "500m", "memory": "512Mi"}},
        "readinessProbe": {"httpGet": {"path": "/health/ready", "port": 3000}},
        "livenessProbe": {"httpGet": {"path": "/health/live", "port": 3000}},
        "env": [{"name": "DATABASE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": name, "key": "db"}}}],
    } | container
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "vextrus"},
        "spec": {"template": {"spec": {"containers": [spec]}}},
    }


def traefik(*args: str) -> dict[str, Any]:
    base = deployment("traefik", image="traefik:v3.1.4")
    base["spec"]["template"]["spec"]["containers"][0]["args"] = list(args)
    return base


SECURE_TRAEFIK = (
    "--entrypoints.web.address=:80",
    "--entrypoints.web.http.redirections.entrypoint.to=websecure",
    "--entrypoints.websecure.address=:443",
    "--entrypoints.websecure.http.tls=true",
)


def test_clean_kubernetes_manifests_pass(sandbox_files: Path, tmp_path: Path) -> None:
    es = deployment("elasticsearch", image="docker.elastic.co/elasticsearch/elasticsearch:8.15.1")
    es["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "xpack.security.enabled", "value": "true"}
    )
    manifests = {"finance.yaml": [deployment("finance")], "edge.yaml": [traefik(*SECURE_TRAEFIK), es]}
    result = deployment_file_checks(with_files(tmp_path, production=True, manifests=manifests))
    assert [r.check.id for r in result.results if not r.passed] == [], result.findings()


def test_kubernetes_manifests_fail_each_check_naming_the_workload(
    sandbox_files: Path, tmp_path: Path
) -> None:
    literal = deployment("finance", env=[{"name": "JWT_SECRET", "value": "abcdefghijkl"}])
    unpinned = deployment("hr", image="vextrus/hr:latest")
    no_limits = deployment("scm", resources={})
    no_probes = deployment("crm")
    del no_probes["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    adminer = deployment("adminer", image="adminer:4.8.1")
    es = deployment("elasticsearch", image="docker.elastic.co/elasticsearch/elasticsearch:8.15.1")
    es["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "xpack.security.enabled", "value": "false"}
    )
    cron_container = deployment("nightly", image="vextrus/runbooks")["spec"]["template"]["spec"][
        "containers"
    ][0]
    del cron_container["readinessProbe"], cron_container["livenessProbe"]  # a batch job needs none
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [cron_container]}}}}},
    }  # fmt: skip
    manifests = {
        "apps.yaml": [literal, unpinned, no_limits, no_probes, cron],
        "edge.yaml": [traefik("--api.insecure=true", "--entrypoints.web.address=:80"), es],
        "tools.yaml": [adminer],
    }
    result = deployment_file_checks(with_files(tmp_path, production=True, manifests=manifests))
    assert findings(result) == {
        ("SEC-LITERAL-SECRETS", "finance"),
        ("SEC-IMAGE-TAGS", "hr"),
        ("SEC-IMAGE-TAGS", "nightly"),
        ("SEC-LIMITS", "scm"),
        ("SEC-HEALTHCHECKS", "crm"),
        ("SEC-TRAEFIK-INSECURE", "traefik"),
        ("SEC-TLS", "traefik:web"),
        ("SEC-ES-SECURITY", "elasticsearch"),
        ("SEC-DEV-TOOLS", "adminer"),
    }
    # The same developer tool outside production is allowed.
    staging = deployment_file_checks(with_files(tmp_path / "staging", manifests={"tools.yaml": [adminer]}))
    assert staging.result("SEC-DEV-TOOLS").passed


def test_an_alert_rules_file_that_is_not_one_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    """OBS-ALERT-RULES reads the rules file before it asks Prometheus: a file that is not a
    rules file is named as the finding (it once raised a TypeError from describe_error)."""
    rules = tmp_path / "alerts.yml"
    rules.write_text("groups: [just-a-name]\n")  # a group that is a string, not a mapping
    env = load_environment("sandbox", load_inventory())
    env = env.model_copy(update={"deployment": {"prometheus_rules": str(rules)}})
    result = checks.run_checklist(env, load_inventory(), checks.select(ids=("OBS-ALERT-RULES",)))
    (only,) = result.results
    assert only.status == "failed", only.evidence
    assert only.evidence.startswith("alerts.yml is not a rules file: TypeError: ")
    assert [f.subject for f in only.findings] == ["alerts.yml"]
