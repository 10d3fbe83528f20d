"""Phase 2's domain-event topics through the Kafka admin API, against a real Kafka-protocol broker
(Tansu, real_servers.start_tansu): a dry run creates nothing, a live run creates every wanted
topic with the configured partitions (a separate client lists them), a second run creates
nothing, and a stopped broker is a DeployError naming its address."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from vextrus_nb.config import Environment, Inventory, load_inventory
from vextrus_nb.deploy import kafka_topics
from vextrus_nb.errors import ConfigError, DeployError
from vextrus_nb.sandbox import real_servers
from vextrus_nb.sandbox.real_servers import RealServer

pytestmark = pytest.mark.servers

TIMEOUT_S = 5.0


def environment_at(port: int, **fields: object) -> Environment:
    """An environment whose broker is the one on `port` (no sandbox state file needed)."""
    return Environment.model_validate(
        {"name": "kafka-topics-test", "driver": "local", "ports": {"kafka": port}, **fields}
    )


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    with real_servers.running("kafka", tmp_path_factory.mktemp("tansu")) as server:
        yield server


def listed_partitions(bootstrap: str) -> dict[str, int]:
    """Topic -> partition count, from a client of its own (not the module under test)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = admin.list_topics(timeout=TIMEOUT_S).topics
    return {name: len(meta.partitions) for name, meta in topics.items()}


def test_the_settings_come_from_parameters() -> None:
    settings = kafka_topics.topic_settings()
    assert settings.partitions >= 1
    assert settings.replication_factor == 3  # below 3 is the reference plan's critical gap 5


def test_a_bad_settings_file_is_refused_naming_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kafka.yaml").write_text("domain_topics: {partitions: 3, replication_factor: 0}\n")
    monkeypatch.setenv("VEXTRUS_PARAMETERS_DIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"kafka\.yaml.*\n.*domain_topics\.replication_factor"):
        kafka_topics.topic_settings()


def test_dry_run_creates_nothing(broker: RealServer, inventory: Inventory) -> None:
    env = environment_at(broker.port)
    before = listed_partitions(broker.extra["bootstrap"])
    report = kafka_topics.deploy_topics(env, inventory, TIMEOUT_S, dry_run=True)
    assert report.created == []
    assert report.missing == kafka_topics.wanted_topics(inventory)  # the plan: every topic
    assert listed_partitions(broker.extra["bootstrap"]) == before


def test_a_live_run_creates_every_topic_and_a_second_creates_none(
    broker: RealServer, inventory: Inventory
) -> None:
    env = environment_at(broker.port)
    wanted = kafka_topics.wanted_topics(inventory)
    assert wanted, "the inventory names services that talk to Kafka"

    first = kafka_topics.deploy_topics(env, inventory, TIMEOUT_S)
    assert sorted(first.created) == wanted and first.missing == []
    partitions = kafka_topics.topic_settings().partitions
    listed = listed_partitions(broker.extra["bootstrap"])
    assert {t: listed.get(t) for t in wanted} == dict.fromkeys(wanted, partitions)

    second = kafka_topics.deploy_topics(env, inventory, TIMEOUT_S)
    assert second.created == [] and second.existing == wanted and second.missing == []
    assert kafka_topics.list_topics(env, inventory, TIMEOUT_S).missing == []


def test_ensure_topics_returns_only_what_it_created(broker: RealServer) -> None:
    bootstrap = broker.extra["bootstrap"]
    assert kafka_topics.ensure_topics(bootstrap, ["ensure.a", "ensure.b"], 2, 1, TIMEOUT_S) == [
        "ensure.a",
        "ensure.b",
    ]
    assert kafka_topics.ensure_topics(bootstrap, ["ensure.a", "ensure.b", "ensure.c"], 2, 1, TIMEOUT_S) == [
        "ensure.c"
    ]
    assert listed_partitions(bootstrap)["ensure.c"] == 2


def test_a_topic_created_meanwhile_counts_as_existing(broker: RealServer) -> None:
    """What the broker answers to a duplicate creation is read as "exists", not as a failure."""
    admin = AdminClient({"bootstrap.servers": broker.extra["bootstrap"]})
    admin.create_topics([NewTopic("raced", num_partitions=1, replication_factor=1)])["raced"].result(
        TIMEOUT_S
    )
    duplicate = admin.create_topics([NewTopic("raced", num_partitions=1, replication_factor=1)])["raced"]
    with pytest.raises(Exception) as raised:
        duplicate.result(TIMEOUT_S)
    assert kafka_topics._already_exists(raised.value)
    del admin, duplicate, raised  # Tansu waits ~5 s on open client connections before it stops


def test_a_stopped_broker_is_a_deploy_error_naming_it(tmp_path: Path, inventory: Inventory) -> None:
    server = real_servers.start_tansu(tmp_path)
    server.stop()
    env = environment_at(server.port)
    with pytest.raises(
        DeployError, match=rf"Kafka broker 127\.0\.0\.1:{server.port}: cannot list topics within 1 s"
    ):
        kafka_topics.deploy_topics(env, inventory, timeout_s=1.0)
    with pytest.raises(DeployError, match=rf"127\.0\.0\.1:{server.port}"):
        kafka_topics.ensure_topics(f"127.0.0.1:{server.port}", ["t"], 1, 1, timeout=1.0)


def test_a_simulated_broker_or_a_named_rest_proxy_goes_through_rest() -> None:
    assert not kafka_topics.uses_rest_proxy(environment_at(9092))
    assert kafka_topics.uses_rest_proxy(environment_at(9092, simulated=["kafka"]))
    assert kafka_topics.uses_rest_proxy(
        environment_at(9092, deployment={"kafka_rest_url": "http://127.0.0.1:8082"})
    )
