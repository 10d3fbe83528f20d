"""Kafka's metadata, not its messages: every topic's partitions, replication factor and
configuration, and every consumer group's committed offsets, exported into the set with
confluent-kafka's AdminClient, and re-applied into a broker (topics re-created, offsets
re-committed with alter_consumer_group_offsets), then proven by reading them back.

Messages are not backed up: a restored broker has the topics and each group's place, and the
producers' outboxes (in PostgreSQL, which is restored) re-publish what was not yet sent. An
offset re-committed past the restored log's end makes that group's consumers reset by their
`auto.offset.reset`.

Topic configuration: every non-sensitive, writable entry DescribeConfigs returns (Tansu, the
sandbox's broker, reports the ones a topic was created with as defaults, so "non-default"
cannot be trusted to pick them). A topic that exists on the target broker is left as it is and
compared (Tansu rejects CreatePartitions; a real Kafka only grows them), so a second restore
creates nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from vextrus_nb.backup.manifest import GroupOffsets, TopicEntry
from vextrus_nb.errors import BackupError

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

KAFKA_FILE = "kafka/metadata.json"
TIMEOUT_S = 15.0
INTERNAL_PREFIX = "__"  # __consumer_offsets and friends: the broker's own


class KafkaExport(BaseModel):
    model_config = ConfigDict(extra="forbid")
    bootstrap: str
    exported_at: str
    topics: list[TopicEntry]
    groups: list[GroupOffsets]

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2))

    @classmethod
    def read(cls, path: Path) -> KafkaExport:
        if not path.is_file():
            raise BackupError(f"{path.name}: missing, no Kafka export to restore")
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except (ValueError, ValidationError) as exc:
            first_line = str(exc).splitlines()[0]
            raise BackupError(f"{path.name} is not a valid Kafka export: {first_line}") from None


def admin(bootstrap: str) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    # log_level 0: librdkafka's retries would print to stderr (into the notebook); what went
    # wrong reaches the caller as the call's error.
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})


def _reason(exc: BaseException) -> str:
    error = exc.args[0] if exc.args else None
    if error is not None and hasattr(error, "name") and hasattr(error, "str"):
        return f"{error.name()}: {error.str()}"
    return f"{type(exc).__name__}: {exc}"


def _topic_configs(client: AdminClient, names: list[str], timeout_s: float) -> dict[str, dict[str, str]]:
    from confluent_kafka.admin import ConfigResource, ResourceType

    if not names:
        return {}
    futures = client.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names])
    found = {}
    for resource, future in futures.items():
        entries = future.result(timeout=timeout_s)
        found[resource.name] = {
            key: str(entry.value)
            for key, entry in sorted(entries.items())
            if entry.value is not None and not entry.is_sensitive and not entry.is_read_only
        }
    return found


def _group_offsets(client: AdminClient, timeout_s: float) -> list[GroupOffsets]:
    from confluent_kafka import ConsumerGroupTopicPartitions

    listed = client.list_consumer_groups(request_timeout=timeout_s).result(timeout=timeout_s)
    groups = []
    for group_id in sorted(g.group_id for g in listed.valid):
        [future] = client.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group_id)]).values()
        offsets: dict[str, dict[int, int]] = {}
        for part in future.result(timeout=timeout_s).topic_partitions:
            if part.offset >= 0:  # a partition the group never committed has none to restore
                offsets.setdefault(part.topic, {})[part.partition] = part.offset
        groups.append(GroupOffsets(group=group_id, offsets=offsets))
    return groups


def export(bootstrap: str, exported_at: str, timeout_s: float = TIMEOUT_S) -> KafkaExport:
    """The broker's topics (but its own internal ones) and consumer groups' committed offsets."""
    from confluent_kafka import KafkaException

    client = admin(bootstrap)
    try:
        metadata = client.list_topics(timeout=timeout_s)
        names = sorted(n for n in metadata.topics if not n.startswith(INTERNAL_PREFIX))
        configs = _topic_configs(client, names, timeout_s)
        topics = [
            TopicEntry(
                name=name,
                partitions=len(metadata.topics[name].partitions),
                replication_factor=max(
                    (len(p.replicas) for p in metadata.topics[name].partitions.values()), default=1
                ),
                configs=configs.get(name, {}),
            )
            for name in names
        ]
        groups = _group_offsets(client, timeout_s)
    except KafkaException as exc:
        raise BackupError(f"Kafka broker {bootstrap}: cannot export its metadata ({_reason(exc)})") from None
    return KafkaExport(bootstrap=bootstrap, exported_at=exported_at, topics=topics, groups=groups)


@dataclass
class KafkaRestore:
    into: str  # the broker's address
    topics: int = 0
    groups: int = 0
    created: list[str] = field(default_factory=list)
    seconds: float = 0.0
    mismatches: list[str] = field(default_factory=list)

    @property
    def proven(self) -> bool:
        return not self.mismatches

    def row(self) -> dict[str, Any]:
        return {
            "datastore": "kafka metadata",
            "restored into": self.into,
            "topics": self.topics,
            "groups": self.groups,
            "seconds": self.seconds,
            "proven": self.proven,
            "mismatches": "; ".join(self.mismatches[:5]),
            "old data kept as": "",
        }


def restore(exported: KafkaExport, bootstrap: str) -> KafkaRestore:
    """Create the missing topics, re-commit every group's offsets, then prove both by reading
    them back from the broker."""
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
    from confluent_kafka.admin import NewTopic

    started = time.perf_counter()
    outcome = KafkaRestore(bootstrap, len(exported.topics), len(exported.groups))
    client = admin(bootstrap)
    try:
        existing = set(client.list_topics(timeout=TIMEOUT_S).topics)
        wanted = [t for t in exported.topics if t.name not in existing]
        if wanted:
            futures = client.create_topics(
                [NewTopic(t.name, t.partitions, t.replication_factor, config=t.configs) for t in wanted],
                operation_timeout=TIMEOUT_S,
            )
            for name, future in futures.items():
                try:
                    future.result(timeout=TIMEOUT_S)
                    outcome.created.append(name)
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        outcome.mismatches.append(f"topic {name}: not created ({_reason(exc)})")
        for group in exported.groups:
            parts = [
                TopicPartition(topic, partition, offset)
                for topic, by_partition in sorted(group.offsets.items())
                for partition, offset in sorted(by_partition.items())
            ]
            if parts:
                [future] = client.alter_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(group.group, parts)]
                ).values()
                future.result(timeout=TIMEOUT_S)
        outcome.mismatches += prove(exported, bootstrap)
    except KafkaException as exc:
        outcome.mismatches.append(f"Kafka broker {bootstrap}: {_reason(exc)}")
    outcome.seconds = round(time.perf_counter() - started, 3)
    return outcome


def prove(exported: KafkaExport, bootstrap: str, timeout_s: float = TIMEOUT_S) -> list[str]:
    """The broker's topics and group offsets against the export, one line per difference."""
    found = export(bootstrap, "", timeout_s)
    mismatches = []
    topics = {t.name: t for t in found.topics}
    for topic in exported.topics:
        got = topics.get(topic.name)
        if got is None:
            mismatches.append(f"topic {topic.name}: missing")
            continue
        if got.partitions != topic.partitions:
            mismatches.append(
                f"topic {topic.name}: {got.partitions} partitions, export says {topic.partitions}"
            )
        if got.replication_factor != topic.replication_factor:
            mismatches.append(
                f"topic {topic.name}: replication factor {got.replication_factor}, "
                f"export says {topic.replication_factor}"
            )
        differing = sorted(k for k, v in topic.configs.items() if got.configs.get(k) != v)
        if differing:
            mismatches.append(f"topic {topic.name}: config differs for {', '.join(differing)}")
    groups = {g.group: g for g in found.groups}
    for group in exported.groups:
        got_offsets = groups[group.group].offsets if group.group in groups else {}
        if group.offsets and not got_offsets:
            mismatches.append(f"group {group.group}: no committed offsets")
        elif got_offsets != group.offsets:
            mismatches.append(f"group {group.group}: committed offsets differ from the export")
    return mismatches
