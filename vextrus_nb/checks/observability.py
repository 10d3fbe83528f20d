"""Observability: every service can be scraped, and the monitoring stack is up."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from vextrus_nb.checks.context import CheckContext, components_answer, describe_error
from vextrus_nb.checks.model import Finding, Outcome, check

MONITORING_STACK = ("prometheus", "grafana", "signoz")


@check(
    "OBS-METRICS",
    "observability",
    "high",
    title="Every service exposes /metrics",
    probes="GET the metrics path of every service and parse it as Prometheus exposition text",
    criterion="HTTP 200 and at least one metric family parses",
    remediation="Add @willsoto/nestjs-prometheus (or prom-client) to the service and expose /metrics; "
    "without it, error rates and latency are invisible to Prometheus and to triage.",
)
async def metrics(ctx: CheckContext) -> Outcome:
    services = ctx.services()

    async def scrape(name: str, path: str) -> str | None:
        try:
            response = await ctx.http(name, path)
        except Exception as exc:
            return describe_error(exc, ctx.timeout_s)
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        try:
            families = list(text_string_to_metric_families(response.text))
        except Exception as exc:  # the parser raises ValueError and friends on bad text
            return f"not Prometheus exposition text ({describe_error(exc, ctx.timeout_s)})"
        return None if families else "no metric families"

    problems = await asyncio.gather(*(scrape(s.name, s.metrics_path or "/metrics") for s in services))
    findings = [Finding(s.name, p) for s, p in zip(services, problems, strict=True) if p is not None]
    return Outcome.of(f"{len(services) - len(findings)} of {len(services)} services expose metrics", findings)


@check(
    "OBS-STACK",
    "observability",
    "medium",
    title="The monitoring stack is up",
    probes="the health endpoints of Prometheus, Grafana and SigNoz",
    criterion="each answers healthy",
    remediation="Restart the failed component (deploy phase 4); alerts do not fire while Prometheus is down.",
)
async def monitoring_stack(ctx: CheckContext) -> Outcome:
    return await components_answer(ctx, MONITORING_STACK, "monitoring")
