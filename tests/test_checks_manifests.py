"""The manifests checks (reference plan, week 7) on files: the sandbox's hardened k8s variant
passes each, the planted one fails each naming its workloads, and each failure also comes
from a minimal edit of the hardened files (one policy, one securityContext, one HPA...).
With the sandbox environment naming its k8s files beside the compose file, the planted
variant yields exactly the compose file's findings plus these."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from vextrus_nb import checks
from vextrus_nb.checks import ChecklistResult
from vextrus_nb.config import Environment, load_environment, load_inventory
from vextrus_nb.sandbox import manager

from .test_checks_static import (
    DEPLOYMENT_FILE_CHECKS,
    PLANTED_FINDINGS,
    PLANTED_KUBE_FINDINGS,
    PLANTED_LITERALS,
)

REPO = Path(__file__).resolve().parent.parent
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
VARIANTS = REPO / "deploy" / "sandbox"
MANIFEST_CHECKS = (
    "SEC-NETPOL-DEFAULT-DENY",
    "SEC-RUN-AS-NON-ROOT",
    "SEC-READONLY-ROOTFS",
    "PERF-HPA",
    "INF-PDB",
    "INF-PGBOUNCER",
)


def run(env: Environment, ids: tuple[str, ...] = MANIFEST_CHECKS) -> ChecklistResult:
    return checks.run_checklist(env, load_inventory(), checks.select(ids=ids))


def findings(result: ChecklistResult) -> set[tuple[str, str]]:
    return {(r.check.id, f.subject) for r in result.results for f in r.findings}


def reading(deployment: dict[str, str]) -> Environment:
    return load_environment("sandbox", load_inventory()).model_copy(update={"deployment": deployment})


def test_the_hardened_manifests_pass_every_manifests_check(sandbox_files: Path) -> None:
    result = run(reading({"kube_manifests": str(VARIANTS / "hardened" / "k8s")}))
    assert {r.check.id: r.status for r in result.results} == dict.fromkeys(MANIFEST_CHECKS, "passed"), (
        result.findings()
    )
    assert (
        "default deny Egress+Ingress, 34 allow policies, 34 workloads"
        in result.result("SEC-NETPOL-DEFAULT-DENY").evidence
    )  # 33 components and PgBouncer, each with its policy (the drill's is production's)


def test_the_planted_manifests_fail_every_manifests_check_naming_the_workloads(sandbox_files: Path) -> None:
    result = run(reading({"kube_manifests": str(VARIANTS / "planted" / "k8s")}))
    assert {r.check.id for r in result.failed} == set(MANIFEST_CHECKS)
    assert findings(result) == PLANTED_KUBE_FINDINGS
    netpol = result.result("SEC-NETPOL-DEFAULT-DENY").findings[0].detail
    assert "no default-deny NetworkPolicy for Ingress and Egress" in netpol
    [bypass] = result.result("INF-PGBOUNCER").findings
    assert "17 services connect straight to PostgreSQL" in bypass.detail
    for check_id in MANIFEST_CHECKS:  # each remediation cites the reference documents
        assert "reference" in result.result(check_id).check.remediation


def test_compose_only_is_not_applicable_and_no_files_is_an_error(sandbox_files: Path, tmp_path: Path) -> None:
    compose = run(reading({"compose_file": str(VARIANTS / "hardened" / "docker-compose.yml")}))
    assert {r.status for r in compose.results} == {"not_applicable"}
    assert "names no Kubernetes manifests" in compose.results[0].evidence
    nothing = run(reading({}))
    assert {r.status for r in nothing.results} == {"error"}
    assert "names no deployment files" in nothing.results[0].evidence
    empty = tmp_path / "k8s"
    empty.mkdir()
    missing = run(reading({"kube_manifests": str(empty)}))
    assert {r.status for r in missing.results} == {"error"}
    assert "no Kubernetes manifests (*.yaml)" in missing.results[0].evidence


# -- each failure from a minimal edit of the hardened files -----------------------------------

Documents = list[dict[str, Any]]
Edit = Callable[[dict[str, Documents]], None]


@functools.cache
def _hardened_text() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((VARIANTS / "hardened" / "k8s").glob("*.yaml"))}


def hardened_documents() -> dict[str, Documents]:
    """A fresh copy of the hardened variant's documents, to edit."""
    return {name: list(yaml.load_all(text, Loader=LOADER)) for name, text in _hardened_text().items()}


def find(files: dict[str, Documents], kind: str, name: str) -> dict[str, Any]:
    return next(
        d for docs in files.values() for d in docs if d["kind"] == kind and d["metadata"]["name"] == name
    )


def drop(files: dict[str, Documents], kind: str, name: str) -> None:
    for documents in files.values():
        documents[:] = [d for d in documents if not (d["kind"] == kind and d["metadata"]["name"] == name)]


def pod(files: dict[str, Documents], kind: str, name: str) -> dict[str, Any]:
    return find(files, kind, name)["spec"]["template"]["spec"]


def container(files: dict[str, Documents], kind: str, name: str) -> dict[str, Any]:
    return pod(files, kind, name)["containers"][0]


def database_at(name: str, variable: str, value: str) -> Edit:
    """The service's database address replaced by DATABASE_HOST or DATABASE_URL = value."""

    def edit(files: dict[str, Documents]) -> None:
        env = container(files, "Deployment", name)["env"]
        env[:] = [e for e in env if e["name"] not in ("DATABASE_HOST", "DATABASE_PORT")]
        env.append({"name": variable, "value": value})

    return edit


def security_context(kind: str, name: str, **settings: Any) -> Edit:
    return lambda files: container(files, kind, name)["securityContext"].update(settings)


def spec(kind: str, name: str, **settings: Any) -> Edit:
    return lambda files: find(files, kind, name)["spec"].update(settings)


def dropped(kind: str, name: str) -> Edit:
    return lambda files: drop(files, kind, name)


def ingress_only_deny(files: dict[str, Documents]) -> None:
    find(files, "NetworkPolicy", "default-deny-all")["spec"]["policyTypes"] = ["Ingress"]


def unguarded_init_container(files: dict[str, Documents]) -> None:
    pod(files, "Deployment", "auth")["initContainers"] = [
        {
            "name": "migrate",
            "image": "registry.vextrus.internal/vextrus/auth:1.8.0",
            "securityContext": {"runAsUser": 0},
        }
    ]


def no_security_context(files: dict[str, Documents]) -> None:
    del pod(files, "StatefulSet", "redis")["securityContext"]["runAsNonRoot"]
    del container(files, "StatefulSet", "redis")["securityContext"]["runAsNonRoot"]


def hpa_on_another_deployment(files: dict[str, Documents]) -> None:
    find(files, "HorizontalPodAutoscaler", "finance")["spec"]["scaleTargetRef"]["name"] = "finance-v2"


def no_pgbouncer(files: dict[str, Documents]) -> None:
    drop(files, "Deployment", "pgbouncer")
    drop(files, "Service", "pgbouncer")


NETPOL, ROOT, READONLY = "SEC-NETPOL-DEFAULT-DENY", "SEC-RUN-AS-NON-ROOT", "SEC-READONLY-ROOTFS"
HPA, PDB, DEPLOYMENT = "HorizontalPodAutoscaler", "PodDisruptionBudget", "Deployment"
FINANCE = "k8s/phase-6-core-services.yaml (Deployment finance)"
SECRET_URL = "postgres://svc_hr:hunter2hunter2@postgres.vextrus.svc:5432/hr"


@pytest.mark.parametrize(
    ("edit", "check_id", "subject", "says"),
    [
        (dropped("NetworkPolicy", "default-deny-all"), NETPOL, "vextrus",
         "no default-deny NetworkPolicy for Ingress and Egress"),
        (ingress_only_deny, NETPOL, "vextrus", "for Egress (podSelector {}, no rules): every pod reaches"),
        (dropped("NetworkPolicy", "finance-allow"), NETPOL, "finance", "no allow NetworkPolicy selects it"),
        (security_context(DEPLOYMENT, "finance", runAsNonRoot=False), ROOT, "finance",
         f"runAsNonRoot: false in {FINANCE}"),
        (no_security_context, ROOT, "redis", "runAsNonRoot not set"),
        (security_context("StatefulSet", "postgres", runAsUser=0), ROOT, "postgres", "runAsUser: 0 (root)"),
        (unguarded_init_container, f"{ROOT},{READONLY}", "auth/migrate", "runAsUser: 0"),
        (security_context(DEPLOYMENT, "traefik", readOnlyRootFilesystem=False), READONLY, "traefik",
         "readOnlyRootFilesystem is not true"),
        (dropped(HPA, "workflow"), "PERF-HPA", "workflow",
         "no HorizontalPodAutoscaler targets Deployment workflow"),
        (spec(HPA, "auth", minReplicas=1), "PERF-HPA", "auth", "has minReplicas 1"),
        (hpa_on_another_deployment, "PERF-HPA", "finance",
         "no HorizontalPodAutoscaler targets Deployment finance"),
        (dropped(PDB, "scheduler"), "INF-PDB", "scheduler",
         "no PodDisruptionBudget selects Deployment scheduler"),
        (spec(PDB, "auth", maxUnavailable=0), "INF-PDB", "auth", "no node drain can ever evict a pod"),
        (spec(PDB, "master-data", maxUnavailable="100%"), "INF-PDB", "master-data",
         "every pod may be evicted"),
        (no_pgbouncer, "INF-PGBOUNCER", "pgbouncer", "no PgBouncer workload"),
        (database_at("finance", "DATABASE_HOST", "postgres"), "INF-PGBOUNCER", "finance",
         f"DATABASE_HOST postgres in {FINANCE}: straight to PostgreSQL"),
        (database_at("hr", "DATABASE_URL", SECRET_URL), "INF-PGBOUNCER", "hr",
         "DATABASE_HOST postgres.vextrus.svc"),
    ],
)  # fmt: skip
def test_each_manifests_check_fails_on_its_fault(
    sandbox_files: Path, tmp_path: Path, edit: Edit, check_id: str, subject: str, says: str
) -> None:
    files = hardened_documents()
    edit(files)
    folder = tmp_path / "k8s"
    folder.mkdir()
    for name, documents in files.items():
        (folder / name).write_text(yaml.dump_all(documents, Dumper=DUMPER, sort_keys=False))
    result = run(reading({"kube_manifests": str(folder)}))
    assert findings(result) == {(c, subject) for c in check_id.split(",")}, result.findings()
    first = check_id.split(",")[0]
    assert says in " | ".join(f.detail for f in result.result(first).findings)
    assert "hunter2hunter2" not in json.dumps(result.to_json()) + result.to_junit()


# -- the sandbox environment naming its k8s files --------------------------------------------


def sandbox_with_manifests() -> Environment:
    """The sandbox environment as it reads once parameters/environments/sandbox.yaml names
    `kube_manifests: "{sandbox_dir}/deploy/k8s"` beside its compose file."""
    env = load_environment("sandbox", load_inventory())
    deployment = {**env.deployment, "kube_manifests": "{sandbox_dir}/deploy/k8s"}
    return env.model_copy(update={"deployment": deployment})


STATIC = (*DEPLOYMENT_FILE_CHECKS, *MANIFEST_CHECKS)


def test_the_sandbox_variants_with_their_manifests(sandbox_files: Path) -> None:
    manager.use_deployment("planted", sandbox_files)
    planted = run(sandbox_with_manifests(), STATIC)
    assert findings(planted) == PLANTED_FINDINGS | PLANTED_KUBE_FINDINGS
    assert "SEC-TLS" in {r.check.id for r in planted.results if r.passed}
    text = json.dumps(planted.to_json()) + planted.to_junit()
    assert not [s for s in PLANTED_LITERALS if s in text], "a planted secret's value reached the evidence"

    manager.use_deployment("hardened", sandbox_files)
    try:
        hardened = run(sandbox_with_manifests(), STATIC)
        assert {r.check.id: r.status for r in hardened.results} == dict.fromkeys(STATIC, "passed"), (
            hardened.findings()
        )
        # SEC-LIMITS and the others now count the k8s workloads too: 36 compose services, 34 pods.
        assert "in 9 file(s)" in hardened.result("SEC-LIMITS").evidence
    finally:
        manager.use_deployment("planted", sandbox_files)
