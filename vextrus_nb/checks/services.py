"""Service health monitoring: the Terminus endpoints of every service, and federation."""

from __future__ import annotations

import asyncio
from typing import Any

from vextrus_nb.checks.context import CheckContext, describe_error
from vextrus_nb.checks.model import Finding, Outcome, check
from vextrus_nb.probes import ProbeResult

# Indicator names that mean "this checks a datastore or broker" in a Terminus body.
DATASTORE_INDICATORS = frozenset(
    {"database", "db", "typeorm", "postgres", "postgresql", "redis", "cache", "elasticsearch",
     "kafka", "rabbitmq", "minio", "temporal", "eventstore", "mongodb"}
)  # fmt: skip
GATEWAY_QUERY = "query VextrusChecklist { _gateway { subgraphs { name url status } } }"


def terminus_problem(result: ProbeResult) -> str | None:
    """Why an answer is not a healthy Terminus answer (200, status ok, empty error map), or None."""
    if result.status == "down" and result.http_status is None:
        return result.detail
    if result.http_status != 200:
        return result.detail
    body = result.body
    if body is None:
        return "HTTP 200 but not a Terminus JSON body"
    if str(body.get("status", "")).lower() != "ok":
        return f"status {body.get('status')!r}"
    if body.get("error"):
        return f"error map not empty: {', '.join(sorted(body['error']))}"
    return None


async def _terminus_everywhere(ctx: CheckContext, check: str) -> Outcome:
    services = ctx.services()
    results = await asyncio.gather(*(ctx.probe(s.name, check) for s in services))
    findings = [Finding(r.component, p) for r in results if (p := terminus_problem(r)) is not None]
    path = services[0].health_paths[check] if services else check
    return Outcome.of(
        f"{len(services) - len(findings)} of {len(services)} services answer {path} ok", findings
    )


_REMEDIATION = (
    "Read the failing indicator in the body (error map), then the service's log and its datastore "
    "credentials; fix the dependency first, then restart the service."
)


@check(
    "SVC-HEALTH",
    "services",
    "critical",
    title="Every service's /health answers ok",
    probes="GET /health on every service",
    criterion="HTTP 200, Terminus status ok, empty error map",
    remediation=_REMEDIATION,
)
async def health(ctx: CheckContext) -> Outcome:
    return await _terminus_everywhere(ctx, "health")


@check(
    "SVC-READY",
    "services",
    "critical",
    title="Every service's /health/ready answers ok",
    probes="GET /health/ready on every service",
    criterion="HTTP 200, Terminus status ok, empty error map",
    remediation=_REMEDIATION,
)
async def ready(ctx: CheckContext) -> Outcome:
    return await _terminus_everywhere(ctx, "ready")


@check(
    "SVC-LIVE",
    "services",
    "high",
    title="Every service's /health/live answers ok",
    probes="GET /health/live on every service",
    criterion="HTTP 200, Terminus status ok, empty error map",
    remediation="A failing liveness probe gets the pod restarted: read the service's log for a hung "
    "event loop or an exhausted heap before it is restarted away.",
)
async def live(ctx: CheckContext) -> Outcome:
    return await _terminus_everywhere(ctx, "live")


def _datastore_indicators(body: dict[str, Any], dependencies: set[str]) -> list[str]:
    keys: set[str] = set()
    for section in ("info", "error", "details"):
        value = body.get(section)
        if isinstance(value, dict):
            keys |= set(value)
    return sorted(k for k in keys if k.lower() in DATASTORE_INDICATORS or k in dependencies)


@check(
    "SVC-LIVE-INDEPENDENT",
    "services",
    "high",
    title="Liveness does not depend on datastores",
    probes="the indicators listed in every service's /health/live body",
    criterion="no database, cache or broker indicator in a liveness answer",
    remediation="Move datastore indicators to /health/ready; a liveness probe that checks the database "
    "restarts every pod when the database blips, turning a short outage into a long one.",
)
async def liveness_independent(ctx: CheckContext) -> Outcome:
    services = ctx.services()
    results = await asyncio.gather(*(ctx.probe(s.name, "live") for s in services))
    findings, judged = [], 0
    for service, result in zip(services, results, strict=True):
        if result.body is None:
            continue  # no body to read: SVC-LIVE reports it
        judged += 1
        dependencies = {d.name for d in ctx.inventory.infrastructure_dependencies(service.name)}
        coupled = _datastore_indicators(result.body, dependencies)
        if coupled:
            findings.append(Finding(service.name, f"liveness checks {', '.join(coupled)}"))
    unjudged = len(services) - judged
    evidence = f"{judged - len(findings)} of {judged} liveness answers list no datastore" + (
        f"; {unjudged} gave no body to read" if unjudged else ""
    )
    return Outcome.of(evidence, findings)


@check(
    "FED-SUBGRAPHS",
    "services",
    "critical",
    title="The gateway answers GraphQL and lists every subgraph, each up",
    probes="POST /graphql on the gateway: _gateway { subgraphs { name url status } }",
    criterion="a data answer; every subgraph the inventory names is listed with status up",
    remediation="Start the missing subgraph services (deploy phase 6), then restart the gateway so it "
    "composes the supergraph again.",
)
async def federation(ctx: CheckContext) -> Outcome:
    gateways = [c for c in ctx.services() if c.subgraphs]
    if not gateways:
        return Outcome.not_applicable("no federation gateway in the environment")
    findings, evidence = [], []
    for gateway in gateways:
        try:
            response = await ctx.http(gateway.name, "/graphql", "POST", json={"query": GATEWAY_QUERY})
            body = response.json()
        except Exception as exc:
            findings.append(
                Finding(gateway.name, f"GraphQL did not answer: {describe_error(exc, ctx.timeout_s)}")
            )
            continue
        listed = {
            s.get("name"): s
            for s in (((body.get("data") or {}).get("_gateway") or {}).get("subgraphs") or [])
            if isinstance(s, dict)
        }
        if response.status_code != 200 or not listed:
            errors = "; ".join(e.get("message", "?") for e in body.get("errors") or [])
            findings.append(Finding(gateway.name, f"HTTP {response.status_code}, no subgraph list {errors}"))
            continue
        for name in gateway.subgraphs:
            if name not in listed:
                findings.append(Finding(name, f"not registered with {gateway.name}"))
            elif listed[name].get("status") != "up":
                findings.append(
                    Finding(name, f"registered with {gateway.name} but {listed[name].get('status')}")
                )
        evidence.append(
            f"{gateway.name}: {len(listed)} subgraph(s) listed, {len(gateway.subgraphs)} expected"
        )
    return Outcome.of("; ".join(evidence) or "no gateway answered", findings)
