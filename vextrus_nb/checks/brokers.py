"""The platform's brokers, object store and orchestrator, over their own protocols: Kafka
topics, replication and lag; Temporal's namespace and retention; the object store's buckets
and versioning; ZooKeeper's `ruok`/`mntr`; RabbitMQ's AMQP login; Prometheus's targets and
rules; Alertmanager's configuration."""

from __future__ import annotations
