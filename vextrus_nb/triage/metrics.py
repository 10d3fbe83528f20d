"""What the services say about their own traffic (error rate and request latency, health and
metrics endpoints left out) and how far behind Kafka's consumer groups are.

Error rates: where Prometheus runs and has the services' series, PromQL `rate()` over the
triage window; otherwise (or for a service it has no series of) the service's own /metrics,
whose counters are totals since its process started, which the evidence then says.

Consumer lag: from the broker itself (the Kafka admin API: each group's committed offsets
against the partitions' high watermarks), plus kafka-exporter's series in Prometheus for any
group/topic the broker did not report (a broker this host cannot reach, another listener).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
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
# Infrastructure paths left out of PromQL as the scrape path leaves them out (a red readiness
# answering 503 is a health finding, not an error rate); a label a series lacks matches "".
_NOT_INFRASTRUCTURE = ",".join(f'{label}!~"(/health|/metrics).*"' for label in PATH_LABELS)


@dataclass(frozen=True)
class Traffic:
    service: str
    requests: float
    errors: float
    latency_sum_s: float
    latency_count: float
    period: str = "since start"  # what the request counts cover: since start, or a Prometheus window

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
            "counted": self.period,
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


def window_text(minutes: float) -> str:
    return f"{minutes:g} min"


def error_rate_queries(window_minutes: float) -> tuple[str, str]:
    """PromQL for each component's 5xx rate and its request rate over the window. `component` is
    the label a scrape config puts on a service's target, `job` the job named after it."""
    window = f"{round(window_minutes * 60)}s"
    errors = (
        f'sum by (component, job) (rate(http_requests_total{{code=~"5..",{_NOT_INFRASTRUCTURE}}}[{window}]))'
    )
    requests = f"sum by (component, job) (rate(http_requests_total{{{_NOT_INFRASTRUCTURE}}}[{window}]))"
    return errors, requests


async def _instant_query(ctx: TriageContext, query: str) -> list[dict[str, Any]]:
    response = await ctx.get("prometheus", "/api/v1/query", query=query)
    response.raise_for_status()
    return list(response.json().get("data", {}).get("result", []))


def _per_service(series: list[dict[str, Any]], services: set[str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for item in series:
        labels = item.get("metric", {})
        name = labels.get("component") or labels.get("job", "")
        if name in services:
            values[name] = values.get(name, 0.0) + float(item.get("value", [0, "0"])[1])
    return values


async def windowed_traffic(ctx: TriageContext, services: list[str]) -> tuple[dict[str, Traffic], str]:
    """Each service's requests and 5xx over the triage window, from Prometheus's rate(); empty
    where Prometheus is not in the environment, does not answer, or has no series of a service.
    The second value says why nothing came from Prometheus, if nothing did."""
    if not ctx.in_scope("prometheus"):
        return {}, "no Prometheus in this environment"
    errors_query, requests_query = error_rate_queries(ctx.settings.window_minutes)
    try:
        errors, requests = await asyncio.gather(
            _instant_query(ctx, errors_query), _instant_query(ctx, requests_query)
        )
    except Exception as exc:  # the scrapes still give the rates since start
        return {}, f"Prometheus did not answer ({describe_error(exc, ctx.settings.timeout_s)})"
    window_s = ctx.settings.window_minutes * 60
    wanted = set(services)
    error_rates, request_rates = _per_service(errors, wanted), _per_service(requests, wanted)
    period = f"last {window_text(ctx.settings.window_minutes)} (Prometheus rate())"
    traffic = {
        name: Traffic(name, rate * window_s, error_rates.get(name, 0.0) * window_s, 0.0, 0.0, period)
        for name, rate in request_rates.items()
    }
    return traffic, "" if traffic else "Prometheus has no http_requests_total series of the services"


def _merge(scraped: Traffic | None, windowed: Traffic | None) -> Traffic | None:
    """The window's counts where Prometheus has them, the scrape's latency (since start) always."""
    if scraped is None or windowed is None:
        return scraped or windowed
    return replace(windowed, latency_sum_s=scraped.latency_sum_s, latency_count=scraped.latency_count)


async def collect_metrics(ctx: TriageContext) -> CollectorReport:
    services = [s for s in ctx.services() if s.metrics_path]

    async def scrape(name: str, path: str) -> Traffic | str:
        try:
            response = await ctx.get(name, path)
            response.raise_for_status()
            return traffic_of(name, response.text)
        except Exception as exc:  # a service that cannot be scraped is already a health finding
            return describe_error(exc, ctx.settings.timeout_s)

    (windowed, no_window), answers = await asyncio.gather(
        windowed_traffic(ctx, [s.name for s in services]),
        asyncio.gather(*(scrape(s.name, s.metrics_path or "/metrics") for s in services)),
    )
    scraped = {s.name: a for s, a in zip(services, answers, strict=True) if isinstance(a, Traffic)}
    unscraped = {s.name: a for s, a in zip(services, answers, strict=True) if isinstance(a, str)}
    merged = (_merge(scraped.get(s.name), windowed.get(s.name)) for s in services)
    traffic = [t for t in merged if t is not None]
    signals: list[Signal] = []
    settings = ctx.settings
    for t in traffic:
        if t.requests >= settings.min_requests and t.error_rate >= settings.error_rate:
            counts = (
                f"{int(t.errors)} of {int(t.requests)}"
                if t.period == "since start"
                else f"about {t.errors:.0f} of {t.requests:.0f}"  # rate() x window: extrapolated
            )
            signals.append(
                Signal(
                    "error_rate",
                    t.service,
                    f"{counts} application requests answered 5xx {t.period}",
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
    error_rates_from = (
        f"error rates of {len(windowed)} from Prometheus over the last {window_text(settings.window_minutes)}"
        if windowed
        else f"error rates since start ({no_window})"
    )
    return CollectorReport(
        "metrics",
        detail=f"{len(scraped)} of {len(services)} services scraped; {error_rates_from}"
        + (f"; not scraped: {', '.join(sorted(unscraped))}" if unscraped else ""),
        signals=signals,
        data={"traffic": [t.as_row() for t in traffic], "unscraped": unscraped},
    )


# ---------------------------------------------------------------- Kafka consumer lag


@dataclass(frozen=True)
class GroupLag:
    group: str
    topic: str
    lag: int
    source: str  # broker | kafka-exporter

    def as_row(self) -> dict[str, Any]:
        return {"consumer group": self.group, "topic": self.topic, "lag": self.lag, "from": self.source}


def _kafka_reason(exc: BaseException) -> str:
    error = exc.args[0] if exc.args else None
    if error is not None and hasattr(error, "name") and hasattr(error, "str"):
        return f"{error.name()}: {error.str()}"
    return describe_error(exc)


def broker_lag(bootstrap: str, timeout: float) -> list[GroupLag]:
    """Every consumer group's lag per topic, asked of the broker: committed offsets
    (ListConsumerGroupOffsets, one group per request as librdkafka allows) against the
    partitions' high watermarks (ListOffsets latest). Partitions a group never committed are
    left out, as kafka-exporter leaves them out. Blocking: run it in a thread."""
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        listing = admin.list_consumer_groups(request_timeout=timeout).result(timeout + 1)
        if listing.errors and not listing.valid:  # librdkafka puts an unreachable broker here
            raise KafkaException(listing.errors[0])
        groups = sorted(g.group_id for g in listing.valid)
        if not groups:
            return []
        requests = [ConsumerGroupTopicPartitions(g) for g in groups]
        futures = {
            g: admin.list_consumer_group_offsets([r], request_timeout=timeout)[g]
            for g, r in zip(groups, requests, strict=True)
        }
        committed = {
            (g, tp.topic, tp.partition): tp.offset
            for g, future in futures.items()
            for tp in future.result(timeout + 1).topic_partitions or []
            if tp.offset >= 0
        }
        if not committed:
            return []
        partitions = {(topic, partition) for _, topic, partition in committed}
        latest = admin.list_offsets(
            {TopicPartition(t, p): OffsetSpec.latest() for t, p in partitions}, request_timeout=timeout
        )
        high = {(tp.topic, tp.partition): f.result(timeout + 1).offset for tp, f in latest.items()}
    except KafkaException as exc:
        raise ConnectionError(f"Kafka broker {bootstrap}: {_kafka_reason(exc)}") from None
    except TimeoutError:
        raise ConnectionError(f"Kafka broker {bootstrap} did not answer within {timeout:g} s") from None
    lag: dict[tuple[str, str], int] = {}
    for (group, topic, partition), offset in committed.items():
        lag[group, topic] = lag.get((group, topic), 0) + max(0, high[topic, partition] - offset)
    return [GroupLag(g, t, n, "broker") for (g, t), n in sorted(lag.items())]


async def exporter_lag(ctx: TriageContext) -> list[GroupLag]:
    """kafka-exporter's kafka_consumergroup_lag, where Prometheus has it."""
    series = await _instant_query(ctx, LAG_QUERY)
    return [
        GroupLag(
            item.get("metric", {}).get("consumergroup", "?"),
            item.get("metric", {}).get("topic", "?"),
            int(float(item.get("value", [0, "0"])[1])),
            "kafka-exporter",
        )
        for item in series
    ]


async def _lag_from(ctx: TriageContext, source: str) -> list[GroupLag] | str:
    """One source's lag, or why it gave none."""
    timeout = ctx.settings.timeout_s
    try:
        if source == "broker":
            host, port = ctx.where["kafka"]
            # Three rounds (groups, offsets, watermarks) inside the collector's deadline.
            return await asyncio.wait_for(
                asyncio.to_thread(broker_lag, f"{host}:{port}", timeout), 2 * timeout
            )
        return await exporter_lag(ctx)
    except Exception as exc:  # a source that cannot answer is evidence; the other may still
        return str(exc) if isinstance(exc, ConnectionError) else describe_error(exc, timeout)


async def collect_kafka_lag(ctx: TriageContext) -> CollectorReport:
    """Consumer lag per group and topic: the broker's, then kafka-exporter's for the rest."""
    if not ctx.in_scope("kafka"):
        return CollectorReport("kafka lag", "skipped", detail="no Kafka in this environment")
    # A simulated broker speaks no Kafka protocol: only Prometheus can be asked then.
    sources = [s for s in ("broker", "kafka-exporter") if s != "broker" or "kafka" not in ctx.env.simulated]
    if not ctx.in_scope("prometheus"):
        sources.remove("kafka-exporter")
    if not sources:
        return CollectorReport(
            "kafka lag", "skipped", detail="Kafka is simulated here and no Prometheus runs"
        )
    answers = dict(zip(sources, await asyncio.gather(*(_lag_from(ctx, s) for s in sources)), strict=True))
    failed = {s: a for s, a in answers.items() if isinstance(a, str)}
    rows: list[GroupLag] = []
    for answer in answers.values():  # the broker's first: it wins where both report a group/topic
        if isinstance(answer, list):
            seen = {(r.group, r.topic) for r in rows}
            rows += [r for r in answer if (r.group, r.topic) not in seen]
    signals = []
    for row in rows:
        if row.lag > ctx.settings.kafka_lag_max:
            owner = next((s.name for s in ctx.services() if row.group.startswith(s.name)), "kafka")
            signals.append(
                Signal(
                    "kafka_consumer_lag",
                    owner,
                    f"consumer group {row.group} is {row.lag} messages behind on {row.topic} "
                    f"(threshold {ctx.settings.kafka_lag_max}; from the {row.source})",
                    "kafka lag",
                    subject=f"{row.group}: {row.lag} messages",
                    magnitude=row.lag,
                )
            )
    asked = ", ".join(f"{s} ({'no answer: ' + failed[s] if s in failed else 'answered'})" for s in sources)
    return CollectorReport(
        "kafka lag",
        "error" if len(failed) == len(sources) else "ok",
        detail=f"{len(rows)} consumer group/topic lag figures; asked: {asked}",
        signals=signals,
        data={"lag": [r.as_row() for r in rows], "unanswered": failed},
    )
