"""The components that cannot run here (Elasticsearch, Traefik, Grafana, Prometheus, Kafka's
REST Proxy and the other brokers and tools) as simulated HTTP servers: a health answer in each
one's own shape, which a planted `unhealthy` fault turns red; Prometheus's query API with no
series; Kafka's topic listing and creation, what the deployment phase verifies and does.

The endpoints are a mixin of ComponentServer (service_app.py), which serves them for every
component that is not a service.
"""

from __future__ import annotations

import logging

from aiohttp import web

from vextrus_nb.config import Component


class SimulatedInfrastructure:
    """A simulated component's endpoints; the server that mixes them in holds these attributes."""

    component: Component
    topics: dict[str, int]  # kafka only: topic -> partitions
    log: logging.Logger

    @property
    def unhealthy(self) -> bool:
        """Whether a planted fault makes the component answer unhealthy: the server says."""
        raise NotImplementedError

    def _add_simulated_routes(self, app: web.Application) -> None:
        c = self.component
        if c.health_path and c.health_path != "/":
            app.router.add_get(c.health_path, self._simulated_health)
        app.router.add_get("/", self._simulated_health)
        if c.name == "prometheus":
            app.router.add_get("/api/v1/query", self._prometheus_query)
        if c.name == "kafka":
            app.router.add_get("/v3/clusters", self._list_clusters)
            app.router.add_get("/v3/clusters/{cluster}/topics", self._list_topics)
            app.router.add_post("/v3/clusters/{cluster}/topics", self._create_topic)

    async def _prometheus_query(self, request: web.Request) -> web.Response:
        """Prometheus's query API, with no series: the sandbox runs no kafka-exporter."""
        return web.json_response({"status": "success", "data": {"resultType": "vector", "result": []}})

    async def _list_clusters(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "KafkaClusterList", "data": [{"cluster_id": "vextrus-sandbox"}]})

    async def _list_topics(self, request: web.Request) -> web.Response:
        """The topic listing of the Kafka REST Proxy v3 API (what the deployment phase verifies)."""
        data = [{"topic_name": t, "partitions_count": n} for t, n in sorted(self.topics.items())]
        return web.json_response({"kind": "KafkaTopicList", "data": data})

    async def _create_topic(self, request: web.Request) -> web.Response:
        body = await request.json()
        name = str(body.get("topic_name", ""))
        if not name:
            return web.json_response({"error_code": 400, "message": "topic_name is required"}, status=400)
        if name in self.topics:
            return web.json_response(
                {"error_code": 40002, "message": f"Topic '{name}' already exists."}, status=400
            )
        self.topics[name] = int(body.get("partitions_count", 1))
        self.log.info("[KafkaAdmin] created topic %s (%d partitions)", name, self.topics[name])
        return web.json_response({"kind": "KafkaTopic", "topic_name": name}, status=201)

    async def _simulated_health(self, request: web.Request) -> web.Response:
        name, bad = self.component.name, self.unhealthy
        if name == "elasticsearch":
            return web.json_response(
                {
                    "cluster_name": "vextrus-sandbox",
                    "status": "red" if bad else "green",
                    "number_of_nodes": 1,
                    "active_shards_percent_as_number": 0 if bad else 100,
                }
            )
        if bad:
            return web.json_response({"status": "error", "message": "fault injected: unhealthy"}, status=503)
        if name == "traefik":
            return web.Response(text="OK")
        if name == "grafana":
            return web.json_response({"database": "ok", "version": "10.4.0"})
        return web.json_response({"status": "ok", "component": name, "simulated": True})
