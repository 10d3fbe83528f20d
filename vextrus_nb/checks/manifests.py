"""The Kubernetes manifests against the reference plan's week 7: default-deny NetworkPolicy,
HPAs for the core services, PodDisruptionBudgets, runAsNonRoot and read-only root
filesystems, a PgBouncer in front of PostgreSQL.

Each check reads the manifests the environment names (deployment.kube_manifests) and is
not applicable when it names none: a compose-only environment has no pods to judge. Files
named but missing or broken are an error, as for the other static checks.
"""

from __future__ import annotations

from typing import Any

from vextrus_nb.checks import deployment_files
from vextrus_nb.checks.context import CheckContext
from vextrus_nb.checks.deployment_files import ContainerSecurity, DeploymentFiles, KubeObject, KubePod
from vextrus_nb.checks.model import Finding, Outcome, check
from vextrus_nb.checks.security import component_of

# Where the reference documents say what these checks ask for (../shared/reference).
PLAN = "reference plan h-implement-production-readiness"
POLICY_TYPES = ("Ingress", "Egress")
OPEN_WITHOUT_DENY = {
    "Ingress": "accepts connections from anywhere in the cluster",
    "Egress": "reaches anything",
}
POOLER_NAME = "pgbouncer"


def _manifests(ctx: CheckContext) -> DeploymentFiles | None:
    """The deployment files when they include Kubernetes manifests; None for compose only.
    Files named but missing or malformed are an error here as in every static check."""
    files: DeploymentFiles = ctx.once("deployment-files", lambda: deployment_files.load(ctx.env))
    return files if files.kube_manifests is not None else None


NO_MANIFESTS = "the environment names no Kubernetes manifests (deployment.kube_manifests)"


def _namespace(item: KubePod | KubeObject, ctx: CheckContext) -> str:
    """Where kubectl applies it: its own namespace, else the environment's, else default."""
    return item.namespace or ctx.env.deployment.get("namespace") or "default"


def selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and matchExpressions) selects these labels;
    an empty selector selects every pod."""
    selector = selector or {}
    if any(labels.get(k) != str(v) for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = [str(v) for v in expression.get("values") or []]
        present = key in labels
        if (
            (operator == "In" and labels.get(key) not in values)
            or (operator == "NotIn" and present and labels[key] in values)
            or (operator == "Exists" and not present)
            or (operator == "DoesNotExist" and present)
        ):
            return False
    return True


def _container_label(pod: KubePod, container: ContainerSecurity) -> str:
    """The container as the other static checks name it: the workload, or workload/container."""
    main = [c for c in pod.containers if not c.init]
    if not container.init and len(main) == 1:
        return pod.name
    return f"{pod.name}/{container.name}"


def _component(pod: KubePod, ctx: CheckContext) -> str | None:
    return component_of(pod.workloads[0], ctx) if pod.workloads else None


# -- network policies ----------------------------------------------------------------------


def _denied_types(policy: KubeObject) -> set[str]:
    """The policy types a policy denies namespace-wide: it selects every pod ({}) and has
    no rule for the type. Without policyTypes, Kubernetes assumes Ingress (plus Egress when
    egress rules are given), so such a policy denies ingress only."""
    spec = policy.spec
    selector = spec.get("podSelector") or {}
    if selector.get("matchLabels") or selector.get("matchExpressions"):
        return set()
    types = spec.get("policyTypes") or ["Ingress", *(["Egress"] if "egress" in spec else [])]
    return {t for t in types if t in POLICY_TYPES and not spec.get(t.lower())}


def _is_allow(policy: KubeObject) -> bool:
    return bool(policy.spec.get("ingress") or policy.spec.get("egress"))


@check(
    "SEC-NETPOL-DEFAULT-DENY",
    "security",
    "high",
    title="A default-deny NetworkPolicy, and allow policies for every workload",
    probes="the NetworkPolicies in the manifests, against the pod templates' labels",
    criterion="in every namespace with workloads, a policy with podSelector {} and policyTypes "
    "Ingress and Egress and no rules; under it, every workload selected by an allow policy",
    remediation=f"Add the default-deny policy of the {PLAN}, week 7 day 7 'Network Policies' "
    "(k8s/network-policies/deny-all.yaml: podSelector {}, policyTypes [Ingress, Egress]), then one "
    "allow policy per workload naming who may reach it and what it reaches (auth-service-network-"
    "policy there). `python -m vextrus_nb.deploy.manifests` writes both from the inventory.",
)
async def network_policies(ctx: CheckContext) -> Outcome:
    files = _manifests(ctx)
    if files is None:
        return Outcome.not_applicable(NO_MANIFESTS)
    if not files.pods:
        return Outcome.not_applicable("no workloads in the Kubernetes manifests")
    policies = files.objects("NetworkPolicy")
    findings, evidence = [], []
    for namespace in sorted({_namespace(p, ctx) for p in files.pods}):
        here = [p for p in policies if _namespace(p, ctx) == namespace]
        denied = set().union(*(_denied_types(p) for p in here))
        missing = [t for t in POLICY_TYPES if t not in denied]
        allows = [p for p in here if _is_allow(p)]
        pods = [p for p in files.pods if _namespace(p, ctx) == namespace]
        evidence.append(
            f"namespace {namespace}: default deny {'+'.join(sorted(denied)) or 'none'}, "
            f"{len(allows)} allow policies, {len(pods)} workloads"
        )
        if missing:
            exposure = " and ".join(OPEN_WITHOUT_DENY[t] for t in missing)
            findings.append(
                Finding(
                    namespace,
                    f"no default-deny NetworkPolicy for {' and '.join(missing)} (podSelector {{}}, "
                    f"no rules): every pod {exposure}",
                )
            )
            continue  # without the deny, an uncovered pod is open rather than cut off
        for pod in pods:
            if not any(selects(p.spec.get("podSelector"), pod.labels) for p in allows):
                findings.append(
                    Finding(
                        pod.name,
                        f"no allow NetworkPolicy selects it ({pod.source}): the default deny cuts it off",
                    )
                )
    return Outcome.of("; ".join(evidence), findings)


# -- pod security contexts ----------------------------------------------------------------


@check(
    "SEC-RUN-AS-NON-ROOT",
    "security",
    "high",
    title="Every container runs as non-root",
    probes="securityContext.runAsNonRoot and runAsUser of every pod and container (init containers "
    "included), the container's own over the pod's",
    criterion="runAsNonRoot: true, and no runAsUser: 0",
    remediation=f"Set runAsNonRoot: true and the image's user (runAsUser, fsGroup for its volumes) in "
    f"the pod's securityContext: the {PLAN}'s container strategy is 'Non-root user execution' "
    "(week 6, USER nodejs, uid 1001, in every Dockerfile); the reference documents make no exception "
    "for the datastores, whose official images run as their own users (postgres 70, redis 999).",
)
async def run_as_non_root(ctx: CheckContext) -> Outcome:
    files = _manifests(ctx)
    if files is None:
        return Outcome.not_applicable(NO_MANIFESTS)
    findings, count = [], 0
    for pod in files.pods:
        for container in pod.containers:
            count += 1
            label = _container_label(pod, container)
            if container.run_as_user == 0:
                findings.append(Finding(label, f"runAsUser: 0 (root) in {pod.source}"))
            elif container.run_as_non_root is None:
                findings.append(
                    Finding(
                        label,
                        f"runAsNonRoot not set in {pod.source}: it runs as its image's user, root "
                        "for most images",
                    )
                )
            elif not container.run_as_non_root:
                findings.append(Finding(label, f"runAsNonRoot: false in {pod.source}"))
    return Outcome.of(
        f"{count} containers in {len(files.pods)} workloads: {len(findings)} may run as root", findings
    )


@check(
    "SEC-READONLY-ROOTFS",
    "security",
    "medium",
    title="Every container's root filesystem is read-only",
    probes="securityContext.readOnlyRootFilesystem of every container (init containers included)",
    criterion="readOnlyRootFilesystem: true (what must write gets an emptyDir or a volume)",
    remediation=f"Set readOnlyRootFilesystem: true and mount an emptyDir where the process writes "
    "(/tmp, a run or cache directory) and a PersistentVolumeClaim for data: the "
    f"{PLAN}'s 'Minimal attack surface' (week 6, container strategy): a compromised process "
    "cannot rewrite the image's binaries or drop tools into it.",
)
async def read_only_root_filesystem(ctx: CheckContext) -> Outcome:
    files = _manifests(ctx)
    if files is None:
        return Outcome.not_applicable(NO_MANIFESTS)
    findings, count = [], 0
    for pod in files.pods:
        for container in pod.containers:
            count += 1
            if not container.read_only_root_filesystem:
                findings.append(
                    Finding(
                        _container_label(pod, container),
                        f"readOnlyRootFilesystem is not true in {pod.source}: the image's files are writable",
                    )
                )
    return Outcome.of(
        f"{count} containers in {len(files.pods)} workloads: {len(findings)} with a writable root filesystem",
        findings,
    )


# -- scaling and disruption -----------------------------------------------------------------


def core_services(ctx: CheckContext) -> set[str]:
    """The services the platform cannot do without: phase 6's, and the federation gateway."""
    return {c.name for c in ctx.inventory.services() if c.phase == 6 or c.subgraphs}


def _core_pods(files: DeploymentFiles, ctx: CheckContext) -> list[KubePod]:
    core = core_services(ctx)
    return [p for p in files.pods if p.long_running and _component(p, ctx) in core]


def _targets(hpa: KubeObject, pod: KubePod) -> bool:
    target = hpa.spec.get("scaleTargetRef") or {}
    return target.get("kind") == pod.kind and target.get("name") == pod.name


@check(
    "PERF-HPA",
    "performance",
    "high",
    title="A HorizontalPodAutoscaler for every core service",
    probes="the HorizontalPodAutoscalers in the manifests, against the Deployments of the phase-6 "
    "services and the federation gateway",
    criterion="each has an HPA in its namespace targeting its own workload, with minReplicas >= 2 and "
    "maxReplicas above it",
    remediation=f"Add an autoscaling/v2 HPA per core service as in the {PLAN}, week 7 days 8-9 "
    "'Performance Tuning' (k8s/hpa/auth-service-hpa.yaml: scaleTargetRef the service's Deployment, "
    "minReplicas 3, maxReplicas 20, CPU 70 % / memory 80 %): one pod is one node failure from an outage, "
    "and the 10,000 req/s gateway target needs room to scale.",
)
async def horizontal_pod_autoscalers(ctx: CheckContext) -> Outcome:
    files = _manifests(ctx)
    if files is None:
        return Outcome.not_applicable(NO_MANIFESTS)
    core = _core_pods(files, ctx)
    if not core:
        return Outcome.not_applicable("no core service (phase 6, the gateway) in the Kubernetes manifests")
    hpas = files.objects("HorizontalPodAutoscaler")
    findings = []
    for pod in core:
        mine = [h for h in hpas if _namespace(h, ctx) == _namespace(pod, ctx) and _targets(h, pod)]
        if not mine:
            findings.append(Finding(pod.name, f"no HorizontalPodAutoscaler targets {pod.kind} {pod.name}"))
            continue
        for hpa in mine:
            low = int(hpa.spec.get("minReplicas", 1))  # Kubernetes' default when absent
            high = int(hpa.spec.get("maxReplicas", 0))
            if low < 2:
                findings.append(
                    Finding(pod.name, f"{hpa.source} has minReplicas {low}: one pod, no redundancy")
                )
            if high <= low:
                findings.append(
                    Finding(pod.name, f"{hpa.source} has maxReplicas {high}: it cannot scale out")
                )
    workloads = {(p.kind, p.name) for p in files.pods}
    for hpa in hpas:
        target = hpa.spec.get("scaleTargetRef") or {}
        if (target.get("kind"), target.get("name")) not in workloads:
            findings.append(
                Finding(
                    hpa.name,
                    f"{hpa.source} targets {target.get('kind')} {target.get('name')}, which the manifests "
                    "do not define",
                )
            )
    return Outcome.of(f"{len(core)} core services, {len(hpas)} HPAs: {len(findings)} finding(s)", findings)


def _budget_problem(pdb: KubeObject, replicas: int) -> str | None:
    """What makes a PodDisruptionBudget useless (every pod evictable at once) or harmful (no
    drain can ever evict a pod); None when it keeps some pods and lets one go."""
    everything = f"{pdb.source}: every pod may be evicted at once"
    nothing = f"{pdb.source}: no node drain can ever evict a pod"
    least = pdb.spec.get("minAvailable")
    if least is not None:
        if str(least) in ("0", "0%"):
            return f"minAvailable {least} in {everything}"
        if str(least) == "100%" or (isinstance(least, int) and least >= replicas):
            return f"minAvailable {least} of {replicas} replicas in {nothing}"
    most = pdb.spec.get("maxUnavailable")
    if most is not None:
        if str(most) in ("0", "0%"):
            return f"maxUnavailable {most} in {nothing}"
        if str(most) == "100%" or (isinstance(most, int) and most >= replicas):
            return f"maxUnavailable {most} of {replicas} replicas in {everything}"
    return None


@check(
    "INF-PDB",
    "infrastructure",
    "medium",
    title="A PodDisruptionBudget for every replicated or core workload",
    probes="the PodDisruptionBudgets in the manifests, against the pod templates' labels",
    criterion="every workload with 2 or more replicas, and every core service, is selected by a PDB "
    "that keeps at least one pod and lets at least one be evicted",
    remediation=f"Add a policy/v1 PodDisruptionBudget (maxUnavailable: 1) selecting the workload's pods: "
    f"the {PLAN}'s rolling updates keep maxUnavailable 0 (week 6 day 3-4) and its HPAs keep 3 or more "
    "pods (week 7), but a node drain or a cluster upgrade evicts them all at once without a budget.",
)
async def pod_disruption_budgets(ctx: CheckContext) -> Outcome:
    files = _manifests(ctx)
    if files is None:
        return Outcome.not_applicable(NO_MANIFESTS)
    core = {p.name for p in _core_pods(files, ctx)}
    needing = [p for p in files.pods if p.long_running and ((p.replicas or 0) >= 2 or p.name in core)]
    if not needing:
        return Outcome.not_applicable("no replicated or core workload in the Kubernetes manifests")
    budgets = files.objects("PodDisruptionBudget")
    findings = []
    for pod in needing:
        mine = [
            b
            for b in budgets
            if _namespace(b, ctx) == _namespace(pod, ctx) and selects(b.spec.get("selector"), pod.labels)
        ]
        if not mine:
            findings.append(
                Finding(
                    pod.name,
                    f"no PodDisruptionBudget selects {pod.kind} {pod.name} ({pod.replicas} replicas)",
                )
            )
        for budget in mine:
            problem = _budget_problem(budget, pod.replicas or 1)
            if problem:
                findings.append(Finding(pod.name, problem))
    return Outcome.of(
        f"{len(needing)} replicated or core workloads, {len(budgets)} PDBs: {len(findings)} finding(s)",
        findings,
    )


# -- connection pooling ----------------------------------------------------------------------


def _is_pooler(pod: KubePod) -> bool:
    images = [w.image or "" for w in pod.workloads]
    return POOLER_NAME in pod.name.lower() or any(POOLER_NAME in i.rsplit("/", 1)[-1] for i in images)


def database_host(workload: deployment_files.Workload) -> str | None:
    """The host a service connects to, from DATABASE_HOST or DATABASE_URL; the URL's
    credentials are never kept."""
    host = workload.env_value("DATABASE_HOST")
    if host is None and (url := workload.env_value("DATABASE_URL")):
        authority = url.partition("://")[2].split("/", 1)[0]
        host = authority.rpartition("@")[2].split(":", 1)[0] or None
    return host


@check(
    "INF-PGBOUNCER",
    "infrastructure",
    "high",
    title="PgBouncer in front of PostgreSQL",
    probes="a PgBouncer workload and its Services in the manifests, and every database-backed "
    "service's DATABASE_HOST (or DATABASE_URL's host)",
    criterion="a PgBouncer workload exists and every service's database host is a Service (or the name) "
    "of it, not PostgreSQL's",
    remediation="Deploy PgBouncer with a Service and point the services' DATABASE_HOST at it: the "
    "reference production-readiness analysis' 'PostgreSQL + PgBouncer' (pool_mode transaction, "
    "max_client_conn 1000, default_pool_size 25) and the reference infrastructure gaps plan's mitigation "
    "for 'Database connection exhaustion', which every service's replicas times their pools reach long "
    "before max_connections.",
)
async def pgbouncer(ctx: CheckContext) -> Outcome:
    files = _manifests(ctx)
    if files is None:
        return Outcome.not_applicable(NO_MANIFESTS)
    with_database = {c.name for c in ctx.inventory.services() if c.database}
    clients = [
        w for p in files.pods if p.long_running for w in p.workloads if component_of(w, ctx) in with_database
    ]
    if not clients:
        return Outcome.not_applicable("no database-backed service in the Kubernetes manifests")
    poolers = [p for p in files.pods if _is_pooler(p)]
    if not poolers:
        return Outcome.of(
            f"{len(clients)} database-backed services, no PgBouncer",
            [
                Finding(
                    POOLER_NAME,
                    f"no PgBouncer workload in the manifests: {len(clients)} services connect straight "
                    "to PostgreSQL",
                )
            ],
        )
    hosts = {p.name for p in poolers} | {
        s.name
        for s in files.objects("Service")
        if s.spec.get("selector")
        and any(selects({"matchLabels": s.spec["selector"]}, p.labels) for p in poolers)
    }
    findings = []
    for workload in clients:
        host = database_host(workload)
        if host is None:
            findings.append(
                Finding(workload.name, f"no readable DATABASE_HOST or DATABASE_URL in {workload.source}")
            )
        elif host.split(".", 1)[0] not in hosts:
            findings.append(
                Finding(
                    workload.name,
                    f"DATABASE_HOST {host} in {workload.source}: straight to PostgreSQL, not through "
                    f"PgBouncer ({', '.join(sorted(hosts))})",
                )
            )
    return Outcome.of(
        f"{len(clients)} database-backed services, PgBouncer as {', '.join(sorted(hosts))}: "
        f"{len(findings)} bypass it",
        findings,
    )
