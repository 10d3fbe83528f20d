"""Security hardening, read statically from the deployment files the environment names."""

from __future__ import annotations

import re

from vextrus_nb.checks import deployment_files
from vextrus_nb.checks.context import CheckContext
from vextrus_nb.checks.deployment_files import DeploymentFiles, Workload
from vextrus_nb.checks.model import Finding, Outcome, check

SECRET_LIKE = re.compile(
    r"pass(word|wd)?\b|pass(word|wd)?_|_pass$|pwd|secret|token|credential"
    r"|(^|_)key$|api_?key|access_?key|private_?key",
    re.I,
)
# Names that merely describe a secret's handling, not hold one (REFRESH_TOKEN_TTL, JWT_SECRET_ALGORITHM).
NOT_A_SECRET = re.compile(
    r"_(ttl|expires_in|expiry|length|algorithm|header|enabled|user|username|name)$", re.I
)
CREDENTIALS_IN_URL = re.compile(r"://[^/:@\s]+:[^@\s]+@")
INTERNAL_ENTRYPOINTS = frozenset({"traefik", "ping", "metrics"})
_ENTRYPOINT_OPTION = re.compile(r"^--entrypoints\.([^.=]+)\.(.+?)(?:=(.*))?$", re.I)


def _files(ctx: CheckContext) -> DeploymentFiles:
    return ctx.once("deployment-files", lambda: deployment_files.load(ctx.env))


def component_of(workload: Workload, ctx: CheckContext) -> str | None:
    """The inventory component a workload runs, by name (vextrus-finance, finance-service) or image."""
    base = workload.name.split("/")[0].lower()
    for candidate in (
        base,
        base.removeprefix("vextrus-"),
        base.removesuffix("-service"),
        base.removeprefix("vextrus-").removesuffix("-service"),
    ):
        if candidate in ctx.inventory.components:
            return candidate
    image = (workload.image or "").lower()
    for name in ("traefik", "elasticsearch"):
        if name in image.rsplit("/", 1)[-1]:
            return name
    return None


def _deployed(ctx: CheckContext) -> list[Workload]:
    """Workloads that start with a plain `up` / apply; opt-in dev tools are judged by SEC-DEV-TOOLS."""
    return [w for w in _files(ctx).workloads if w.enabled_by_default]


def _scope(ctx: CheckContext, workloads: list[Workload]) -> str:
    return f"{len(workloads)} workloads in {len(_files(ctx).files)} file(s)"


@check(
    "SEC-LITERAL-SECRETS",
    "security",
    "critical",
    title="No literal secrets in the deployment files",
    probes="environment variables whose names say password/secret/token/key, in every workload",
    criterion="each is a reference (${VAR}, a *_FILE path, a secretKeyRef), never a literal value",
    remediation="Move the value to the secret store (.env outside git, Docker secrets, a Kubernetes Secret), "
    "reference it, and rotate it (`vextrus-nb run secrets/rotate`): it has been in the file's history.",
)
async def literal_secrets(ctx: CheckContext) -> Outcome:
    workloads = _files(ctx).workloads
    findings = []
    for w in workloads:
        for var in w.env:
            if not var.literal:
                continue
            if SECRET_LIKE.search(var.name) and not NOT_A_SECRET.search(var.name):
                findings.append(Finding(w.name, f"{var.name} has a literal value in {w.source}"))
            elif CREDENTIALS_IN_URL.search(w.env_value(var.name) or ""):
                findings.append(
                    Finding(w.name, f"{var.name} embeds a literal password in a URL in {w.source}")
                )
    return Outcome.of(f"{_scope(ctx, list(workloads))}: {len(findings)} literal secret(s)", findings)


def _tag_problem(image: str | None) -> str | None:
    if not image:
        return "no image"
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"{image} has no tag (pulls latest)"
    if last.rsplit(":", 1)[1] == "latest":
        return f"{image} uses the latest tag"
    return None


@check(
    "SEC-IMAGE-TAGS",
    "security",
    "high",
    title="Every image is pinned (no latest, no missing tag)",
    probes="the image of every workload",
    criterion="a version tag other than latest, or a digest",
    remediation="Pin the version that runs today (docker inspect / kubectl get pod -o jsonpath) "
    "and upgrade on purpose; `latest` changes under you on the next pull.",
)
async def image_tags(ctx: CheckContext) -> Outcome:
    workloads = [w for w in _files(ctx).workloads if not (w.built_locally and not w.image)]
    findings = [Finding(w.name, p) for w in workloads if (p := _tag_problem(w.image)) is not None]
    return Outcome.of(f"{_scope(ctx, workloads)}: {len(findings)} unpinned", findings)


@check(
    "SEC-LIMITS",
    "security",
    "high",
    title="Resource limits on every workload",
    probes="deploy.resources.limits (compose) or resources.limits (Kubernetes) of every workload",
    criterion="both a CPU and a memory limit",
    remediation="Set limits from the service's observed peak plus headroom; without them one leaking "
    "service starves the rest (the reference documents' OOM finding).",
)
async def resource_limits(ctx: CheckContext) -> Outcome:
    workloads = _deployed(ctx)
    findings = []
    for w in workloads:
        missing = [k for k, v in (("cpu", w.cpu_limit), ("memory", w.memory_limit)) if not v]
        if missing:
            findings.append(Finding(w.name, f"no {' or '.join(missing)} limit in {w.source}"))
    return Outcome.of(f"{_scope(ctx, workloads)}: {len(findings)} without limits", findings)


@check(
    "SEC-HEALTHCHECKS",
    "security",
    "high",
    title="A healthcheck on every workload",
    probes="healthcheck (compose) or readinessProbe and livenessProbe (Kubernetes) of every long-running "
    "workload (Jobs and CronJobs run to completion)",
    criterion="defined and not disabled",
    remediation="Add a healthcheck on the service's /health/ready (liveness on /health/live); without it "
    "the orchestrator routes traffic to, and never restarts, a broken container.",
)
async def healthchecks(ctx: CheckContext) -> Outcome:
    workloads = _deployed(ctx)
    findings = [
        Finding(
            w.name,
            f"no {'readinessProbe and livenessProbe' if w.platform == 'kube' else 'healthcheck'} "
            f"in {w.source}",
        )
        for w in workloads
        if not w.healthcheck and w.long_running
    ]
    return Outcome.of(f"{_scope(ctx, workloads)}: {len(findings)} without a healthcheck", findings)


def _traefiks(ctx: CheckContext) -> list[Workload]:
    return [w for w in _deployed(ctx) if component_of(w, ctx) == "traefik"]


def _option_value(args: tuple[str, ...], option: str) -> str | None:
    """The value of a Traefik CLI option (`--api.insecure=true`; a bare flag means true).
    Given twice, the last one is the one Traefik uses."""
    found = None
    for arg in args:
        name, sep, value = arg.partition("=")
        if name.lower() == option.lower():
            found = value if sep else "true"
    return found


@check(
    "SEC-TRAEFIK-INSECURE",
    "security",
    "critical",
    title="Traefik's API is not in insecure mode",
    probes="Traefik's command line and TRAEFIK_API_INSECURE",
    criterion="--api.insecure is absent or false",
    remediation="Set --api.insecure=false and expose the dashboard through a router with authentication "
    "(basicAuth or forwardAuth to the auth service) on the TLS entrypoint.",
)
async def traefik_insecure(ctx: CheckContext) -> Outcome:
    traefiks = _traefiks(ctx)
    if not traefiks:
        return Outcome.not_applicable("no Traefik in the deployment files")
    findings = []
    for w in traefiks:
        value = _option_value(w.args, "--api.insecure") or w.env_value("TRAEFIK_API_INSECURE")
        if value is not None and value.lower() == "true":
            findings.append(
                Finding(
                    w.name,
                    f"--api.insecure=true in {w.source}: the dashboard and API are "
                    "open without authentication",
                )
            )
    return Outcome.of(f"{len(traefiks)} Traefik workload(s) read", findings)


def _entrypoints(args: tuple[str, ...]) -> dict[str, dict[str, str]]:
    points: dict[str, dict[str, str]] = {}
    for arg in args:
        match = _ENTRYPOINT_OPTION.match(arg)
        if match:
            name, option, value = match.group(1).lower(), match.group(2).lower(), match.group(3) or "true"
            points.setdefault(name, {})[option] = value
    return points


@check(
    "SEC-TLS",
    "security",
    "critical",
    title="TLS on every external entrypoint",
    probes="Traefik's --entrypoints.* options",
    criterion="every entrypoint other than the internal traefik/ping/metrics ones terminates TLS "
    "(http.tls) or redirects to one that does",
    remediation="Add a websecure entrypoint on :443 with http.tls.certresolver, and redirect web "
    "(:80) to it with http.redirections.entrypoint.to=websecure.",
)
async def tls_entrypoints(ctx: CheckContext) -> Outcome:
    traefiks = _traefiks(ctx)
    if not traefiks:
        return Outcome.not_applicable("no Traefik in the deployment files")
    findings, seen = [], []
    for w in traefiks:
        points = _entrypoints(w.args)
        external = {n: o for n, o in points.items() if n not in INTERNAL_ENTRYPOINTS}
        if not external:
            findings.append(Finding(w.name, "no entrypoint declared: Traefik's default :80 is plain HTTP"))
        secure = {n for n, o in external.items() if any(k.startswith("http.tls") for k in o)}
        for name, options in sorted(external.items()):
            seen.append(f"{name} {options.get('address', '?')}")
            redirect = options.get("http.redirections.entrypoint.to", "").lower()
            if name not in secure and redirect not in secure:
                address = options.get("address", "?")
                findings.append(
                    Finding(f"{w.name}:{name}", f"entrypoint {name} ({address}) serves plain HTTP")
                )
    return Outcome.of(f"entrypoints: {', '.join(seen) or 'none'}", findings)


@check(
    "SEC-ES-SECURITY",
    "security",
    "high",
    title="Elasticsearch security enabled",
    probes="xpack.security.enabled of the Elasticsearch workload",
    criterion='set explicitly to "true"',
    remediation="Set xpack.security.enabled=true with TLS on the HTTP layer and an ELASTIC_PASSWORD by "
    "reference; the audit service's logs are readable by anyone who can reach :9200 otherwise.",
)
async def elasticsearch_security(ctx: CheckContext) -> Outcome:
    nodes = [w for w in _deployed(ctx) if component_of(w, ctx) == "elasticsearch"]
    if not nodes:
        return Outcome.not_applicable("no Elasticsearch in the deployment files")
    findings = []
    for w in nodes:
        value = w.env_value("xpack.security.enabled")
        if (value or "").lower() != "true":
            shown = f"set to {value}" if value is not None else "not set"
            findings.append(Finding(w.name, f"xpack.security.enabled {shown} in {w.source}"))
    return Outcome.of(f"{len(nodes)} Elasticsearch workload(s) read", findings)


@check(
    "SEC-DEV-TOOLS",
    "security",
    "high",
    title="Developer tools are not deployed by default",
    probes="adminer, kafka-ui, redis-commander and verdaccio in the deployment files",
    criterion="compose: only behind a profile (opt-in); Kubernetes: absent from production manifests",
    remediation="Put the tool under `profiles: [dev]` (compose) or delete its manifest from production; "
    "adminer and redis-commander give anyone who reaches them the databases.",
)
async def dev_tools(ctx: CheckContext) -> Outcome:
    tools = {c.name for c in ctx.inventory.components.values() if c.kind == "dev_tool"}
    found = [(w, n) for w in _files(ctx).workloads if (n := component_of(w, ctx)) in tools]
    findings = []
    for w, _ in found:
        if w.platform == "compose" and w.enabled_by_default:
            findings.append(Finding(w.name, f"starts by default (no profile) in {w.source}"))
        elif w.platform == "kube" and ctx.env.production:
            findings.append(Finding(w.name, f"deployed to production by {w.source}"))
    return Outcome.of(f"{len(found)} developer tool(s) in the files, {len(findings)} exposed", findings)
