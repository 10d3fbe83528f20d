"""What the services say about their own traffic (/metrics: error rate and
request latency, health and metrics endpoints left out) and Kafka consumer
lag where Prometheus has it (kafka-exporter's kafka_consumergroup_lag).

Counters are totals since each process started: one scrape gives rates since
start, which the evidence says; Prometheus gives windowed rates where it runs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from vextrus_nb.probes import describe_error
from vextrus_nb.triage.context import TriageContext
from vextrus_nb.triage.model import CollectorReport, Signal

# Label names the common Node exporters use (prom-client, express-prom-bundle, our sandbox).
PATH_LABELS = ("path", "route", "handler")
CODE_LABELS = ("code", "status", "status_code")
INFRASTRUCTURE_PATHS = ("/health", "/metrics")
LAG_QUERY = "sum by (consumergroup, topic) (kafka_consumergroup_lag)"


@dataclass(frozen=True)
class Traffic:
    service: str
    requests: float
    errors: float
    latency_sum_s: float
    latency_count: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def mean_latency_ms(self) -> float:
        return 1000 * self.latency_sum_s / self.latency_count if self.latency_count else 0.0

    def as_row(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "requests": int(self.requests),
            "5xx": int(self.errors),
            "error rate": f"{self.error_rate:.1%}",
            "mean latency (ms)": round(self.mean_latency_ms, 1),
        }


def _label(labels: dict[str, str], names: tuple[str, ...]) -> str:
    return next((labels[n] for n in names if n in labels), "")


def traffic_of(service: str, exposition: str) -> Traffic:
    """Application traffic in one /metrics answer (prometheus_client's parser, not a regex)."""
    requests = errors = latency_sum = latency_count = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if _label(sample.labels, PATH_LABELS).startswith(INFRASTRUCTURE_PATHS):
                continue
            if family.type == "counter" and sample.name.endswith("_total") and "request" in family.name:
                requests += sample.value
                if _label(sample.labels, CODE_LABELS).startswith("5"):
                    errors += sample.value
            elif family.type == "histogram" and "duration" in family.name:
                if sample.name.endswith("_sum"):
                    latency_sum += sample.value
                elif sample.name.endswith("_count"):
                    latency_count += sample.value
    return Traffic(service, requests, errors, latency_sum, latency_count)


async def collect_metrics(ctx: TriageContext) -> CollectorReport:
    services = [s for s in ctx.services() if s.metrics_path]

    async def scrape(name: str, path: str) -> Traffic | str:
        try:
            response = await ctx.get(name, path)
            response.raise_for_status()
            return traffic_of(name, response.text)
        except Exception as exc:  # a service that cannot be scraped is already a health finding
            return describe_error(exc, ctx.settings.timeout_s)

    answers = await asyncio.gather(*(scrape(s.name, s.metrics_path or "/metrics") for s in services))
    traffic = [a for a in answers if isinstance(a, Traffic)]
    unscraped = {s.name: a for s, a in zip(services, answers, strict=True) if isinstance(a, str)}
    signals: list[Signal] = []
    settings = ctx.settings
    for t in traffic:
        if t.requests >= settings.min_requests and t.error_rate >= settings.error_rate:
            signals.append(
                Signal(
                    "error_rate",
                    t.service,
                    f"{int(t.errors)} of {int(t.requests)} application requests answered 5xx since start",
                    "metrics",
                    subject=f"{t.error_rate:.0%}",
                    magnitude=t.error_rate,
                )
            )
        if t.latency_count >= settings.min_requests and t.mean_latency_ms > settings.latency_budget_ms:
            signals.append(
                Signal(
                    "slow_requests",
                    t.service,
                    f"mean {t.mean_latency_ms:.0f} ms over {int(t.latency_count)} requests since start "
                    f"(budget {settings.latency_budget_ms:g} ms)",
                    "metrics",
                    subject=f"{t.mean_latency_ms:.0f} ms",
                    magnitude=t.mean_latency_ms,
                )
            )
    return CollectorReport(
        "metrics",
        detail=f"{len(traffic)} of {len(services)} services scraped"
        + (f"; not scraped: {', '.join(sorted(unscraped))}" if unscraped else ""),
        signals=signals,
        data={"traffic": [t.as_row() for t in traffic], "unscraped": unscraped},
    )


async def collect_kafka_lag(ctx: TriageContext) -> CollectorReport:
    """Consumer lag per group and topic from Prometheus (kafka-exporter), where both run."""
    names = {c.name for c in ctx.components()}
    if "kafka" not in names or "prometheus" not in names:
        return CollectorReport("kafka lag", "skipped", detail="no Kafka or no Prometheus in this environment")
    response = await ctx.get("prometheus", "/api/v1/query", query=LAG_QUERY)
    response.raise_for_status()
    series = response.json().get("data", {}).get("result", [])
    rows, signals = [], []
    for item in series:
        labels, lag = item.get("metric", {}), float(item.get("value", [0, "0"])[1])
        group, topic = labels.get("consumergroup", "?"), labels.get("topic", "?")
        rows.append({"consumer group": group, "topic": topic, "lag": int(lag)})
        if lag > ctx.settings.kafka_lag_max:
            owner = next((s.name for s in ctx.services() if group.startswith(s.name)), "kafka")
            signals.append(
                Signal(
                    "kafka_consumer_lag",
                    owner,
                    f"consumer group {group} is {int(lag)} messages behind on {topic} "
                    f"(threshold {ctx.settings.kafka_lag_max})",
                    "kafka lag",
                    subject=f"{group}: {int(lag)} messages",
                    magnitude=lag,
                )
            )
    return CollectorReport(
        "kafka lag",
        detail=f"{len(rows)} consumer group/topic series from Prometheus",
        signals=signals,
        data={"lag": rows},
    )
