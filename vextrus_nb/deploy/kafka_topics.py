"""Phase 2's task: the domain-event topics exist (the reference plan's "create Kafka topics";
auto-creation is off in production, KAFKA_AUTO_CREATE_TOPICS_ENABLE=false).

One topic per service that talks to Kafka, `vextrus.<service>.events`, created
through the Kafka REST Proxy v3 API (`/v3/clusters/{id}/topics`): at
`deployment.kafka_rest_url` where the environment names one, else on the
broker's own address (what the sandbox's simulated broker serves).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from vextrus_nb.config import Environment, Inventory
from vextrus_nb.errors import DeployError
from vextrus_nb.targets import endpoints

PARTITIONS = 3


def wanted_topics(inventory: Inventory) -> list[str]:
    return sorted(f"vextrus.{c.name}.events" for c in inventory.services() if "kafka" in c.depends_on)


def rest_url(env: Environment, inventory: Inventory) -> str:
    if url := env.deployment.get("kafka_rest_url"):
        return url.rstrip("/")
    host, port = endpoints(env, inventory)["kafka"]
    return f"http://{host}:{port}"


@dataclass
class TopicReport:
    wanted: list[str]
    existing: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return sorted(set(self.wanted) - set(self.existing) - set(self.created))


def _cluster(client: httpx.Client) -> str:
    response = client.get("/v3/clusters")
    response.raise_for_status()
    clusters = response.json().get("data") or []
    if not clusters:
        raise DeployError("the Kafka REST API lists no cluster")
    return str(clusters[0]["cluster_id"])


def list_topics(env: Environment, inventory: Inventory, timeout_s: float = 5.0) -> TopicReport:
    with httpx.Client(base_url=rest_url(env, inventory), timeout=timeout_s) as client:
        cluster = _cluster(client)
        response = client.get(f"/v3/clusters/{cluster}/topics")
        response.raise_for_status()
        existing = sorted(t["topic_name"] for t in response.json().get("data") or [])
    return TopicReport(wanted_topics(inventory), existing)


def ensure_topics(env: Environment, inventory: Inventory, timeout_s: float = 5.0) -> TopicReport:
    """Create the wanted topics that do not exist yet; existing ones are left alone."""
    report = list_topics(env, inventory, timeout_s)
    with httpx.Client(base_url=rest_url(env, inventory), timeout=timeout_s) as client:
        cluster = _cluster(client)
        for topic in report.missing:
            response = client.post(
                f"/v3/clusters/{cluster}/topics",
                json={"topic_name": topic, "partitions_count": PARTITIONS},
            )
            response.raise_for_status()
            report.created.append(topic)
    return report
