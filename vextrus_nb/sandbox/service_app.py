"""The Vextrus services (and the components that cannot run here) as real HTTP
servers: one aiohttp process, one listening site per component.

Service health follows NestJS Terminus and is computed from real checks of each
service's dependencies: its own PostgreSQL database with its own role, Redis
with its own ACL user, and a TCP connect to each simulated broker. Stopping
PostgreSQL therefore turns every service's readiness red, as in production.

Run as `python -m vextrus_nb.sandbox.service_app SANDBOX_DIR`; it is controlled
through a loopback control port (see manager.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import logging.handlers
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from vextrus_nb.config import Component, Inventory, load_inventory
from vextrus_nb.credentials import (
    JWT_KEY_SECRET,
    acl_user_name,
    pg_role_name,
    pg_secret_name,
    redis_secret_name,
    split_login,
)
from vextrus_nb.local_platform import SandboxState, read_faults
from vextrus_nb.sandbox import faults as fault_modes

log = logging.getLogger("vextrus.sandbox")
HOST = "127.0.0.1"
INDICATOR_TIMEOUT_S = 1.5
LOGS_DIR = "logs"
LOG_FILE_BYTES = 1_000_000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ComponentHost(Protocol):
    """What a component server asks of whatever runs it: the sandbox's one process
    (Platform), or a container of its own (component.StandaloneHost)."""

    ports: dict[str, int]
    log_directory: Path | None

    def dependency_checks(self, component: Component) -> dict[str, Awaitable[str | None]]: ...

    async def tcp_check(self, name: str) -> str | None: ...

    async def count_pending_outbox(self, component: Component) -> int: ...

    def jwt_keys(self) -> JwtKeys: ...


class JwtKeys(NamedTuple):
    """What a service knows of the JWT signing key when it starts: the key it signs with,
    and every key it accepts (current, plus a rotation's pending and previous)."""

    signing: str | None
    verifying: tuple[str, ...]


JWT_ALGORITHM = "HS256"
JWT_SIGNER = "auth"  # the service that issues tokens; every service verifies them


class ComponentServer:
    """One component: its aiohttp app, its listening site, its current fault."""

    def __init__(self, component: Component, port: int, platform: ComponentHost):
        self.component = component
        self.port = port
        self.platform = platform
        self.fault: dict[str, Any] | None = None
        self.site: web.TCPSite | None = None
        self.log = _component_logger(component.name, platform.log_directory)
        self.topics: dict[str, int] = {}  # kafka only: topic -> partitions
        self.keys = JwtKeys(None, ())  # read at each start, as a NestJS JwtModule reads its config
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests", "HTTP requests served", ["method", "path", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "http_request_duration_seconds", "HTTP request latency", ["path"], registry=self.registry
        )
        app = web.Application(middlewares=[self._middleware])
        self._add_routes(app)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)

    # -- lifecycle -----------------------------------------------------------
    async def setup(self) -> None:
        await self.runner.setup()

    async def listen(self) -> None:
        if self.site is None:
            if self.component.kind == "service":
                self.keys = self.platform.jwt_keys()
            self.site = web.TCPSite(self.runner, HOST, self.port, reuse_address=True)
            await self.site.start()
            self.log.info("[NestApplication] Nest application successfully started on port %d", self.port)

    async def stop_listening(self) -> None:
        if self.site is not None:
            await self.site.stop()
            self.site = None
            self.log.warning("[NestApplication] received shutdown signal; stopped listening")

    # -- behaviour -------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        if self.fault and self.fault.get("mode") == "slow":
            await asyncio.sleep(float(self.fault.get("delay_s", fault_modes.DEFAULT_SLOW_DELAY_S)))
        response = await handler(request)
        self.requests.labels(request.method, request.path, str(response.status)).inc()
        self.latency.labels(request.path).observe(time.perf_counter() - started)
        return response

    @property
    def unhealthy(self) -> bool:
        return bool(self.fault and self.fault.get("mode") == "unhealthy")

    def _add_routes(self, app: web.Application) -> None:
        c = self.component
        if c.kind == "service":
            app.router.add_get("/health", self._terminus(include_dependencies=True))
            app.router.add_get("/health/ready", self._terminus(include_dependencies=True))
            app.router.add_get("/health/live", self._liveness)
            app.router.add_get("/metrics", self._metrics)
            app.router.add_get("/auth/verify", self._verify_token)
            if c.name == JWT_SIGNER:
                app.router.add_post("/auth/token", self._issue_token)
            if c.database:
                app.router.add_get("/api/outbox/pending", self._pending_outbox)
            if c.subgraphs:
                app.router.add_route("*", "/graphql", self._graphql)
        else:
            if c.health_path and c.health_path != "/":
                app.router.add_get(c.health_path, self._simulated_health)
            app.router.add_get("/", self._simulated_health)
            if c.name == "prometheus":
                app.router.add_get("/api/v1/query", self._prometheus_query)
            if c.name == "kafka":
                app.router.add_get("/v3/clusters", self._list_clusters)
                app.router.add_get("/v3/clusters/{cluster}/topics", self._list_topics)
                app.router.add_post("/v3/clusters/{cluster}/topics", self._create_topic)

    async def _issue_token(self, request: web.Request) -> web.Response:
        """A short-lived access token signed with the key this process started with."""
        import jwt

        if self.keys.signing is None:
            return web.json_response({"statusCode": 503, "message": "no signing key"}, status=503)
        now = int(time.time())
        claims = {"sub": request.query.get("sub", "operator"), "iat": now, "exp": now + 900}
        return web.json_response({"access_token": jwt.encode(claims, self.keys.signing, JWT_ALGORITHM)})

    async def _verify_token(self, request: web.Request) -> web.Response:
        """What a JwtAuthGuard does: accept a bearer token signed by any key the service knows."""
        import jwt

        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        for key in self.keys.verifying:
            try:
                claims = jwt.decode(token, key, algorithms=[JWT_ALGORITHM])
            except jwt.InvalidTokenError:
                continue
            return web.json_response({"sub": claims.get("sub")})
        self.log.warning("[JwtAuthGuard] rejected a token: no known key verifies it")
        return web.json_response({"statusCode": 401, "message": "Unauthorized"}, status=401)

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _liveness(self, request: web.Request) -> web.StreamResponse:
        coupled = bool(self.fault and self.fault.get("mode") == "live-deps")
        return await self._terminus(include_dependencies=coupled)(request)

    def _terminus(self, include_dependencies: bool) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            checks: dict[str, Awaitable[str | None]] = {}
            if include_dependencies:
                checks = self.platform.dependency_checks(self.component)
            names = list(checks)
            outcomes = await asyncio.gather(*checks.values())
            info: dict[str, Any] = {"memory_heap": {"status": "up"}}
            error: dict[str, Any] = {}
            for name, problem in zip(names, outcomes, strict=True):
                if problem is None:
                    info[name] = {"status": "up"}
                else:
                    error[name] = {"status": "down", "message": problem}
            if self.unhealthy and include_dependencies:
                error["process"] = {"status": "down", "message": "fault injected: unhealthy"}
            if error:
                # What @nestjs/terminus logs when a check fails.
                self.log.error("[HealthCheckService] Health Check has failed! %s", json.dumps(error))
            body = {
                "status": "error" if error else "ok",
                "info": info,
                "error": error,
                "details": {**info, **error},
            }
            return web.json_response(body, status=503 if error else 200)

        return handler

    async def _pending_outbox(self, request: web.Request) -> web.Response:
        """A real query on the service's own table, the kind of work users wait on: it
        blocks behind a lock as production queries do (no statement timeout)."""
        try:
            count = await self.platform.count_pending_outbox(self.component)
        except Exception as exc:
            self.log.error("[ExceptionsHandler] GET /api/outbox/pending failed: %s", _first_line(exc))
            return web.json_response({"statusCode": 500, "message": "Internal server error"}, status=500)
        return web.json_response({"pending": count})

    async def _graphql(self, request: web.Request) -> web.Response:
        subgraphs = []
        for name in self.component.subgraphs:
            problem = await self.platform.tcp_check(name)
            subgraphs.append(
                {
                    "name": name,
                    "url": f"http://{HOST}:{self.platform.ports[name]}/graphql",
                    "status": "up" if problem is None else "down",
                }
            )
        body: dict[str, Any] = {"data": {"_gateway": {"subgraphs": subgraphs}}}
        down = [s["name"] for s in subgraphs if s["status"] == "down"]
        if down:
            body["errors"] = [{"message": f"subgraph(s) unavailable: {', '.join(down)}"}]
        return web.json_response(body)

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


class Platform:
    """All component servers plus the real dependency checks they share."""

    def __init__(self, state: SandboxState, inventory: Inventory):
        self.state = state
        self.inventory = inventory
        self.ports = state.ports
        self.log_directory: Path | None = state.root / LOGS_DIR
        self.servers: dict[str, ComponentServer] = {}
        self._pg_connections: dict[str, Any] = {}
        self._redis_clients: dict[str, Any] = {}
        for name in inventory.start_order:
            component = inventory.components[name]
            if name in fault_modes.REAL_DATASTORES or name not in self.ports:
                continue
            self.servers[name] = ComponentServer(component, self.ports[name], self)

    # -- real dependency checks: each returns None when healthy, else the reason --
    def dependency_checks(self, component: Component) -> dict[str, Awaitable[str | None]]:
        checks: dict[str, Awaitable[str | None]] = {}
        for dep in self.inventory.infrastructure_dependencies(component.name):
            if dep.name == "postgres" and component.database:
                checks["database"] = self.postgres_check(component)
            elif dep.name == "redis":
                checks["redis"] = self.redis_check(component)
            else:
                checks[dep.name] = self.tcp_check(dep.name)
        return checks

    async def postgres_check(self, component: Component) -> str | None:
        """SELECT 1 over the service's own connection, like TypeORM's pingCheck over its pool.

        The connection is kept between checks (a fresh scram login per check would
        cost more than the check). A kept connection that fails (PostgreSQL was
        restarted under it) is dropped and the check tries once more on a fresh
        one, as a pool discards a dead client; so a check fails only when a fresh
        login with the service's current credentials fails too."""

        problem = "not checked"
        for _ in range(2):
            conn = self._pg_connections.get(component.name)
            reused = conn is not None and not conn.closed
            try:
                if not reused:
                    conn = await asyncio.wait_for(
                        self.service_login(component, autocommit=True), INDICATOR_TIMEOUT_S
                    )
                    self._pg_connections[component.name] = conn
                await asyncio.wait_for(conn.execute("SELECT 1"), INDICATOR_TIMEOUT_S)  # type: ignore[union-attr]
                return None
            except Exception as exc:
                if self._pg_connections.get(component.name) is conn:
                    self._pg_connections.pop(component.name, None)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                if isinstance(exc, TimeoutError):
                    return f"no answer within {INDICATOR_TIMEOUT_S}s"
                problem = _first_line(exc)
                if not reused:
                    return problem
        return problem

    async def service_login(self, component: Component, autocommit: bool = False) -> Any:
        """A connection to the service's own database with its own role, as the service makes it."""
        import psycopg

        user, password = split_login(
            self.state.secret(pg_secret_name(component.name)), pg_role_name(component.name)
        )
        return await psycopg.AsyncConnection.connect(
            host=HOST,
            port=self.ports["postgres"],
            dbname=component.database,
            user=user,
            password=password,
            connect_timeout=2,
            autocommit=autocommit,
            application_name=f"vextrus-{component.name}",
        )

    async def count_pending_outbox(self, component: Component) -> int:
        async with await self.service_login(component) as conn:
            cur = await conn.execute("SELECT count(*) FROM outbox_events WHERE NOT published")
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    async def redis_check(self, component: Component) -> str | None:
        """PING as the service's ACL user over its own client (redis-py reconnects by itself)."""
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        client = self._redis_clients.get(component.name)
        if client is None:
            client = aioredis.Redis(
                host=HOST,
                port=self.ports["redis"],
                username=acl_user_name(component.name),
                password=self.state.secret(redis_secret_name(component.name)),
                socket_timeout=INDICATOR_TIMEOUT_S,
                socket_connect_timeout=INDICATOR_TIMEOUT_S,
                retry=Retry(NoBackoff(), 0),  # the next health check is the retry
            )
            self._redis_clients[component.name] = client
        try:
            await client.ping()
            return None
        except Exception as exc:
            self._redis_clients.pop(component.name, None)
            with contextlib.suppress(Exception):
                await client.aclose()
            return _first_line(exc)

    async def tcp_check(self, name: str) -> str | None:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.ports[name]), 0.5)
            writer.close()
            return None
        except (OSError, TimeoutError) as exc:
            return f"{name} unreachable: {_first_line(exc)}"

    def jwt_keys(self) -> JwtKeys:
        """The key's versions as the rotation's files store keeps them (current, pending, previous)."""
        from vextrus_nb.secrets.stores import FilesStore

        versions = FilesStore(self.state.secrets_dir).read(JWT_KEY_SECRET)
        return JwtKeys(versions.current, tuple(versions.values()))

    async def close_connections(self, name: str) -> None:
        """A stopped service holds no connections: the next start logs in afresh with
        whatever credentials the secrets files hold then (what a rotation relies on)."""
        conn = self._pg_connections.pop(name, None)
        client = self._redis_clients.pop(name, None)
        with contextlib.suppress(Exception):
            if conn is not None:
                await conn.close()
            if client is not None:
                await client.aclose()

    async def open_pools(self) -> None:
        """Connect every service's database at boot, as TypeORM does, rather than on the
        first health check: a fresh sandbox answers its first sweep as fast as its tenth."""
        services = [s.component for s in self.servers.values() if s.component.database]
        await asyncio.gather(*(self.postgres_check(c) for c in services), return_exceptions=True)

    # -- control ------------------------------------------------------------------
    async def apply_faults(self) -> None:
        wanted = read_faults(self.state.root)
        for name, server in self.servers.items():
            server.fault = wanted.get(name)
            if server.fault and server.fault.get("mode") == "down":
                await server.stop_listening()
                await self.close_connections(name)
            else:
                await server.listen()

    def status(self) -> dict[str, Any]:
        return {
            name: {"port": s.port, "listening": s.site is not None, "fault": s.fault}
            for name, s in self.servers.items()
        }

    def control_app(self) -> web.Application:
        async def get_status(request: web.Request) -> web.Response:
            return web.json_response(self.status())

        async def reload(request: web.Request) -> web.Response:
            await self.apply_faults()
            return web.json_response(self.status())

        app = web.Application()
        app.router.add_get("/status", get_status)
        app.router.add_post("/reload", reload)
        return app


def _component_logger(name: str, directory: Path | None) -> logging.Logger:
    """One log file per component (logs/<name>.log), as `docker logs` would give one per
    container; UTC ISO timestamps, so triage can place each line on its timeline.
    Without a directory (a component in its own container) the lines go to stdout."""
    handler: logging.Handler
    if directory is None:
        handler = logging.StreamHandler(sys.stdout)
    else:
        directory.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            directory / f"{name}.log", maxBytes=LOG_FILE_BYTES, backupCount=1
        )
    formatter = logging.Formatter("%(asctime)s.%(msecs)03dZ %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"vextrus.sandbox.{name}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


async def serve(root: Path) -> None:
    state = SandboxState.load(root)
    inventory = load_inventory(Path(state.extra["inventory"]))
    platform = Platform(state, inventory)
    for server in platform.servers.values():
        await server.setup()
    await platform.apply_faults()
    await platform.open_pools()
    control = web.AppRunner(platform.control_app(), access_log=None, handle_signals=False)
    await control.setup()
    await web.TCPSite(control, HOST, state.control_port, reuse_address=True).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "sandbox services listening: %d components, control port %d",
        len(platform.servers),
        state.control_port,
    )
    await stop.wait()
    for server in platform.servers.values():
        await server.runner.cleanup()
    await control.cleanup()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
