"""What a deployed platform has on its real servers, put there by the sandbox: phase 2's
domain-event topics on the broker, the platform's buckets in the object store, its Temporal
namespace. The deployment variant decides the settings the checklist judges: `planted` carries
the reference documents' findings (a replication factor of 1: critical gap 5; Temporal's
default one-day retention), `hardened` what they ask for (3; a week).

Idempotent: the services process applies it when the sandbox starts, after a heal (Tansu keeps
topics in memory only, so a restarted broker has none until they are made again, as a phase 2
re-run would), and when the variant changes (`vextrus-nb sandbox deployment hardened`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

from vextrus_nb.checks.kafka import MIN_REPLICATION
from vextrus_nb.checks.object_store import PLATFORM_BUCKETS
from vextrus_nb.checks.temporal import MIN_RETENTION_DAYS, TEMPORAL_NAMESPACE
from vextrus_nb.config import Inventory
from vextrus_nb.deploy import kafka_topics
from vextrus_nb.sandbox import real_platform, real_servers
from vextrus_nb.sandbox.real_servers import LOOPBACK
from vextrus_nb.sandbox_state import SandboxState

log = logging.getLogger("vextrus.sandbox")
TIMEOUT_S = 15.0


@dataclass(frozen=True)
class VariantSettings:
    replication_factor: int
    retention_days: int


VARIANTS = {
    "planted": VariantSettings(replication_factor=1, retention_days=1),
    "hardened": VariantSettings(replication_factor=MIN_REPLICATION, retention_days=MIN_RETENTION_DAYS),
}

PROVISIONED = ("kafka", "minio", "temporal")
"""The real servers that hold part of the deployed platform's state."""


def provision(
    state: SandboxState, inventory: Inventory, variant: str, components: tuple[str, ...] = PROVISIONED
) -> list[str]:
    """Bring these servers' part of the platform to the variant's settings; what was done."""
    settings = VARIANTS[variant]
    done: list[str] = []
    if "kafka" in components:
        done += _topics(state, inventory, settings)
    if "minio" in components:
        done += _buckets(state)
    if "temporal" in components:
        done += _namespace(state, settings)
    return done


def _topics(state: SandboxState, inventory: Inventory, settings: VariantSettings) -> list[str]:
    """The domain topics with the variant's replication factor: one with another factor is
    recreated (a real Kafka would reassign partitions; Tansu cannot, and holds no data here)."""
    from confluent_kafka.admin import AdminClient

    bootstrap = f"{LOOPBACK}:{state.ports['kafka']}"
    wanted = kafka_topics.wanted_topics(inventory)
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    metadata = admin.list_topics(timeout=TIMEOUT_S)
    wrong = [
        name
        for name in wanted
        if name in metadata.topics
        and any(
            len(p.replicas) != settings.replication_factor for p in metadata.topics[name].partitions.values()
        )
    ]
    if wrong:
        for future in admin.delete_topics(wrong, operation_timeout=TIMEOUT_S).values():
            future.result(TIMEOUT_S)
        _wait_until_gone(admin, wrong)
    created = kafka_topics.ensure_topics(
        bootstrap, wanted, kafka_topics.topic_settings().partitions, settings.replication_factor, TIMEOUT_S
    )
    if not created:
        return []
    return [f"{len(created)} domain topic(s) (replication factor {settings.replication_factor})"]


def _wait_until_gone(admin: object, topics: list[str]) -> None:
    from vextrus_nb.sandbox.supervisor import wait_for

    wait_for(lambda: not set(topics) & set(admin.list_topics(timeout=TIMEOUT_S).topics), TIMEOUT_S)  # type: ignore[attr-defined]


def _buckets(state: SandboxState) -> list[str]:
    client = real_servers.s3_client(real_platform.server_handle(state, "minio"))
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    made = [name for name in PLATFORM_BUCKETS if name not in existing]
    for name in made:
        client.create_bucket(Bucket=name)
    return [f"bucket {name}" for name in made]


def _namespace(state: SandboxState, settings: VariantSettings) -> list[str]:
    """Register the platform's namespace, or set its retention to the variant's."""
    from google.protobuf.duration_pb2 import Duration
    from temporalio.api.namespace.v1 import NamespaceConfig
    from temporalio.api.workflowservice.v1 import (
        DescribeNamespaceRequest,
        RegisterNamespaceRequest,
        UpdateNamespaceRequest,
    )
    from temporalio.client import Client
    from temporalio.service import RPCError, RPCStatusCode

    retention = Duration()
    retention.FromTimedelta(timedelta(days=settings.retention_days))
    address = f"{LOOPBACK}:{state.ports['temporal']}"

    async def apply() -> str | None:
        client = await Client.connect(address)
        service = client.workflow_service
        timeout = timedelta(seconds=TIMEOUT_S)
        try:
            described = await service.describe_namespace(
                DescribeNamespaceRequest(namespace=TEMPORAL_NAMESPACE), timeout=timeout
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            await service.register_namespace(
                RegisterNamespaceRequest(
                    namespace=TEMPORAL_NAMESPACE, workflow_execution_retention_period=retention
                ),
                timeout=timeout,
            )
            return f"namespace {TEMPORAL_NAMESPACE} ({settings.retention_days} day retention)"
        if described.config.workflow_execution_retention_ttl.ToTimedelta() == retention.ToTimedelta():
            return None
        await service.update_namespace(
            UpdateNamespaceRequest(
                namespace=TEMPORAL_NAMESPACE,
                config=NamespaceConfig(workflow_execution_retention_ttl=retention),
            ),
            timeout=timeout,
        )
        return f"namespace {TEMPORAL_NAMESPACE} retention set to {settings.retention_days} day(s)"

    outcome = asyncio.run(apply())
    return [outcome] if outcome else []
