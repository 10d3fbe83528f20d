"""Observability: Prometheus scrapes every target, loads the project's alert rules and sends
alerts to an Alertmanager that sends them somewhere; every service can be scraped; the
monitoring stack is up."""

from __future__ import annotations

import asyncio
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from vextrus_nb.checks.context import CheckContext, describe_error
from vextrus_nb.checks.infrastructure import components_answer
from vextrus_nb.checks.model import Finding, Outcome, check
from vextrus_nb.config import resolve_path

MONITORING_STACK = ("prometheus", "grafana", "signoz")
# The project's alert rules (an environment may point elsewhere: deployment.prometheus_rules).
ALERT_RULES_FILE = "deploy/prometheus/alerts.yml"


# ---------------------------------------------------------------- Prometheus and Alertmanager
# First in the module: the catalogue lists a category's checks in the order they are registered,
# and it has always listed these before the services' metrics.


async def prometheus_api(ctx: CheckContext, path: str) -> Any:
    """The `data` of a Prometheus HTTP API answer; an error answer raises with its message."""
    response = await ctx.http("prometheus", path)
    response.raise_for_status()
    body = response.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{path}: {body.get('errorType', '?')}: {body.get('error', '?')}")
    return body["data"]


def target_name(target: dict[str, Any]) -> str:
    labels = target.get("labels", {})
    if component := labels.get("component"):
        return str(component)
    return f"{labels.get('job', '?')}/{labels.get('instance', target.get('scrapeUrl', '?'))}"


@check(
    "OBS-PROM-TARGETS",
    "observability",
    "high",
    title="Every Prometheus scrape target is up",
    probes="Prometheus GET /api/v1/targets?state=active",
    criterion="at least one active target, and every one's health is up",
    remediation="Open the target's scrape URL (its lastError says why); fix the service's /metrics or the "
    "scrape config. A target not yet scraped reads 'unknown' for a few seconds after Prometheus starts.",
)
async def prometheus_targets(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("prometheus"):
        return Outcome.not_applicable("the environment runs no Prometheus")
    try:
        data = await prometheus_api(ctx, "/api/v1/targets?state=active")
    except Exception as exc:
        detail = f"cannot read targets: {describe_error(exc, ctx.timeout_s)}"
        return Outcome.of(detail, [Finding("prometheus", detail)])
    targets = data.get("activeTargets", [])
    findings = [
        Finding(
            target_name(t),
            f"{t.get('health')}: {t.get('lastError') or 'not scraped yet'} ({t.get('scrapeUrl')})",
        )
        for t in targets
        if t.get("health") != "up"
    ]
    if not targets:
        findings.append(Finding("prometheus", "no active scrape target"))
    return Outcome.of(f"{len(targets) - len(findings)} of {len(targets)} scrape targets up", findings)


def alert_rules_file(ctx: CheckContext) -> Any:
    return resolve_path(ctx.env.deployment.get("prometheus_rules", ALERT_RULES_FILE))


def rule_group_names(path: Any) -> list[str]:
    document = yaml.safe_load(path.read_text()) or {}
    return [str(group["name"]) for group in document.get("groups") or [] if "name" in group]


@check(
    "OBS-ALERT-RULES",
    "observability",
    "high",
    title="The project's alert rules are loaded",
    probes=f"the rule groups of {ALERT_RULES_FILE} against Prometheus GET /api/v1/rules",
    criterion="every rule group of the file is loaded, and none has a rule in error",
    remediation=f"Add {ALERT_RULES_FILE} to Prometheus's rule_files (`promtool check rules` it first), "
    "then reload (POST /-/reload or SIGHUP).",
)
async def alert_rules(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("prometheus"):
        return Outcome.not_applicable("the environment runs no Prometheus")
    path = alert_rules_file(ctx)
    if not path.is_file():
        return Outcome.not_applicable(f"no alert rules file at {path}")
    try:
        wanted = rule_group_names(path)
    except (yaml.YAMLError, AttributeError, TypeError) as exc:
        detail = f"{path.name} is not a rules file: {describe_error(exc, ctx.timeout_s)}"
        return Outcome.of(detail, [Finding(path.name, detail)])
    try:
        data = await prometheus_api(ctx, "/api/v1/rules")
    except Exception as exc:
        detail = f"cannot read rules: {describe_error(exc, ctx.timeout_s)}"
        return Outcome.of(detail, [Finding("prometheus", detail)])
    loaded = {group["name"]: group for group in data.get("groups", [])}
    findings = [
        Finding(name, f"rule group not loaded by Prometheus (from {path.name})")
        for name in wanted
        if name not in loaded
    ]
    for name in wanted:
        broken = [
            r.get("name", "?") for r in loaded.get(name, {}).get("rules", []) if r.get("health") == "err"
        ]
        if broken:
            findings.append(Finding(name, f"rule(s) in error: {', '.join(broken)}"))
    present = [name for name in wanted if name in loaded]
    rules = sum(len(loaded[name].get("rules", [])) for name in present)
    evidence = f"{len(present)} of {len(wanted)} rule groups loaded ({rules} rules)"
    return Outcome.of(evidence, findings)


def receivers_with_integrations(config_text: str) -> tuple[str, list[str], list[str]]:
    """(the root route's receiver, receivers that send somewhere, receivers that send nowhere)
    of an Alertmanager configuration: a receiver with no *_configs is a blackhole."""
    config = yaml.safe_load(config_text) or {}
    default = str((config.get("route") or {}).get("receiver", "?"))
    sending: list[str] = []
    blackholes: list[str] = []
    for receiver in config.get("receivers") or []:
        integrations = [key for key, value in receiver.items() if key.endswith("_configs") and value]
        (sending if integrations else blackholes).append(str(receiver.get("name", "?")))
    return default, sending, blackholes


@check(
    "OBS-ALERTMANAGER",
    "observability",
    "high",
    title="Alerts reach an Alertmanager that sends them somewhere",
    probes="Prometheus GET /api/v1/alertmanagers; Alertmanager GET /api/v2/status (its configuration)",
    criterion="Prometheus has an active Alertmanager; the root route's receiver has an integration "
    "(webhook, e-mail, Slack...), not a blackhole",
    remediation="Add the Alertmanager to Prometheus's alerting.alertmanagers; give its root route a "
    "receiver with a webhook/e-mail/Slack config (amtool check-config), then reload both.",
)
async def alertmanager_configured(ctx: CheckContext) -> Outcome:
    prometheus, alertmanager = ctx.in_scope("prometheus"), ctx.in_scope("alertmanager")
    if not prometheus and not alertmanager:
        return Outcome.not_applicable("the environment runs neither Prometheus nor Alertmanager")
    findings, evidence = [], []
    if prometheus:
        try:
            data = await prometheus_api(ctx, "/api/v1/alertmanagers")
            active = [a.get("url", "?") for a in data.get("activeAlertmanagers", [])]
            evidence.append(f"Prometheus sends to {len(active)} Alertmanager(s) {', '.join(active)}".rstrip())
            if not active:
                dropped = len(data.get("droppedAlertmanagers", []))
                findings.append(
                    Finding("prometheus", f"no active Alertmanager ({dropped} dropped): alerts go nowhere")
                )
        except Exception as exc:
            findings.append(
                Finding("prometheus", f"cannot read alertmanagers: {describe_error(exc, ctx.timeout_s)}")
            )
    if alertmanager:
        try:
            response = await ctx.http("alertmanager", "/api/v2/status")
            response.raise_for_status()
            default, sending, blackholes = receivers_with_integrations(response.json()["config"]["original"])
            evidence.append(
                f"root receiver '{default}'; sending: {', '.join(sending) or 'none'}; "
                f"blackholes: {', '.join(blackholes) or 'none'}"
            )
            if default not in sending:
                findings.append(
                    Finding(
                        "alertmanager",
                        f"the root route's receiver '{default}' has no integration (a blackhole)",
                    )
                )
        except Exception as exc:
            findings.append(
                Finding("alertmanager", f"cannot read its status: {describe_error(exc, ctx.timeout_s)}")
            )
    else:
        evidence.append("the environment runs no Alertmanager")
    return Outcome.of("; ".join(evidence) or "nothing answered", findings)


# ---------------------------------------------------------------- services' metrics and the stack


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
