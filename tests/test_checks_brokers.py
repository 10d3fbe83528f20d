"""The checks that speak the servers' own protocols (checks/kafka.py, temporal.py,
object_store.py, zookeeper.py, rabbitmq.py, and observability.py's Prometheus and Alertmanager
checks), each passing and failing against real servers on loopback: Tansu (Kafka protocol),
ZooKeeper, rclone `serve s3` (and moto's S3 server where versioning is needed), the Temporal dev
server, RabbitMQ, Prometheus and Alertmanager. The environment is a YAML file in this module's
own parameters dir, with `ports:` pointing at these servers and its secrets in files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import yaml
from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, PartitionMetadata, TopicMetadata

from vextrus_nb import checks
from vextrus_nb.checks import CheckResult
from vextrus_nb.checks.kafka import (
    LAG_CEILING,
    replicas_placement,
    replication_findings,
    under_replication_findings,
)
from vextrus_nb.checks.object_store import PLATFORM_BUCKETS
from vextrus_nb.checks.observability import target_name
from vextrus_nb.checks.temporal import MIN_RETENTION_DAYS, TEMPORAL_NAMESPACE
from vextrus_nb.config import Environment, load_environment, load_inventory
from vextrus_nb.deploy.kafka_topics import wanted_topics
from vextrus_nb.sandbox import real_servers as rs
from vextrus_nb.sandbox import supervisor

pytestmark = pytest.mark.servers

ENV = "brokers-test"
RULE_GROUPS = ("vextrus-evidence", "vextrus-components")
RULES = {
    "groups": [
        {
            "name": RULE_GROUPS[0],
            "rules": [{"alert": "DrillStale", "expr": "vextrus_drill_age_seconds > 86400", "for": "5m"}],
        },
        {"name": RULE_GROUPS[1], "rules": [{"alert": "ComponentDown", "expr": "up == 0", "for": "10m"}]},
    ]
}


def wait(condition: Any, timeout: float, what: str) -> None:
    met, last = supervisor.wait_for(condition, timeout, interval=0.2)
    assert met, f"{what} not within {timeout}s (last error: {last!r})"


# ---------------------------------------------------------------- servers (one each per module)


def prometheus_settled(server: rs.RealServer, alertmanagers: int) -> bool:
    """Every target scraped at least once, and the Alertmanagers discovered."""
    base = server.extra["url"]
    targets = httpx.get(f"{base}/api/v1/targets", timeout=2).json()["data"]["activeTargets"]
    found = httpx.get(f"{base}/api/v1/alertmanagers", timeout=2).json()["data"]["activeAlertmanagers"]
    return bool(targets) and all(t["health"] != "unknown" for t in targets) and len(found) == alertmanagers


def start_monitoring(root: Path, rules_file: Path) -> dict[str, rs.RealServer]:
    """The healthy pair (Prometheus scraping itself and Alertmanager, loading the rules, sending
    to an Alertmanager whose root receiver is a webhook), and the broken pair (Prometheus with a
    scrape target nothing listens on, no rules, no Alertmanager; an Alertmanager whose only
    receiver has no integration). Ready when every target was scraped once and the
    Alertmanagers are discovered (~6 s after start)."""
    started: dict[str, rs.RealServer] = {}
    try:
        started["alertmanager"] = rs.start_alertmanager(root / "am", webhook_url="http://127.0.0.1:9/hook")
        started["blackhole_alertmanager"] = rs.start_alertmanager(root / "am-blackhole")
        am_port = started["alertmanager"].port
        started["prometheus"] = rs.start_prometheus(
            root / "prom",
            scrape_targets={"alertmanager": [f"127.0.0.1:{am_port}"]},
            rule_files=[rules_file],
            alertmanager_port=am_port,
        )
        dead = supervisor.free_port()
        started["broken_prometheus"] = rs.start_prometheus(
            root / "prom-broken", scrape_targets={"billing": [f"127.0.0.1:{dead}"]}
        )
        wait(lambda: prometheus_settled(started["prometheus"], 1), 30, "first scrapes, Alertmanager found")
        wait(lambda: prometheus_settled(started["broken_prometheus"], 0), 30, "first scrapes")
    except BaseException:
        for server in started.values():
            server.stop()
        raise
    return started


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every server this module speaks to, started at once (RabbitMQ alone takes ~8 s)."""
    root = tmp_path_factory.mktemp("brokers")
    rules_file = root / "alerts.yml"
    rules_file.write_text(yaml.safe_dump(RULES, sort_keys=False))
    starts = {
        "kafka": lambda: {"kafka": rs.start_tansu(root)},
        "zookeeper": lambda: {"zookeeper": rs.start_zookeeper(root)},
        "s3": lambda: {"s3": rs.start_s3(root)},
        "temporal": lambda: {"temporal": rs.start_temporal(root, ui=False)},
        "rabbitmq": lambda: {"rabbitmq": rs.start_rabbitmq(root)},
        "monitoring": lambda: start_monitoring(root, rules_file),
    }
    with ExitStack() as stack, ThreadPoolExecutor(len(starts)) as pool:
        futures = [pool.submit(start) for start in starts.values()]
        started: dict[str, Any] = {"rules_file": rules_file}
        failures = []
        for future in futures:
            try:
                group = future.result()
            except Exception as exc:  # stop the ones that did start, then say which did not
                failures.append(exc)
                continue
            for name, server in group.items():
                stack.enter_context(server)
                started[name] = server
        if failures:
            raise failures[0]
        client = rs.s3_client(started["s3"])
        for bucket in PLATFORM_BUCKETS:
            client.create_bucket(Bucket=bucket)
        yield started


@pytest.fixture(scope="module")
def kafka(servers: dict[str, Any]) -> rs.RealServer:
    return servers["kafka"]


@pytest.fixture(scope="module")
def zookeeper(servers: dict[str, Any]) -> rs.RealServer:
    return servers["zookeeper"]


@pytest.fixture(scope="module")
def s3(servers: dict[str, Any]) -> rs.RealServer:
    """rclone `serve s3` with the platform's buckets."""
    return servers["s3"]


@pytest.fixture(scope="module")
def temporal(servers: dict[str, Any]) -> rs.RealServer:
    return servers["temporal"]


@pytest.fixture(scope="module")
def rabbitmq(servers: dict[str, Any]) -> rs.RealServer:
    return servers["rabbitmq"]


@pytest.fixture(scope="module")
def alertmanager(servers: dict[str, Any]) -> rs.RealServer:
    return servers["alertmanager"]


@pytest.fixture(scope="module")
def blackhole_alertmanager(servers: dict[str, Any]) -> rs.RealServer:
    return servers["blackhole_alertmanager"]


@pytest.fixture(scope="module")
def prometheus(servers: dict[str, Any]) -> rs.RealServer:
    return servers["prometheus"]


@pytest.fixture(scope="module")
def broken_prometheus(servers: dict[str, Any]) -> rs.RealServer:
    return servers["broken_prometheus"]


@pytest.fixture(scope="module")
def rules_file(servers: dict[str, Any]) -> Path:
    return servers["rules_file"]


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("secrets")


# ---------------------------------------------------------------- the environment


def write_secret(folder: Path, name: str, value: str) -> dict[str, str]:
    (folder / name).write_text(value)
    return {"file": str(folder / name)}


@pytest.fixture(scope="module")
def environment(own_parameters: Path, secrets_dir: Path) -> Environment:
    """Ports are the default ones here (nothing listens there); each test points `ports:` at the
    servers it uses, through `with_ports`."""
    document = {
        "name": ENV,
        "driver": "local",
        "default_host": "127.0.0.1",
        "secrets": {
            "rabbitmq_password": write_secret(secrets_dir, "rabbitmq_password", "unset"),
            "minio_access_key": write_secret(secrets_dir, "minio_access_key", "unset"),
            "minio_secret_key": write_secret(secrets_dir, "minio_secret_key", "unset"),
        },
        "rabbitmq": {"user": "sbx", "password_secret": "rabbitmq_password"},
        "object_store": {"access_key_secret": "minio_access_key", "secret_key_secret": "minio_secret_key"},
        "probe": {"timeout_s": 2.0},
    }
    (own_parameters / "environments" / f"{ENV}.yaml").write_text(yaml.safe_dump(document))
    return load_environment(ENV)


def with_ports(env: Environment, deployment: dict[str, str] | None = None, **servers: int) -> Environment:
    ports = {name.replace("_", "-"): port for name, port in servers.items()}
    return env.model_copy(update={"ports": {**env.ports, **ports}, "deployment": deployment or {}})


def with_secrets(env: Environment, secrets_dir: Path, **values: str) -> Environment:
    """The environment reading these secret values (each in its own file, as the sandbox keeps them)."""
    refs = {
        name: write_secret(secrets_dir, f"{name}-{abs(hash(value))}", value) for name, value in values.items()
    }
    return Environment.model_validate(
        {**env.model_dump(), "secrets": {**env.model_dump()["secrets"], **refs}}
    )


def run(env: Environment, check_id: str) -> CheckResult:
    (only,) = run_all(env, check_id).values()
    return only


def run_all(env: Environment, *check_ids: str) -> dict[str, CheckResult]:
    """The checks at once, as the checklist runs them (each within the probe timeout)."""
    result = checks.run_checklist(env, load_inventory(), checks.select(ids=check_ids))
    return {r.check.id: r for r in result.results}


def subjects(result: CheckResult) -> set[str]:
    return set(result.subjects)


def recorded(result: CheckResult) -> str:
    return json.dumps(result.as_row())


# ---------------------------------------------------------------- Kafka


@pytest.fixture(scope="module")
def domain_topics(kafka: rs.RealServer) -> list[str]:
    """Every domain-event topic but one, created as phase 2 would: replication factor 3."""
    topics = wanted_topics(load_inventory())[1:]
    admin = AdminClient({"bootstrap.servers": kafka.extra["bootstrap"], "log_level": 0})
    futures = admin.create_topics([NewTopic(t, num_partitions=3, replication_factor=3) for t in topics])
    for future in futures.values():
        future.result(timeout=10)
    return topics


def stopped_port(component: str, root: Path) -> int:
    """The port of a real server that was started, answered, then stopped."""
    with rs.running(component, root) as server:
        port = server.port
    return port


def test_kafka_brokers_answer_metadata(environment: Environment, kafka: rs.RealServer) -> None:
    result = run(with_ports(environment, kafka=kafka.port), "INF-KAFKA-BROKERS")
    assert result.status == "passed", result.evidence
    assert "1 broker(s)" in result.evidence and f"127.0.0.1:{kafka.port}" in result.evidence


def test_a_stopped_broker_fails_every_kafka_check_naming_kafka(
    environment: Environment, tmp_path: Path
) -> None:
    env = with_ports(environment, kafka=stopped_port("kafka", tmp_path))
    results = run_all(env, "INF-KAFKA-BROKERS", "INF-KAFKA-RF", "INF-KAFKA-URP", "INF-KAFKA-LAG")
    for check_id, result in results.items():
        assert result.status == "failed", (check_id, result.evidence)
        assert subjects(result) == {"kafka"}, (check_id, result.findings)


def test_replication_names_the_missing_topic_and_says_tansu_stacks_its_replicas(
    environment: Environment, kafka: rs.RealServer, domain_topics: list[str]
) -> None:
    """Tansu, asked for replication factor 3 on its one broker, lists that broker three times as
    the replicas (and the ISR): the topics have the factor they were created with (the check
    passes them) and the evidence says the copies share one broker."""
    metadata = AdminClient({"bootstrap.servers": kafka.extra["bootstrap"], "log_level": 0}).list_topics(
        timeout=5
    )
    (broker,) = metadata.brokers
    assert metadata.topics[domain_topics[0]].partitions[0].replicas == [broker] * 3
    result = run(with_ports(environment, kafka=kafka.port), "INF-KAFKA-RF")
    assert result.status == "failed"
    missing = wanted_topics(load_inventory())[0]
    details = {f.subject: f.detail for f in result.findings}
    assert details == {missing: "topic missing"}
    assert "keep several replicas on one broker" in result.evidence


def partition(number: int, replicas: list[int], isr: list[int], leader: int = 1) -> PartitionMetadata:
    made = PartitionMetadata()
    made.id, made.leader, made.replicas, made.isrs = number, leader, replicas, isr
    return made


def topic(name: str, *partitions: PartitionMetadata) -> TopicMetadata:
    made = TopicMetadata()
    made.topic, made.partitions = name, {p.id: p for p in partitions}
    return made


def test_replication_passes_with_three_distinct_brokers() -> None:
    """No 3-broker cluster runs here: the rule itself, on the metadata a 3-broker cluster returns."""
    topics = {"vextrus.finance.events": topic("vextrus.finance.events", partition(0, [1, 2, 3], [1, 2, 3]))}
    assert replication_findings(["vextrus.finance.events"], topics) == []
    thin = {"vextrus.finance.events": topic("vextrus.finance.events", partition(0, [1, 2], [1, 2]))}
    (finding,) = replication_findings(["vextrus.finance.events"], thin)
    assert finding.detail == "replication factor 2 < 3"
    single = {"vextrus.finance.events": topic("vextrus.finance.events", partition(0, [1], [1]))}
    (finding,) = replication_findings(["vextrus.finance.events"], single)
    assert finding.detail == "replication factor 1 < 3"
    assert replicas_placement(topics) == ""


def test_no_under_replicated_partitions_on_the_broker(
    environment: Environment, kafka: rs.RealServer, domain_topics: list[str]
) -> None:
    result = run(with_ports(environment, kafka=kafka.port), "INF-KAFKA-URP")
    assert result.status == "passed", result.findings
    assert f"{3 * len(domain_topics)} partition(s)" in result.evidence


def test_under_replicated_and_offline_partitions_are_named_by_topic() -> None:
    """A single broker cannot lose an in-sync replica: the rule on a 3-broker cluster's metadata."""
    topics = {
        "vextrus.audit.events": topic("vextrus.audit.events", partition(0, [1, 2, 3], [1, 3]),
                                      partition(1, [1, 2, 3], [1, 2, 3])),
        "vextrus.hr.events": topic("vextrus.hr.events", partition(0, [2, 3, 1], [], leader=-1)),
        "vextrus.crm.events": topic("vextrus.crm.events", partition(0, [1, 2, 3], [3, 2, 1])),
    }  # fmt: skip
    findings = {(f.subject, f.detail) for f in under_replication_findings(topics)}
    assert findings == {
        ("vextrus.audit.events", "partition(s) 0 under-replicated (isr < replicas)"),
        ("vextrus.hr.events", "partition(s) 0 have no leader"),
        ("vextrus.hr.events", "partition(s) 0 under-replicated (isr < replicas)"),
    }


def test_consumer_lag_passes_caught_up_and_fails_behind_naming_the_group(
    environment: Environment, kafka: rs.RealServer
) -> None:
    bootstrap = kafka.extra["bootstrap"]
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    admin.create_topics([NewTopic("lag.orders", num_partitions=1, replication_factor=1)])[
        "lag.orders"
    ].result(10)
    env = with_ports(environment, kafka=kafka.port)
    assert run(env, "INF-KAFKA-LAG").status == "not_applicable"  # no group has committed anything yet
    # Tansu 0.6 reports a partition's high watermark as the last batch's base offset + 1, however
    # many records that batch held (seen: 1500 records in one batch, high watermark 1), so one
    # record per batch here, or the lag it reports is short by the batches' sizes.
    producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0, "batch.num.messages": 1})
    sent = LAG_CEILING + 500
    for number in range(sent):
        producer.produce("lag.orders", str(number).encode())
    assert producer.flush(10) == 0
    del producer  # Tansu waits for open connections before it stops

    def commit(group: str, offset: int) -> None:
        request = [ConsumerGroupTopicPartitions(group, [TopicPartition("lag.orders", 0, offset)])]
        admin.alter_consumer_group_offsets(request)[group].result(timeout=10)

    commit("billing-consumers", sent)
    result = run(env, "INF-KAFKA-LAG")
    assert result.status == "passed", (result.evidence, result.findings)
    assert "billing-consumers 0 behind" in result.evidence
    commit("audit-consumers", 0)
    result = run(env, "INF-KAFKA-LAG")
    assert result.status == "failed", (result.evidence, result.findings)
    (finding,) = result.findings
    assert finding.subject == "audit-consumers"
    assert finding.detail.startswith(f"{sent} messages behind (> {LAG_CEILING}; worst: lag.orders[0] {sent}")


# ---------------------------------------------------------------- Temporal


@pytest.fixture(scope="module")
def namespaces(temporal: rs.RealServer) -> dict[str, int]:
    """The platform's namespace with a week's retention, and one with Temporal's default day."""
    from google.protobuf.duration_pb2 import Duration
    from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
    from temporalio.client import Client

    from vextrus_nb.asyncio_bridge import run_sync

    wanted = {TEMPORAL_NAMESPACE: MIN_RETENTION_DAYS, "vextrus-short": 1}

    async def register() -> None:
        client = await Client.connect(temporal.extra["address"])
        for name, days in wanted.items():
            period = Duration(seconds=days * 86400)
            await client.workflow_service.register_namespace(
                RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=period)
            )

    run_sync(register())
    return wanted


def test_temporal_namespace_registered_with_a_week_of_retention(
    environment: Environment, temporal: rs.RealServer, namespaces: dict[str, int]
) -> None:
    result = run(with_ports(environment, temporal=temporal.port), "INF-TEMPORAL-NAMESPACE")
    assert result.status == "passed", result.findings
    assert result.evidence == "namespace 'vextrus' REGISTERED, retention 7 day(s)"


@pytest.mark.parametrize(
    ("namespace", "detail"),
    [
        ("vextrus-short", "namespace 'vextrus-short' keeps workflows 1 day(s) < 7"),
        ("vextrus-never-registered", "namespace 'vextrus-never-registered' is not registered"),
    ],
)
def test_temporal_namespace_fails_short_retention_or_unregistered(
    environment: Environment, temporal: rs.RealServer, namespaces: dict[str, int], namespace: str, detail: str
) -> None:
    env = with_ports(environment, {"temporal_namespace": namespace}, temporal=temporal.port)
    result = run(env, "INF-TEMPORAL-NAMESPACE")
    assert result.status == "failed"
    assert [(f.subject, f.detail) for f in result.findings] == [("temporal", detail)]


# ---------------------------------------------------------------- object store


def with_s3_keys(env: Environment, secrets_dir: Path, port: int, access: str, secret: str) -> Environment:
    keyed = with_secrets(env, secrets_dir, minio_access_key=access, minio_secret_key=secret)
    return with_ports(keyed, minio=port)


def test_buckets_present(environment: Environment, s3: rs.RealServer, secrets_dir: Path) -> None:
    keys = s3.credentials
    env = with_s3_keys(environment, secrets_dir, s3.port, keys["access_key"], keys["secret_key"])
    result = run(env, "INF-OBJECT-BUCKETS")
    assert result.status == "passed", result.findings
    assert result.evidence == "2 of 2 buckets present: vextrus-files, vextrus-backups"
    assert keys["secret_key"] not in recorded(result)


def test_a_missing_bucket_is_named(environment: Environment, secrets_dir: Path, tmp_path: Path) -> None:
    with rs.running("minio", tmp_path) as server:
        rs.s3_client(server).create_bucket(Bucket="vextrus-backups")
        keys = server.credentials
        env = with_s3_keys(environment, secrets_dir, server.port, keys["access_key"], keys["secret_key"])
        result = run(env, "INF-OBJECT-BUCKETS")
    assert result.status == "failed"
    assert [(f.subject, f.detail) for f in result.findings] == [
        ("vextrus-files", "bucket missing (for file-storage's documents and uploads)")
    ]


def test_wrong_keys_are_refused_on_every_bucket_and_never_shown(
    environment: Environment, s3: rs.RealServer, secrets_dir: Path
) -> None:
    wrong_secret = "not-the-secret-key-7c1d"
    env = with_s3_keys(environment, secrets_dir, s3.port, s3.credentials["access_key"], wrong_secret)
    result = run(env, "INF-OBJECT-BUCKETS")
    assert result.status == "failed"
    assert subjects(result) == set(PLATFORM_BUCKETS)
    assert all("access denied" in f.detail for f in result.findings)
    assert wrong_secret not in recorded(result) and s3.credentials["secret_key"] not in recorded(result)


def test_versioning_on_rclone_is_not_applicable_not_passed(
    environment: Environment, s3: rs.RealServer, secrets_dir: Path
) -> None:
    """rclone answers GetBucketVersioning 200 with no status (what S3 says of a never-versioned
    bucket) and ListObjectVersions 501: it has no versioning, and the check says so."""
    keys = s3.credentials
    env = with_s3_keys(environment, secrets_dir, s3.port, keys["access_key"], keys["secret_key"])
    result = run(env, "INF-OBJECT-VERSIONING")
    assert result.status == "not_applicable"
    assert result.evidence.startswith("this S3 server does not implement versioning")


@pytest.fixture
def moto_s3() -> Iterator[tuple[int, Any]]:
    """moto's S3 server (a real HTTP server on loopback) with the platform's buckets: it versions."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server._server.server_port  # type: ignore[attr-defined]
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="AKIATESTBROKERS00001",
        aws_secret_access_key="moto-secret-for-the-broker-checks",
    )
    for bucket in PLATFORM_BUCKETS:
        client.create_bucket(Bucket=bucket)
    yield port, client
    server.stop()


def test_versioning_enabled_passes_and_a_bucket_without_it_is_named(
    environment: Environment, secrets_dir: Path, moto_s3: tuple[int, Any]
) -> None:
    port, client = moto_s3
    env = with_s3_keys(
        environment, secrets_dir, port, "AKIATESTBROKERS00001", "moto-secret-for-the-broker-checks"
    )
    client.put_bucket_versioning(Bucket="vextrus-files", VersioningConfiguration={"Status": "Enabled"})
    result = run(env, "INF-OBJECT-VERSIONING")
    assert result.status == "failed"
    assert [(f.subject, f.detail) for f in result.findings] == [
        ("vextrus-backups", "versioning never enabled")
    ]
    client.put_bucket_versioning(Bucket="vextrus-backups", VersioningConfiguration={"Status": "Enabled"})
    result = run(env, "INF-OBJECT-VERSIONING")
    assert result.status == "passed", result.findings
    assert result.evidence == "versioning: vextrus-files Enabled; vextrus-backups Enabled"
    client.put_bucket_versioning(Bucket="vextrus-backups", VersioningConfiguration={"Status": "Suspended"})
    result = run(env, "INF-OBJECT-VERSIONING")
    assert [(f.subject, f.detail) for f in result.findings] == [("vextrus-backups", "versioning Suspended")]


# ---------------------------------------------------------------- ZooKeeper and RabbitMQ


def test_zookeeper_serving(environment: Environment, zookeeper: rs.RealServer) -> None:
    result = run(with_ports(environment, zookeeper=zookeeper.port), "INF-ZK-HEALTH")
    assert result.status == "passed", result.findings
    assert result.evidence.startswith("ruok -> imok; zk_server_state standalone, version 3.8")


def test_a_stopped_zookeeper_is_named(environment: Environment, tmp_path: Path) -> None:
    result = run(with_ports(environment, zookeeper=stopped_port("zookeeper", tmp_path)), "INF-ZK-HEALTH")
    assert result.status == "failed"
    (finding,) = result.findings
    assert finding.subject == "zookeeper" and finding.detail.startswith("no answer to ruok/mntr: ")


def test_rabbitmq_accepts_the_login(
    environment: Environment, rabbitmq: rs.RealServer, secrets_dir: Path
) -> None:
    password = rabbitmq.credentials["password"]
    env = with_ports(
        with_secrets(environment, secrets_dir, rabbitmq_password=password), rabbitmq=rabbitmq.port
    )
    result = run(env, "INF-RABBITMQ")
    assert result.status == "passed", result.findings
    assert result.evidence.startswith("AMQP login as 'sbx' accepted by RabbitMQ 3.10")


def test_rabbitmq_refuses_a_wrong_password_and_never_shows_it(
    environment: Environment, rabbitmq: rs.RealServer, secrets_dir: Path
) -> None:
    wrong = "wrong-amqp-password-31f0"
    env = with_ports(with_secrets(environment, secrets_dir, rabbitmq_password=wrong), rabbitmq=rabbitmq.port)
    result = run(env, "INF-RABBITMQ")
    assert result.status == "failed"
    assert [(f.subject, f.detail) for f in result.findings] == [("rabbitmq", "login refused for user 'sbx'")]
    assert wrong not in recorded(result)


# ---------------------------------------------------------------- Prometheus and Alertmanager


def monitoring(
    environment: Environment, prometheus: rs.RealServer, alertmanager: rs.RealServer, rules: Path
) -> Environment:
    return with_ports(environment, {"prometheus_rules": str(rules)}, prometheus=prometheus.port,
                      alertmanager=alertmanager.port)  # fmt: skip


def test_prometheus_targets_all_up(
    environment: Environment, prometheus: rs.RealServer, alertmanager: rs.RealServer, rules_file: Path
) -> None:
    result = run(monitoring(environment, prometheus, alertmanager, rules_file), "OBS-PROM-TARGETS")
    assert result.status == "passed", result.findings
    assert result.evidence == "2 of 2 scrape targets up"


def test_a_dead_scrape_target_is_named(
    environment: Environment, broken_prometheus: rs.RealServer, alertmanager: rs.RealServer, rules_file: Path
) -> None:
    result = run(monitoring(environment, broken_prometheus, alertmanager, rules_file), "OBS-PROM-TARGETS")
    assert result.status == "failed"
    (finding,) = result.findings
    assert finding.subject.startswith("billing/127.0.0.1:") and finding.detail.startswith("down: ")
    assert target_name({"labels": {"component": "billing", "job": "services"}}) == "billing"


def test_the_alert_rules_are_loaded(
    environment: Environment, prometheus: rs.RealServer, alertmanager: rs.RealServer, rules_file: Path
) -> None:
    result = run(monitoring(environment, prometheus, alertmanager, rules_file), "OBS-ALERT-RULES")
    assert result.status == "passed", result.findings
    assert result.evidence == "2 of 2 rule groups loaded (2 rules)"


def test_rule_groups_not_loaded_are_named_and_no_file_is_not_applicable(
    environment: Environment, broken_prometheus: rs.RealServer, alertmanager: rs.RealServer, rules_file: Path
) -> None:
    result = run(monitoring(environment, broken_prometheus, alertmanager, rules_file), "OBS-ALERT-RULES")
    assert result.status == "failed"
    assert subjects(result) == set(RULE_GROUPS)
    absent = monitoring(
        environment, broken_prometheus, alertmanager, rules_file.parent / "no-such-alerts.yml"
    )
    result = run(absent, "OBS-ALERT-RULES")
    assert result.status == "not_applicable" and "no alert rules file" in result.evidence


def test_alertmanager_active_with_a_webhook_receiver(
    environment: Environment, prometheus: rs.RealServer, alertmanager: rs.RealServer, rules_file: Path
) -> None:
    result = run(monitoring(environment, prometheus, alertmanager, rules_file), "OBS-ALERTMANAGER")
    assert result.status == "passed", result.findings
    assert "Prometheus sends to 1 Alertmanager(s)" in result.evidence
    assert "root receiver 'default'; sending: default" in result.evidence


def test_no_alertmanager_and_a_blackhole_receiver_are_named(
    environment: Environment,
    broken_prometheus: rs.RealServer,
    blackhole_alertmanager: rs.RealServer,
    rules_file: Path,
) -> None:
    env = monitoring(environment, broken_prometheus, blackhole_alertmanager, rules_file)
    result = run(env, "OBS-ALERTMANAGER")
    assert result.status == "failed"
    assert [(f.subject, f.detail) for f in result.findings] == [
        ("prometheus", "no active Alertmanager (0 dropped): alerts go nowhere"),
        ("alertmanager", "the root route's receiver 'default' has no integration (a blackhole)"),
    ]


# ---------------------------------------------------------------- scope

BROKER_CHECKS = (
    "INF-KAFKA-BROKERS", "INF-KAFKA-RF", "INF-KAFKA-URP", "INF-KAFKA-LAG", "INF-TEMPORAL-NAMESPACE",
    "INF-OBJECT-BUCKETS", "INF-OBJECT-VERSIONING", "INF-ZK-HEALTH", "INF-RABBITMQ", "OBS-PROM-TARGETS",
    "OBS-ALERT-RULES", "OBS-ALERTMANAGER",
)  # fmt: skip


def test_an_environment_without_these_components_gets_not_applicable(environment: Environment) -> None:
    none = ("kafka", "zookeeper", "minio", "temporal", "rabbitmq", "prometheus", "alertmanager")
    env = environment.model_copy(update={"exclude": none})
    result = checks.run_checklist(env, load_inventory(), checks.select(ids=BROKER_CHECKS))
    assert {r.check.id: r.status for r in result.results} == dict.fromkeys(BROKER_CHECKS, "not_applicable")
