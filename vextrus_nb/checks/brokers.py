"""The platform's brokers, object store and orchestrator, over their own protocols: Kafka
topics, replication and lag; Temporal's namespace and retention; the object store's buckets
and versioning; ZooKeeper's `ruok`/`mntr`; RabbitMQ's AMQP login; Prometheus's targets and
rules; Alertmanager's configuration.

The client libraries (confluent-kafka, boto3, pika) block: each call runs in a thread with its
own timeout (the probe timeout), through the context's pool, so a hanging server costs one
timeout and the check still reports within its deadline. They are imported with the module, not
inside the checks: a first import (boto3, temporalio: about a second each) inside a check would
block the event loop and spend every running check's deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
import pika
import pika.exceptions
import yaml
from botocore.config import Config
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from temporalio.api.enums.v1 import NamespaceState
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from vextrus_nb.checks.context import CheckContext, describe_error
from vextrus_nb.checks.model import Finding, Outcome, check
from vextrus_nb.config import resolve_path
from vextrus_nb.deploy.kafka_topics import wanted_topics
from vextrus_nb.errors import LagUnsupported

# The reference plan's Kafka cluster: 3 brokers, every topic replicated 3 times (critical gap 5).
MIN_REPLICATION = 3
# Messages a consumer group may be behind, summed over its partitions, before it is a finding.
LAG_CEILING = 1000
# The platform's Temporal namespace (an environment may name its own: deployment.temporal_namespace)
# and the shortest workflow history it keeps: a failed approval workflow is still there to
# investigate after a weekend and a week of triage. Temporal's own default is 1 day.
TEMPORAL_NAMESPACE = "vextrus"
MIN_RETENTION_DAYS = 7
# The buckets the platform needs in its object store, and who uses each.
PLATFORM_BUCKETS: dict[str, str] = {
    "vextrus-files": "file-storage's documents and uploads",
    "vextrus-backups": "the DR backup sets' second copy",
}
# The project's alert rules (an environment may point elsewhere: deployment.prometheus_rules).
ALERT_RULES_FILE = "deploy/prometheus/alerts.yml"
ZOOKEEPER_SERVING_STATES = ("standalone", "leader", "follower")
CLIENT_ID = "vextrus-nb-checklist"


async def in_thread(ctx: CheckContext, work: Callable[[], Any]) -> Any:
    """A blocking client call in a thread, through the pool; `work` bounds itself by ctx.timeout_s
    (the outer wait gives it a little more, so its own timeout is what the caller sees)."""
    return await ctx.bounded(asyncio.to_thread(work), ctx.timeout_s + 0.25)


# ---------------------------------------------------------------- Kafka


def kafka_config(ctx: CheckContext) -> dict[str, Any]:
    host, port = ctx.where["kafka"]
    return {
        "bootstrap.servers": f"{host}:{port}",
        "client.id": CLIENT_ID,
        "socket.timeout.ms": max(100, int(ctx.timeout_s * 1000)),
        "log_level": 0,  # librdkafka's own connection noise on stderr; errors come back as exceptions
    }


async def kafka_metadata(ctx: CheckContext) -> Any:
    """The broker's metadata (brokers, topics, partitions), read once per run for every Kafka
    check; shielded, so one check overrunning its deadline does not cancel the others' read.
    A broker that does not answer is the failed Outcome every Kafka check returns, naming kafka."""

    def read() -> Any:
        return AdminClient(kafka_config(ctx)).list_topics(timeout=ctx.timeout_s)

    shared = ctx.once("kafka.metadata", lambda: asyncio.ensure_future(in_thread(ctx, read)))
    try:
        return await asyncio.shield(shared)
    except Exception as exc:
        detail = f"no metadata: {kafka_error(exc, ctx)}"
        return Outcome.of(detail, [Finding("kafka", detail)])


def kafka_error(exc: BaseException, ctx: CheckContext) -> str:
    """One line for a Kafka client error: librdkafka's own name of it, not the exception's repr."""
    error = exc.args[0] if exc.args else None
    if hasattr(error, "str") and hasattr(error, "name"):
        return f"{error.name()}: {error.str()}"
    return describe_error(exc, ctx.timeout_s)


def replica_brokers(partition: Any) -> set[int]:
    """The distinct brokers holding a partition. Tansu, asked for replication factor 3 on its one
    broker, lists that broker three times ([111, 111, 111]): three copies on one node are one."""
    return set(partition.replicas)


def replication_findings(wanted: list[str], topics: dict[str, Any]) -> list[Finding]:
    """A finding per wanted topic that is missing or has a partition with a replication factor
    (its replica list: what `kafka-topics --describe` reports) below MIN_REPLICATION.

    The factor the topic was created with is the reference's gap 5. Apache Kafka never puts two
    replicas of a partition on one broker, so there the list is also the distinct brokers; Tansu
    on one broker lists itself three times, which the evidence says (replicas_placement) rather
    than this check failing a one-broker sandbox for its size."""
    findings = []
    for name in wanted:
        topic = topics.get(name)
        if topic is None or topic.error is not None:
            findings.append(Finding(name, "topic missing" + (f" ({topic.error.str()})" if topic else "")))
            continue
        if not topic.partitions:
            findings.append(Finding(name, "topic has no partitions"))
            continue
        listed = min(len(p.replicas) for p in topic.partitions.values())
        if listed < MIN_REPLICATION:
            findings.append(Finding(name, f"replication factor {listed} < {MIN_REPLICATION}"))
    return findings


def replicas_placement(topics: dict[str, Any]) -> str:
    """'' on a cluster that spreads replicas; else how many partitions keep copies on one broker."""
    stacked = sum(
        1
        for topic in topics.values()
        if topic.error is None
        for p in topic.partitions.values()
        if len(replica_brokers(p)) < len(p.replicas)
    )
    return (
        f"; {stacked} partition(s) keep several replicas on one broker (a one-broker cluster)"
        if stacked
        else ""
    )


def under_replication_findings(topics: dict[str, Any]) -> list[Finding]:
    """A finding per topic with partitions offline (no leader) or with fewer in-sync replicas
    than replicas."""
    findings = []
    for name in sorted(topics):
        topic = topics[name]
        if topic.error is not None:
            continue
        offline = sorted(p.id for p in topic.partitions.values() if p.leader < 0)
        lagging = sorted(
            p.id for p in topic.partitions.values() if len(set(p.isrs)) < len(replica_brokers(p))
        )
        if offline:
            findings.append(Finding(name, f"partition(s) {', '.join(map(str, offline))} have no leader"))
        if lagging:
            findings.append(
                Finding(
                    name, f"partition(s) {', '.join(map(str, lagging))} under-replicated (isr < replicas)"
                )
            )
    return findings


@check(
    "INF-KAFKA-BROKERS",
    "infrastructure",
    "critical",
    title="Kafka brokers answer metadata",
    probes="a Kafka Metadata request (confluent-kafka AdminClient.list_topics)",
    criterion="the broker answers and lists at least one broker",
    remediation="Check the broker's log and its advertised listeners (a client reaches the broker, then "
    "the address it advertises); restart zookeeper, then kafka.",
)
async def kafka_brokers(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("kafka"):
        return Outcome.not_applicable("the environment runs no Kafka")
    metadata = await kafka_metadata(ctx)
    if isinstance(metadata, Outcome):
        return metadata
    brokers = sorted(metadata.brokers.values(), key=lambda b: b.id)
    listed = ", ".join(f"{b.id}@{b.host}:{b.port}" for b in brokers)
    evidence = (
        f"{len(brokers)} broker(s) [{listed}], cluster {metadata.cluster_id}, {len(metadata.topics)} topic(s)"
    )
    return Outcome.of(evidence, [] if brokers else [Finding("kafka", "the metadata lists no broker")])


@check(
    "INF-KAFKA-RF",
    "infrastructure",
    "critical",
    title="Domain-event topics exist, replicated at least 3 times",
    probes="the broker's metadata for every vextrus.<service>.events topic",
    criterion=f"every topic exists and each partition has a replication factor >= {MIN_REPLICATION}",
    remediation="Run a 3-broker cluster (KAFKA_DEFAULT_REPLICATION_FACTOR=3, KAFKA_MIN_INSYNC_REPLICAS=2) "
    "and create the topics with replication factor 3 (deploy phase 2); reassign existing topics with "
    "kafka-reassign-partitions. Reference: critical gap 5.",
)
async def kafka_replication(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("kafka"):
        return Outcome.not_applicable("the environment runs no Kafka")
    wanted = wanted_topics(ctx.inventory)
    metadata = await kafka_metadata(ctx)
    if isinstance(metadata, Outcome):
        return metadata
    findings = replication_findings(wanted, metadata.topics)
    missing = sum(1 for f in findings if f.detail.startswith("topic missing"))
    evidence = (
        f"{len(wanted) - len(findings)} of {len(wanted)} domain-event topics replicated >= {MIN_REPLICATION} "
        f"times; {missing} missing; {len(metadata.brokers)} broker(s)" + replicas_placement(metadata.topics)
    )
    return Outcome.of(evidence, findings)


@check(
    "INF-KAFKA-URP",
    "infrastructure",
    "high",
    title="No under-replicated or offline Kafka partitions",
    probes="the broker's metadata: leader, replicas and in-sync replicas of every partition",
    criterion="every partition has a leader and as many in-sync replicas as replicas",
    remediation="Find the broker missing from the ISR (kafka-topics --describe "
    "--under-replicated-partitions); check its disk, network and replica.lag.time.max.ms; restart it.",
)
async def kafka_under_replicated(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("kafka"):
        return Outcome.not_applicable("the environment runs no Kafka")
    metadata = await kafka_metadata(ctx)
    if isinstance(metadata, Outcome):
        return metadata
    partitions = sum(len(t.partitions) for t in metadata.topics.values())
    findings = under_replication_findings(metadata.topics)
    return Outcome.of(f"{partitions} partition(s) in {len(metadata.topics)} topic(s) read", findings)


@dataclass(frozen=True)
class GroupLag:
    group: str
    partitions: dict[tuple[str, int], int]  # (topic, partition) -> messages behind

    @property
    def total(self) -> int:
        return sum(self.partitions.values())

    def worst(self, count: int = 3) -> str:
        ranked = sorted(self.partitions.items(), key=lambda item: -item[1])[:count]
        return ", ".join(f"{topic}[{partition}] {lag}" for (topic, partition), lag in ranked)


def read_consumer_lag(config: dict[str, Any], timeout_s: float) -> list[GroupLag]:
    """Every consumer group's lag: high watermark minus committed offset, per partition it
    committed (an uncommitted partition has no lag to speak of). One deadline for all calls."""
    deadline = time.monotonic() + timeout_s

    def remaining() -> float:
        return max(0.05, deadline - time.monotonic())

    unsupported = {KafkaError._UNSUPPORTED_FEATURE, KafkaError.UNSUPPORTED_VERSION}
    admin = AdminClient(config)
    try:
        listing = admin.list_consumer_groups(request_timeout=remaining()).result(timeout=remaining())
    except KafkaException as exc:
        if exc.args and exc.args[0].code() in unsupported:
            raise LagUnsupported(f"ListGroups: {exc.args[0].str()}") from None
        raise
    if listing.errors and not listing.valid:
        # Every broker asked failed to answer: that is an unreachable broker, not zero groups.
        raise listing.errors[0]  # a KafkaException (confluent-kafka's ListConsumerGroupsResult)
    committed: dict[str, list[Any]] = {}
    for group in sorted(g.group_id for g in listing.valid):
        # The API takes one group per request (confluent-kafka's note).
        request = [ConsumerGroupTopicPartitions(group)]
        future = admin.list_consumer_group_offsets(request, request_timeout=remaining())[group]
        committed[group] = [
            tp for tp in future.result(timeout=remaining()).topic_partitions if tp.offset >= 0
        ]
    if not any(committed.values()):
        return [GroupLag(group, {}) for group in committed]
    # A consumer that never subscribes joins no group: it only reads the watermarks.
    reader = Consumer({**config, "group.id": f"{CLIENT_ID}-watermarks", "enable.auto.commit": False})
    try:
        high: dict[tuple[str, int], int] = {}
        lags = []
        for group, offsets in committed.items():
            behind = {}
            for tp in offsets:
                key = (tp.topic, tp.partition)
                if key not in high:
                    high[key] = reader.get_watermark_offsets(tp, timeout=remaining())[1]
                behind[key] = max(0, high[key] - tp.offset)
            lags.append(GroupLag(group, behind))
        return lags
    finally:
        reader.close()


@check(
    "INF-KAFKA-LAG",
    "infrastructure",
    "medium",
    title=f"Consumer groups at most {LAG_CEILING} messages behind",
    probes="the broker's consumer groups and committed offsets (AdminClient) against the partitions' "
    "high watermarks (Consumer.get_watermark_offsets)",
    criterion=f"every group's lag, summed over its partitions, <= {LAG_CEILING} messages",
    remediation="Triage the lagging group's service (its consumers' errors and rebalances); scale its "
    "consumers up to the partition count; look for a poison message at the stuck offset.",
)
async def kafka_lag(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("kafka"):
        return Outcome.not_applicable("the environment runs no Kafka")
    # The broker answering metadata first: with no broker reachable, librdkafka's ListGroups can
    # come back as an empty listing (no broker to ask), which is not "no groups".
    metadata = await kafka_metadata(ctx)
    if isinstance(metadata, Outcome):
        return metadata
    config = kafka_config(ctx)
    try:
        lags: list[GroupLag] = await in_thread(ctx, lambda: read_consumer_lag(config, ctx.timeout_s))
    except LagUnsupported as exc:
        return Outcome.not_applicable(f"this broker cannot report consumer-group offsets ({exc})")
    except Exception as exc:
        detail = f"could not read consumer-group lag: {kafka_error(exc, ctx)}"
        return Outcome.of(detail, [Finding("kafka", detail)])
    measured = [lag for lag in lags if lag.partitions]
    if not measured:
        return Outcome.not_applicable(
            f"no consumer group has committed offsets ({len(lags)} group(s) listed): no lag to measure"
        )
    findings = [
        Finding(lag.group, f"{lag.total} messages behind (> {LAG_CEILING}; worst: {lag.worst()})")
        for lag in measured
        if lag.total > LAG_CEILING
    ]
    evidence = "; ".join(f"{lag.group} {lag.total} behind" for lag in measured)
    return Outcome.of(f"consumer-group lag: {evidence}", findings)


# ---------------------------------------------------------------- Temporal


def temporal_namespace(ctx: CheckContext) -> str:
    return ctx.env.deployment.get("temporal_namespace", TEMPORAL_NAMESPACE)


@check(
    "INF-TEMPORAL-NAMESPACE",
    "infrastructure",
    "high",
    title=f"The platform's Temporal namespace is registered, with >= {MIN_RETENTION_DAYS} days retention",
    probes="Temporal DescribeNamespace over gRPC (temporalio client)",
    criterion=f"the namespace exists, is REGISTERED, and keeps closed workflows >= {MIN_RETENTION_DAYS} days",
    remediation="temporal operator namespace create --namespace vextrus --retention 7d "
    "(or `namespace update --retention 7d`); the workflow service reads TEMPORAL_NAMESPACE.",
)
async def temporal_namespace_retention(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("temporal"):
        return Outcome.not_applicable("the environment runs no Temporal")
    namespace = temporal_namespace(ctx)
    host, port = ctx.where["temporal"]

    async def describe() -> Any:
        client = await Client.connect(
            f"{host}:{port}", namespace=namespace, connect_timeout=timedelta(seconds=ctx.timeout_s)
        )
        request = DescribeNamespaceRequest(namespace=namespace)
        return await client.workflow_service.describe_namespace(
            request, timeout=timedelta(seconds=ctx.timeout_s)
        )

    try:
        described = await ctx.bounded(describe())
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            detail = f"namespace '{namespace}' is not registered"
            return Outcome.of(detail, [Finding("temporal", detail)])
        detail = f"DescribeNamespace failed: {exc.status.name}: {exc.message}"
        return Outcome.of(detail, [Finding("temporal", detail)])
    except Exception as exc:
        detail = f"cannot reach Temporal: {describe_error(exc, ctx.timeout_s)}"
        return Outcome.of(detail, [Finding("temporal", detail)])
    state = NamespaceState.Name(described.namespace_info.state)
    retention = described.config.workflow_execution_retention_ttl.ToTimedelta()
    days = retention / timedelta(days=1)
    evidence = f"namespace '{namespace}' {state.removeprefix('NAMESPACE_STATE_')}, retention {days:g} day(s)"
    findings = []
    if described.namespace_info.state != NamespaceState.NAMESPACE_STATE_REGISTERED:
        findings.append(Finding("temporal", f"namespace '{namespace}' is {state}"))
    if days < MIN_RETENTION_DAYS:
        findings.append(
            Finding(
                "temporal", f"namespace '{namespace}' keeps workflows {days:g} day(s) < {MIN_RETENTION_DAYS}"
            )
        )
    return Outcome.of(evidence, findings)


# ---------------------------------------------------------------- object store (S3)


def s3_client(ctx: CheckContext) -> Any:
    """A boto3 client for the object store with the environment's keys: path-style, no retries,
    the probe timeout on connect and read."""
    host, port = ctx.where["minio"]
    store = ctx.env.object_store
    assert store is not None
    return boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id=ctx.secret(store.access_key_secret),
        aws_secret_access_key=ctx.secret(store.secret_key_secret),
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=ctx.timeout_s,
            read_timeout=ctx.timeout_s,
        ),
    )


async def shared_s3_client(ctx: CheckContext) -> Any:
    """One client for both object-store checks, built in a thread: boto3 loads its S3 model
    (hundreds of milliseconds of CPU) when a client is made."""
    shared = ctx.once("s3.client", lambda: asyncio.ensure_future(in_thread(ctx, lambda: s3_client(ctx))))
    return await asyncio.shield(shared)


def s3_error(exc: BaseException, ctx: CheckContext) -> tuple[str, int | None]:
    """(one line, HTTP status) for a boto3 error."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": "), status
    return describe_error(exc, ctx.timeout_s), None


def object_store_scope(ctx: CheckContext) -> str | None:
    """Why the object-store checks cannot apply, or None when they can."""
    if not ctx.in_scope("minio"):
        return "the environment runs no object store"
    if ctx.env.object_store is None:
        return "the environment names no object-store keys (object_store)"
    return None


def head_buckets(ctx: CheckContext, client: Any) -> dict[str, str | None]:
    """Each platform bucket: None when it answers HeadBucket, else why not."""
    answers: dict[str, str | None] = {}
    for bucket in PLATFORM_BUCKETS:
        try:
            client.head_bucket(Bucket=bucket)
            answers[bucket] = None
        except Exception as exc:
            detail, status = s3_error(exc, ctx)
            if status == 404:
                answers[bucket] = "bucket missing"
            elif status == 403:
                answers[bucket] = "access denied to the environment's keys (403)"
            elif status is None:
                raise  # the store itself did not answer: one finding for it, not one per bucket
            else:
                answers[bucket] = detail
    return answers


@check(
    "INF-OBJECT-BUCKETS",
    "infrastructure",
    "high",
    title="The object store has the platform's buckets",
    probes=f"S3 HeadBucket for {', '.join(PLATFORM_BUCKETS)} with the environment's keys",
    criterion="every bucket exists and the keys may read it",
    remediation="Create the bucket (mc mb local/<bucket>) and grant the platform's keys a policy on it; "
    "file-storage cannot store documents, nor backups leave the host, without it.",
)
async def object_buckets(ctx: CheckContext) -> Outcome:
    if why := object_store_scope(ctx):
        return Outcome.not_applicable(why)
    try:
        client = await shared_s3_client(ctx)
        answers = await in_thread(ctx, lambda: head_buckets(ctx, client))
    except Exception as exc:
        detail = f"the object store did not answer: {s3_error(exc, ctx)[0]}"
        return Outcome.of(detail, [Finding("minio", detail)])
    findings = [
        Finding(bucket, f"{why} (for {PLATFORM_BUCKETS[bucket]})") for bucket, why in answers.items() if why
    ]
    present = [b for b, why in answers.items() if why is None]
    return Outcome.of(
        f"{len(present)} of {len(answers)} buckets present: {', '.join(present) or 'none'}", findings
    )


def bucket_versioning(ctx: CheckContext, client: Any) -> dict[str, str]:
    """Each existing platform bucket's versioning: Enabled, Suspended, 'never enabled', or
    'not implemented' (the server answers GetBucketVersioning with no status, as S3 does for a
    never-versioned bucket, but has no versions API at all: rclone's `serve s3` does this)."""
    states: dict[str, str] = {}
    for bucket in PLATFORM_BUCKETS:
        try:
            status = client.get_bucket_versioning(Bucket=bucket).get("Status")
        except Exception as exc:
            detail, code = s3_error(exc, ctx)
            if code is None:
                raise
            states[bucket] = "bucket missing" if code == 404 else detail
            continue
        if status:
            states[bucket] = status
            continue
        try:
            client.list_object_versions(Bucket=bucket, MaxKeys=1)
            states[bucket] = "never enabled"
        except Exception as exc:
            detail, code = s3_error(exc, ctx)
            states[bucket] = (
                "not implemented" if code == 501 or "NotImplemented" in detail else "never enabled"
            )
    return states


@check(
    "INF-OBJECT-VERSIONING",
    "infrastructure",
    "medium",
    title="Versioning enabled on the platform's buckets",
    probes="S3 GetBucketVersioning (and ListObjectVersions, to tell 'never enabled' from 'not implemented')",
    criterion="every platform bucket's versioning status is Enabled",
    remediation="mc version enable local/<bucket>: an overwritten or deleted document or backup can then "
    "be recovered; add a lifecycle rule expiring noncurrent versions.",
)
async def object_versioning(ctx: CheckContext) -> Outcome:
    if why := object_store_scope(ctx):
        return Outcome.not_applicable(why)
    try:
        client = await shared_s3_client(ctx)
        states = await in_thread(ctx, lambda: bucket_versioning(ctx, client))
    except Exception as exc:
        detail = f"the object store did not answer: {s3_error(exc, ctx)[0]}"
        return Outcome.of(detail, [Finding("minio", detail)])
    evidence = "; ".join(f"{bucket} {state}" for bucket, state in states.items())
    answered = {state for state in states.values() if state != "bucket missing"}
    if answered == {"not implemented"}:
        return Outcome.not_applicable(
            "this S3 server does not implement versioning (GetBucketVersioning gives no status, "
            f"ListObjectVersions 501 NotImplemented): {evidence}"
        )
    findings = [
        Finding(bucket, f"versioning {state}" if state != "bucket missing" else state)
        for bucket, state in states.items()
        if state != "Enabled"
    ]
    return Outcome.of(f"versioning: {evidence}", findings)


# ---------------------------------------------------------------- ZooKeeper


async def zookeeper_word(host: str, port: int, word: str) -> str:
    """A ZooKeeper four-letter word: send it, read the answer until the server closes."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(word.encode())
        await writer.drain()
        return (await reader.read()).decode(errors="replace").strip()
    finally:
        writer.close()


def mntr_values(text: str) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)


@check(
    "INF-ZK-HEALTH",
    "infrastructure",
    "critical",
    title="ZooKeeper is serving",
    probes="the four-letter words `ruok` and `mntr` on the client port",
    criterion=f"ruok answers imok and mntr's zk_server_state is one of {', '.join(ZOOKEEPER_SERVING_STATES)}",
    remediation="Check zookeeper's log (quorum, disk under dataDir); allow ruok,mntr,srvr in "
    "4lw.commands.whitelist; restart zookeeper, then the brokers.",
)
async def zookeeper_health(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("zookeeper"):
        return Outcome.not_applicable("the environment runs no ZooKeeper")
    host, port = ctx.where["zookeeper"]
    try:
        ruok, mntr = await asyncio.gather(
            ctx.bounded(zookeeper_word(host, port, "ruok")), ctx.bounded(zookeeper_word(host, port, "mntr"))
        )
    except Exception as exc:
        detail = f"no answer to ruok/mntr: {describe_error(exc, ctx.timeout_s)}"
        return Outcome.of(detail, [Finding("zookeeper", detail)])
    metrics = mntr_values(mntr)
    state = metrics.get("zk_server_state")
    version = metrics.get("zk_version", "?").split(",")[0].split("-")[0]  # "3.8.0-<commit>, built on <date>"
    evidence = f"ruok -> {ruok or '(nothing)'}; zk_server_state {state or '?'}, version {version}"
    findings = []
    if ruok != "imok":
        findings.append(Finding("zookeeper", f"ruok answered {ruok or 'nothing'!r}, not imok"))
    if state not in ZOOKEEPER_SERVING_STATES:
        first_line = mntr.splitlines()[0] if mntr else "nothing"
        findings.append(Finding("zookeeper", f"not serving (mntr: {state or first_line})"))
    return Outcome.of(evidence, findings)


# ---------------------------------------------------------------- RabbitMQ


def amqp_login(host: str, port: int, user: str, password: str, timeout_s: float) -> str:
    """Open and close an AMQP connection; the server's product and version."""
    parameters = pika.ConnectionParameters(
        host,
        port,
        credentials=pika.PlainCredentials(user, password),
        connection_attempts=1,
        socket_timeout=timeout_s,
        stack_timeout=timeout_s,
        blocked_connection_timeout=timeout_s,
    )
    connection = pika.BlockingConnection(parameters)
    try:
        properties = connection._impl.server_properties
        product, version = properties.get("product", b"?"), properties.get("version", b"?")
        decoded = [p.decode() if isinstance(p, bytes) else str(p) for p in (product, version)]
        return " ".join(decoded)
    finally:
        connection.close()


@check(
    "INF-RABBITMQ",
    "infrastructure",
    "medium",
    title="RabbitMQ accepts the platform's AMQP login",
    probes="an AMQP 0-9-1 connection with the environment's RabbitMQ user (pika)",
    criterion="the connection opens (login accepted) within the probe timeout",
    remediation="Check rabbitmq's log; `rabbitmqctl authenticate_user <user> <password>`; make sure the "
    "services' credentials are the current ones (secrets rotation).",
)
async def rabbitmq_login(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("rabbitmq"):
        return Outcome.not_applicable("the environment runs no RabbitMQ")
    login = ctx.env.rabbitmq
    if login is None:
        return Outcome.not_applicable("the environment names no RabbitMQ login (rabbitmq)")
    host, port = ctx.where["rabbitmq"]
    password = ctx.secret(login.password_secret)
    try:
        server = await in_thread(ctx, lambda: amqp_login(host, port, login.user, password, ctx.timeout_s))
    except (pika.exceptions.ProbableAuthenticationError, pika.exceptions.AuthenticationError):
        detail = f"login refused for user '{login.user}'"
        return Outcome.of(detail, [Finding("rabbitmq", detail)])
    except Exception as exc:
        detail = (
            f"no AMQP connection: {describe_error(exc, ctx.timeout_s) if str(exc) else type(exc).__name__}"
        )
        return Outcome.of(detail, [Finding("rabbitmq", detail)])
    return Outcome.of(f"AMQP login as '{login.user}' accepted by {server}")


# ---------------------------------------------------------------- Prometheus and Alertmanager


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
        detail = f"{path.name} is not a rules file: {describe_error(exc)}"
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
    sending, blackholes = [], []
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
