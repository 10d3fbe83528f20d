"""Triage's metrics collectors against real servers: consumer-group lag asked of a real
Kafka-protocol broker (Tansu), error rates from a real Prometheus's rate() over the triage
window, each healthy and broken. Every wait polls a condition to a deadline."""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from vextrus_nb.config import Environment, Inventory, load_inventory
from vextrus_nb.evidence import scrub
from vextrus_nb.sandbox import real_servers, supervisor
from vextrus_nb.sandbox.real_servers import RealServer
from vextrus_nb.triage.context import TriageContext, TriageSettings
from vextrus_nb.triage.metrics import collect_kafka_lag, collect_metrics
from vextrus_nb.triage.model import CollectorReport

pytestmark = pytest.mark.servers

# Generous against a loaded machine; a low lag threshold so a small seeded lag is a finding.
SETTINGS = TriageSettings(timeout_s=5.0, kafka_lag_max=10)


def seed_consumer_lag(bootstrap: str, group: str, topic: str, produced: int, committed: int) -> None:
    """`produced` messages on partition 0 of `topic` (created if missing) and `group`'s offset
    committed at `committed`, without joining the group (Tansu takes seconds to form one).
    One message per produce request: Tansu's high watermark advances by one per record batch,
    so batched records would make it count fewer messages than were written."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic not in admin.list_topics(timeout=5).topics:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for n in range(produced):
        producer.produce(topic, f"event {n}".encode(), partition=0)
        producer.flush(10)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, committed)], asynchronous=False)
    finally:
        consumer.close()
    del admin, producer  # Tansu waits ~5 s on open client connections before it stops


def environment(inventory: Inventory, ports: dict[str, int], **fields: object) -> Environment:
    """Only the named components are in scope, each at its port."""
    document = {
        "name": "triage-metrics-test",
        "driver": "local",
        "ports": ports,
        "exclude": sorted(set(inventory.components) - set(ports)),
        **fields,
    }
    return Environment.model_validate(document)


def collect(
    env: Environment,
    inventory: Inventory,
    collector: Callable[[TriageContext], Awaitable[CollectorReport]],
    settings: TriageSettings = SETTINGS,
) -> CollectorReport:
    async def run() -> CollectorReport:
        async with httpx.AsyncClient() as client:
            now = datetime.now(UTC)
            ctx = TriageContext.open(env, inventory, settings, client, 8, scrub.Scrubber(), now)
            return await collector(ctx)

    return asyncio.run(run())


def poll(condition: Callable[[], object], timeout: float, what: str) -> None:
    met, last = supervisor.wait_for(condition, timeout, interval=0.2)
    assert met, f"{what} not within {timeout} s (last error: {last!r})"


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory()


# ---------------------------------------------------------------- consumer lag from the broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_servers.running("kafka", tmp_path_factory.mktemp("tansu")) as server:
        yield server


def test_lag_is_read_from_the_broker_and_attributed_to_the_service(
    broker: RealServer, inventory: Inventory
) -> None:
    bootstrap = broker.extra["bootstrap"]
    seed_consumer_lag(bootstrap, "finance-ledger", "vextrus.finance.events", produced=25, committed=5)
    seed_consumer_lag(bootstrap, "hr-sync", "vextrus.hr.events", produced=3, committed=3)
    env = environment(inventory, {"kafka": broker.port, "finance": 1, "hr": 2})

    report = collect(env, inventory, collect_kafka_lag)

    assert report.status == "ok", report.detail
    rows = {(r["consumer group"], r["topic"]): (r["lag"], r["from"]) for r in report.data["lag"]}
    assert rows == {
        ("finance-ledger", "vextrus.finance.events"): (20, "broker"),
        ("hr-sync", "vextrus.hr.events"): (0, "broker"),  # caught up: a figure, no finding
    }
    [signal] = report.signals
    assert (signal.symptom, signal.component, signal.magnitude) == ("kafka_consumer_lag", "finance", 20)
    assert "finance-ledger is 20 messages behind on vextrus.finance.events" in signal.evidence


def test_a_stopped_broker_is_reported_by_the_collector(tmp_path: Path, inventory: Inventory) -> None:
    server = real_servers.start_tansu(tmp_path)
    server.stop()
    env = environment(inventory, {"kafka": server.port, "finance": 1})

    report = collect(env, inventory, collect_kafka_lag, TriageSettings(timeout_s=1.0))

    assert report.status == "error" and report.signals == []
    assert f"Kafka broker 127.0.0.1:{server.port}" in report.detail, report.detail
    assert "broker" in report.data["unanswered"]


def test_a_simulated_broker_without_prometheus_is_skipped(inventory: Inventory) -> None:
    env = environment(inventory, {"kafka": 1, "finance": 2}, simulated=["kafka"])
    report = collect(env, inventory, collect_kafka_lag)
    assert report.status == "skipped" and "simulated" in report.detail


# ---------------------------------------------------------------- error rates from PromQL


@dataclass
class MetricsEndpoint:
    """A service's /metrics, served from a prometheus_client registry the test drives."""

    port: int
    requests: Counter
    server: http.server.ThreadingHTTPServer

    def serve(self, method: str, code: str, times: int) -> None:
        self.requests.labels(method, "/api/orders", code).inc(times)


def metrics_endpoint() -> MetricsEndpoint:
    registry = CollectorRegistry()
    # The sandbox services' counter (sandbox/service_app.py): exposed as http_requests_total.
    requests = Counter("http_requests", "HTTP requests served", ["method", "path", "code"], registry=registry)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return MetricsEndpoint(server.server_address[1], requests, server)


@dataclass
class Scraped:
    prometheus: RealServer
    services: dict[str, MetricsEndpoint]


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    """finance answers 5xx, hr only 200s, both scraped by a real Prometheus; crm answers 5xx
    too but Prometheus does not scrape it (the fallback to its own /metrics)."""
    services = {name: metrics_endpoint() for name in ("finance", "hr", "crm")}
    targets = {name: [f"127.0.0.1:{services[name].port}"] for name in ("finance", "hr")}
    root = tmp_path_factory.mktemp("prometheus")
    try:
        with real_servers.running("prometheus", root, scrape_targets=targets) as prometheus:
            yield Scraped(prometheus, services)
    finally:
        for endpoint in services.values():
            endpoint.server.shutdown()
            endpoint.server.server_close()


SAMPLED_TWICE = 'count_over_time(http_requests_total{job=~"finance|hr"}[5m]) >= 2'


def series_count(prometheus: RealServer, query: str) -> int:
    response = httpx.get(f"{prometheus.extra['url']}/api/v1/query", params={"query": query}, timeout=2)
    return len(response.json()["data"]["result"])


def test_error_rates_come_from_prometheus_rate_over_the_window(
    scraped: Scraped, inventory: Inventory
) -> None:
    finance, hr, crm = (scraped.services[n] for n in ("finance", "hr", "crm"))
    # Each series must have samples at 0 first: rate() counts increases between samples (two at
    # least), not what a counter held when first scraped.
    for endpoint in (finance, hr):
        endpoint.serve("GET", "200", 0)
    finance.serve("GET", "500", 0)
    poll(
        lambda: series_count(scraped.prometheus, SAMPLED_TWICE) == 3,
        30,
        "Prometheus holding two samples of each finance and hr series",
    )
    finance.serve("GET", "500", 30)
    finance.serve("GET", "200", 10)
    hr.serve("GET", "200", 40)
    crm.serve("GET", "500", 30)
    crm.serve("GET", "200", 10)
    ports = {"prometheus": scraped.prometheus.port, **{n: e.port for n, e in scraped.services.items()}}
    env = environment(inventory, ports)

    reports: list[CollectorReport] = []

    def finance_found_from_the_window() -> bool:
        reports.append(collect(env, inventory, collect_metrics))
        return any(s.component == "finance" and "rate()" in s.evidence for s in reports[-1].signals)

    poll(finance_found_from_the_window, 30, "finance's error rate from Prometheus")
    report = reports[-1]
    by_service = {s.component: s for s in report.signals if s.symptom == "error_rate"}
    assert set(by_service) == {"finance", "crm"}, report.signals  # hr answered only 200s
    assert by_service["finance"].subject == "75%"
    assert "last 30 min (Prometheus rate())" in by_service["finance"].evidence
    # crm has no series in Prometheus: its own /metrics, counted since it started.
    assert by_service["crm"].evidence == "30 of 40 application requests answered 5xx since start"
    counted = {row["service"]: row["counted"] for row in report.data["traffic"]}
    assert counted["hr"].endswith("(Prometheus rate())") and counted["crm"] == "since start"
    assert "error rates of 2 from Prometheus" in report.detail


def test_a_stopped_prometheus_falls_back_to_the_scrapes(tmp_path: Path, inventory: Inventory) -> None:
    service = metrics_endpoint()
    try:
        service.serve("GET", "500", 30)
        prometheus = real_servers.start_prometheus(tmp_path)
        prometheus.stop()
        env = environment(inventory, {"prometheus": prometheus.port, "finance": service.port})

        report = collect(env, inventory, collect_metrics)

        assert "Prometheus did not answer" in report.detail, report.detail
        [signal] = report.signals
        assert signal.component == "finance" and signal.evidence.endswith("since start")
    finally:
        service.server.shutdown()
        service.server.server_close()
