"""Phase 2's task: the domain-event topics exist (the reference plan's "create Kafka topics";
auto-creation is off in production, KAFKA_AUTO_CREATE_TOPICS_ENABLE=false).

One topic per service that talks to Kafka, `vextrus.<service>.events`, created with the Kafka
admin API (confluent-kafka's AdminClient) at the environment's broker, with the partitions and
replication factor of parameters/kafka.yaml. A topic that exists is left alone, whatever its
settings (Tansu, the sandbox's broker, rejects CreatePartitions; a real Kafka only ever grows
them): a second run creates nothing.

An environment whose broker cannot speak the Kafka protocol goes through a Kafka REST Proxy v3
API (`/v3/clusters/{id}/topics`) instead: the one `deployment.kafka_rest_url` names, or the
broker's own address where the environment lists kafka as simulated (the compose stack's
simulated broker serves only that API).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vextrus_nb import paths
from vextrus_nb.config import Environment, Inventory, read_yaml, validation_message
from vextrus_nb.errors import ConfigError, DeployError
from vextrus_nb.probe_targets import endpoints

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient


class TopicSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    partitions: Annotated[int, Field(ge=1)]
    replication_factor: Annotated[int, Field(ge=1)]


class KafkaParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = 1
    domain_topics: TopicSettings


@cache
def _load(path: Path) -> KafkaParameters:
    try:
        return KafkaParameters.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise ConfigError(validation_message(path, exc)) from None


def topic_settings() -> TopicSettings:
    """Partitions and replication factor of the domain-event topics (parameters/kafka.yaml)."""
    return _load(paths.parameters_dir() / "kafka.yaml").domain_topics


def wanted_topics(inventory: Inventory) -> list[str]:
    return sorted(f"vextrus.{c.name}.events" for c in inventory.services() if "kafka" in c.depends_on)


def bootstrap_address(env: Environment, inventory: Inventory) -> str:
    host, port = endpoints(env, inventory)["kafka"]
    return f"{host}:{port}"


def uses_rest_proxy(env: Environment) -> bool:
    """True where the topics go through a REST Proxy: one is named, or the broker is a simulation."""
    return "kafka_rest_url" in env.deployment or "kafka" in env.simulated


@dataclass
class TopicReport:
    wanted: list[str]
    existing: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return sorted(set(self.wanted) - set(self.existing) - set(self.created))


# ---------------------------------------------------------------- the Kafka admin API


def _admin(bootstrap: str) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    # log_level 0: librdkafka's own connection retries would otherwise print to stderr (into the
    # notebook); what went wrong reaches the caller as the call's error instead.
    return AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})


def _kafka_reason(exc: BaseException) -> str:
    """The broker's error name and text (a KafkaException carries a KafkaError)."""
    error = exc.args[0] if exc.args else None
    if error is not None and hasattr(error, "name") and hasattr(error, "str"):
        return f"{error.name()}: {error.str()}"
    return f"{type(exc).__name__}: {exc}"


def _already_exists(exc: BaseException) -> bool:
    from confluent_kafka import KafkaError

    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS


def broker_topics(bootstrap: str, timeout: float) -> list[str]:
    """The topics the broker lists (its metadata), or DeployError naming the broker."""
    from confluent_kafka import KafkaException

    try:
        metadata = _admin(bootstrap).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise DeployError(
            f"Kafka broker {bootstrap}: cannot list topics within {timeout:g} s ({_kafka_reason(exc)})"
        ) from None
    return sorted(name for name in metadata.topics if not name.startswith("__"))


def ensure_topics(
    bootstrap: str, topics: list[str], partitions: int, replication_factor: int, timeout: float
) -> list[str]:
    """Create those of `topics` the broker does not list; returns the ones created. A topic some
    other client created meanwhile (TOPIC_ALREADY_EXISTS) counts as existing, not as an error."""
    from confluent_kafka.admin import NewTopic

    existing = set(broker_topics(bootstrap, timeout))
    missing = [t for t in topics if t not in existing]
    if not missing:
        return []
    requests = [
        NewTopic(t, num_partitions=partitions, replication_factor=replication_factor) for t in missing
    ]
    admin = _admin(bootstrap)  # held until the futures resolve: destroying it cancels them
    futures = admin.create_topics(requests, operation_timeout=timeout, request_timeout=timeout)
    created, failures = [], []
    for topic in missing:
        try:
            futures[topic].result(timeout=timeout)
            created.append(topic)
        except Exception as exc:  # a KafkaException, or the future's own TimeoutError
            if not _already_exists(exc):
                failures.append(f"{topic} ({_kafka_reason(exc)})")
    if failures:
        raise DeployError(
            f"Kafka broker {bootstrap}: could not create {'; '.join(failures)}"
            + (f"; created {', '.join(created)}" if created else "")
        )
    return created


# ---------------------------------------------------------------- an environment's topics


def list_topics(env: Environment, inventory: Inventory, timeout_s: float = 5.0) -> TopicReport:
    """Which domain-event topics exist (what phase 2 verifies and its dry run plans from)."""
    if uses_rest_proxy(env):
        existing = _rest_topics(env, inventory, timeout_s)
    else:
        existing = broker_topics(bootstrap_address(env, inventory), timeout_s)
    wanted = wanted_topics(inventory)
    return TopicReport(wanted, sorted(set(existing) & set(wanted)))


def deploy_topics(
    env: Environment, inventory: Inventory, timeout_s: float = 5.0, dry_run: bool = False
) -> TopicReport:
    """Phase 2's task: create the missing domain-event topics. A dry run creates nothing: its
    report's `missing` are the topics a live run would create."""
    report = list_topics(env, inventory, timeout_s)
    if dry_run or not report.missing:
        return report
    missing = report.missing
    if uses_rest_proxy(env):
        report.created = _rest_create(env, inventory, missing, topic_settings().partitions, timeout_s)
    else:
        settings = topic_settings()
        report.created = ensure_topics(
            bootstrap_address(env, inventory),
            missing,
            settings.partitions,
            settings.replication_factor,
            timeout_s,
        )
    report.existing = sorted({*report.existing, *(set(missing) - set(report.created))})
    return report


# ---------------------------------------------------------------- a Kafka REST Proxy v3


def rest_url(env: Environment, inventory: Inventory) -> str:
    if url := env.deployment.get("kafka_rest_url"):
        return url.rstrip("/")
    return f"http://{bootstrap_address(env, inventory)}"


def _rest(env: Environment, inventory: Inventory, timeout_s: float) -> tuple[httpx.Client, str]:
    """A client on the REST Proxy and its first cluster's id."""
    client = httpx.Client(base_url=rest_url(env, inventory), timeout=timeout_s)
    try:
        response = client.get("/v3/clusters")
        response.raise_for_status()
        clusters: list[dict[str, Any]] = response.json().get("data") or []
    except (httpx.HTTPError, ValueError) as exc:
        client.close()
        raise DeployError(f"Kafka REST API at {client.base_url}: cannot list clusters ({exc})") from None
    if not clusters:
        client.close()
        raise DeployError(f"Kafka REST API at {client.base_url} lists no cluster")
    return client, str(clusters[0]["cluster_id"])


def _rest_topics(env: Environment, inventory: Inventory, timeout_s: float) -> list[str]:
    client, cluster = _rest(env, inventory, timeout_s)
    try:  # not `with client:`: httpx refuses to enter a client that has already sent a request
        response = client.get(f"/v3/clusters/{cluster}/topics")
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise DeployError(f"Kafka REST API at {client.base_url}: cannot list topics ({exc})") from None
    finally:
        client.close()
    return sorted(t["topic_name"] for t in response.json().get("data") or [])


def _rest_create(
    env: Environment, inventory: Inventory, topics: list[str], partitions: int, timeout_s: float
) -> list[str]:
    created = []
    client, cluster = _rest(env, inventory, timeout_s)
    try:
        for topic in topics:
            response = client.post(
                f"/v3/clusters/{cluster}/topics", json={"topic_name": topic, "partitions_count": partitions}
            )
            if response.is_error:
                raise DeployError(
                    f"Kafka REST API at {client.base_url}: creating topic {topic} answered "
                    f"{response.status_code} {response.text[:200]}"
                )
            created.append(topic)
    finally:
        client.close()
    return created
