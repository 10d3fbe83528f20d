"""The sandbox's services process: every component server (service_app.py) in one aiohttp
process, the real dependency checks they share (SELECT 1 as each service's own PostgreSQL role,
PING as its own Redis ACL user, a TCP connect to each simulated broker), and the loopback
control API the manager drives: GET /status, POST /reload (apply the planted faults), and
GET/POST /links (the fault proxies in the services' path to each dependency: links.py).
Stopping PostgreSQL therefore turns every service's readiness red, as in production; so does
cutting the link to it.

Run as `python -m vextrus_nb.sandbox.control SANDBOX_DIR` (see manager.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from vextrus_nb import probes
from vextrus_nb.checks.temporal import TEMPORAL_NAMESPACE
from vextrus_nb.config import Component, Inventory, load_inventory
from vextrus_nb.credentials import (
    JWT_KEY_SECRET,
    LOAD_USER,
    LOAD_USER_SECRET,
    acl_user_name,
    pg_role_name,
    pg_secret_name,
    redis_secret_name,
    split_login,
)
from vextrus_nb.errors import LinkError, first_line
from vextrus_nb.probes import ProbeTarget
from vextrus_nb.sandbox import faults as fault_modes
from vextrus_nb.sandbox import platform_state, real_platform
from vextrus_nb.sandbox.ha_servers import SENTINEL_SERVICE
from vextrus_nb.sandbox.ha_topology import SENTINELS
from vextrus_nb.sandbox.links import Links, linked_dependencies
from vextrus_nb.sandbox.real_platform import RealPlatform
from vextrus_nb.sandbox.service_app import (
    HOST,
    LOGS_DIR,
    ComponentServer,
    JwtKeys,
    LoopbackReachability,
)
from vextrus_nb.sandbox_state import SandboxState, read_faults

log = logging.getLogger("vextrus.sandbox")
INDICATOR_TIMEOUT_S = 1.5
ALERTS_LOG = "alerts.jsonl"  # what Alertmanager sent the sandbox's webhook, one notification a line


class SharedCheck:
    """One check many callers share: while an answer is in flight or younger than fresh_s,
    callers get it rather than asking again."""

    def __init__(self, ask: Callable[[], Awaitable[str | None]], fresh_s: float = 0.5):
        self.ask = ask
        self.fresh_s = fresh_s
        self._task: asyncio.Future[str | None] | None = None
        self._asked_at = 0.0

    async def __call__(self) -> str | None:
        now = time.monotonic()
        if self._task is None or (self._task.done() and now - self._asked_at > self.fresh_s):
            self._asked_at = now
            self._task = asyncio.ensure_future(self.ask())
        return await asyncio.shield(self._task)


class Platform(LoopbackReachability):
    """All component servers plus the real dependency checks they share."""

    def __init__(self, state: SandboxState, inventory: Inventory):
        self.state = state
        self.inventory = inventory
        self.ports = state.ports
        self.log_directory: Path | None = state.root / LOGS_DIR
        self.servers: dict[str, ComponentServer] = {}
        self._pg_connections: dict[str, Any] = {}
        self._redis_clients: dict[str, Any] = {}
        self._shared: dict[str, SharedCheck] = {}
        self.links = Links()
        self.redis_primary_port: int | None = None  # as the Sentinels last named it
        for name in inventory.start_order:
            component = inventory.components[name]
            if name in fault_modes.REAL_DATASTORES or real_platform.is_real(name) or name not in self.ports:
                continue
            self.servers[name] = ComponentServer(component, self.ports[name], self)
        self.real = RealPlatform(
            state.root,
            state.ports,
            state.extra.get("real_ports", {}),
            real_platform.credentials(state),
            real_platform.options(state, inventory),
        )

    # -- where the services reach their dependencies -----------------------------
    def linked_upstreams(self) -> dict[str, int]:
        """The real datastores and brokers some service depends on, each by its own port: the
        dependencies that get a fault proxy in the services' path."""
        names = [
            dep.name
            for server in self.servers.values()
            if server.component.kind == "service"
            for dep in self.inventory.infrastructure_dependencies(server.component.name)
            if dep.name in fault_modes.REAL_DATASTORES or real_platform.is_real(dep.name)
        ]
        return {name: self.upstream_port(name) for name in linked_dependencies(names) if name in self.ports}

    def upstream_port(self, name: str) -> int:
        """What a dependency's link fronts: PostgreSQL's is PgBouncer, the pooler every service
        connects through (it follows a failover by RELOAD, so no service restarts); Redis's the
        primary the Sentinels name, re-pointed when they name another (follow_redis_primary)."""
        if name == "postgres" and "pgbouncer" in self.ports:
            return self.ports["pgbouncer"]
        if name == "redis" and self.redis_primary_port is not None:
            return self.redis_primary_port
        return self.ports[name]

    async def follow_redis_primary(self) -> None:
        """Ask the Sentinels which server is the Redis primary, as a Sentinel-aware client does
        before it connects (one answer shared while fresh). When it moved (a failover), the Redis
        link is re-pointed there and the services' clients reconnect through it. No Sentinel
        answering: the last known primary stands, as with a client's cached address."""
        if not any(name in self.ports for name in SENTINELS):
            return
        check = self._shared.get("sentinels")
        if check is None:
            check = self._shared["sentinels"] = SharedCheck(self._ask_sentinels)
        await check()

    async def _ask_sentinels(self) -> str | None:
        import redis.asyncio as aioredis

        async def ask(port: int) -> int | None:
            client = aioredis.Redis(host=HOST, port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
            try:
                # The raw command: redis-py 5's Sentinel reply parsers fail on a plain client.
                reply = await client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_SERVICE)
                return int(reply[1]) if reply else None
            except Exception:
                return None  # partitioned or stopped: the others answer
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()

        named = [
            port
            for port in await asyncio.gather(*(ask(self.ports[n]) for n in SENTINELS if n in self.ports))
            if port is not None
        ]
        if not named:
            return None
        primary = Counter(named).most_common(1)[0][0]
        moved = self.redis_primary_port is not None and primary != self.redis_primary_port
        self.redis_primary_port = primary
        proxy = self.links.proxies.get("redis")
        if proxy is not None and proxy.upstream_port != primary:
            proxy.upstream_port = primary  # new connections go to the new primary
            moved = True
        if moved:
            log.warning("the Sentinels name a new Redis primary on port %d: services reconnect", primary)
            for name in list(self._redis_clients):
                client = self._redis_clients.pop(name)
                with contextlib.suppress(Exception):
                    await client.aclose()
        return None

    def dependency_port(self, name: str) -> int:
        """The port a service connects to for `name`: its link's, so a link fault is in the path."""
        return self.links.port(name, self.ports[name])

    # -- real dependency checks: each returns None when healthy, else the reason --
    def dependency_checks(self, component: Component) -> dict[str, Awaitable[str | None]]:
        checks: dict[str, Awaitable[str | None]] = {}
        for dep in self.inventory.infrastructure_dependencies(component.name):
            if dep.name == "postgres" and component.database:
                checks["database"] = self.postgres_check(component)
            elif dep.name == "redis":
                checks["redis"] = self.redis_check(component)
            elif real_platform.is_real(dep.name):
                checks[dep.name] = self.protocol_check(dep)
            else:
                checks[dep.name] = self.tcp_check(dep.name)
        return checks

    def protocol_check(self, dependency: Component) -> Awaitable[str | None]:
        """The dependency asked in its own protocol (a Kafka metadata request, S3 ListBuckets,
        Temporal's DescribeNamespace...), as the services' Terminus indicators do: a stopped
        broker turns exactly its dependents red. Sixteen services share one Kafka: their
        checks share one answer while it is fresh, so a sweep costs one request per broker."""
        check = self._shared.get(dependency.name)
        if check is None:
            target = self._protocol_target(dependency)

            async def ask() -> str | None:
                result = await probes.probe(target, timeout=INDICATOR_TIMEOUT_S)
                return None if result.status != "down" else result.detail

            check = self._shared[dependency.name] = SharedCheck(ask)
        return check()

    def _protocol_target(self, dependency: Component) -> ProbeTarget:
        name, port = dependency.name, self.dependency_port(dependency.name)
        if dependency.probe == "s3":
            keys = real_platform.credentials(self.state)["minio"]
            return ProbeTarget(
                name, "s3", HOST, port, access_key=keys["access_key"], secret_key=keys["secret_key"]
            )
        if dependency.probe == "temporal":
            return ProbeTarget(name, "temporal", HOST, port, namespace=TEMPORAL_NAMESPACE)
        if dependency.probe == "amqp":
            login = real_platform.credentials(self.state)["rabbitmq"]
            return ProbeTarget(name, "amqp", HOST, port, user=login["user"], password=login["password"])
        if dependency.probe == "http" and dependency.health_path:
            return ProbeTarget(name, "http", HOST, port, path=dependency.health_path)
        return ProbeTarget(name, dependency.probe, HOST, port)

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
                problem = first_line(exc)
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
            port=self.dependency_port("postgres"),
            dbname=component.database,
            user=user,
            password=password,
            connect_timeout=2,
            autocommit=autocommit,
            application_name=f"vextrus-{component.name}",
            # PgBouncer's transaction pooling (1.18) keeps no prepared statement across
            # transactions: psycopg's own advice is to prepare none.
            prepare_threshold=None,
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

        await self.follow_redis_primary()
        client = self._redis_clients.get(component.name)
        if client is None:
            client = aioredis.Redis(
                host=HOST,
                port=self.dependency_port("redis"),
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
            return first_line(exc)

    def user_password(self, email: str) -> str | None:
        """The auth service's one user: the load test's, whose password is a sandbox secret."""
        return self.state.secret(LOAD_USER_SECRET) if email == LOAD_USER else None

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
        await self.apply_real_faults(wanted)
        for name, server in self.servers.items():
            server.fault = wanted.get(name)
            if server.fault and server.fault.get("mode") == "down":
                await server.stop_listening()
                await self.close_connections(name)
            else:
                await server.listen()

    async def apply_real_faults(self, wanted: dict[str, Any]) -> None:
        """Stop the real servers faulted down, start the ones no longer faulted (at once:
        a heal of several waits for the slowest, not the sum)."""
        work: list[Coroutine[Any, Any, object]] = []
        started: list[str] = []
        for name in real_platform.REAL_COMPONENTS:
            down = (wanted.get(name) or {}).get("mode") == "down"
            if down and self.real.running(name):
                work.append(asyncio.to_thread(self.real.stop, name))
            elif not down and not self.real.running(name):
                work.append(asyncio.to_thread(self.real.start, name))
                started.append(name)
        for outcome in await asyncio.gather(*work, return_exceptions=True):
            if isinstance(outcome, BaseException):
                log.error("a real server did not start: %s", first_line(outcome))
        restarted = tuple(n for n in started if n in platform_state.PROVISIONED and self.real.running(n))
        if restarted:
            await self.provision(restarted)

    async def provision(self, components: tuple[str, ...] = platform_state.PROVISIONED) -> None:
        """The deployed platform's topics, buckets and namespace on these servers (see
        platform_state.py); a server that cannot take them is logged, not fatal: the checks
        will say what is missing."""
        variant = real_platform.deployment_variant(self.state.root)
        running = tuple(c for c in components if self.real.running(c))
        try:
            done = await asyncio.to_thread(
                platform_state.provision, self.state, self.inventory, variant, running
            )
        except Exception as exc:
            log.error("provisioning %s (%s) failed: %s", ", ".join(running), variant, first_line(exc))
            return
        if done:
            log.info("provisioned (%s): %s", variant, "; ".join(done))

    async def apply_deployment(self) -> None:
        """The deployment variant changed: Traefik restarts with its configuration, and the
        platform's settings on the other servers follow."""
        if self.real.running("traefik"):
            await asyncio.to_thread(self.real.stop, "traefik", 2.0)
            await asyncio.to_thread(self.real.start, "traefik")
        await self.provision()

    def status(self) -> dict[str, Any]:
        rows: dict[str, Any] = {
            name: {"port": s.port, "listening": s.site is not None, "fault": s.fault, "real": False}
            for name, s in self.servers.items()
        }
        faults = read_faults(self.state.root)
        for component, info in self.real.status().items():
            for name in real_platform.REAL_COMPONENTS[component].component_ports.values():
                if name in self.ports and name in self.inventory.components:
                    rows[name] = {
                        "port": self.ports[name],
                        "listening": info["running"],
                        "fault": faults.get(name),
                        "real": True,
                        "server": info["server"],
                        "pid": info["pid"],
                        "rss_bytes": info["rss_bytes"] if name == component else 0,  # counted once
                    }
        return rows

    def control_app(self) -> web.Application:
        async def get_status(request: web.Request) -> web.Response:
            return web.json_response(self.status())

        async def reload(request: web.Request) -> web.Response:
            await self.apply_faults()
            return web.json_response(self.status())

        async def evidence_metrics(request: web.Request) -> web.Response:
            """The ledger's sealed evidence for Prometheus (the project's own alert rules)."""
            from vextrus_nb import paths
            from vextrus_nb.config import load_environment
            from vextrus_nb.evidence import metrics

            env = load_environment("sandbox", self.inventory)
            body = await asyncio.to_thread(
                metrics.exposition, paths.outputs_dir(), env.rpo_hours * 3600, [env.name]
            )
            return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})

        async def alerts_webhook(request: web.Request) -> web.Response:
            """Alertmanager's notifications, kept as the sandbox's pager would (alerts.jsonl)."""
            notification = await request.json()
            with open(self.state.root / ALERTS_LOG, "a") as handle:
                handle.write(json.dumps(notification, sort_keys=True) + "\n")
            return web.json_response({"received": len(notification.get("alerts", []))})

        async def deployment(request: web.Request) -> web.Response:
            await self.apply_deployment()
            return web.json_response(self.status())

        async def get_links(request: web.Request) -> web.Response:
            return web.json_response(self.links.describe())

        async def restore_links(request: web.Request) -> web.Response:
            return web.json_response({"restored": self.links.restore_all()})

        async def set_link(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            try:
                wanted = await request.json()
                self.links.set(name, str(wanted.get("mode")), float(wanted.get("latency_ms") or 0))
            except LinkError as exc:
                status = 404 if name not in self.links.proxies else 400
                return web.json_response({"error": str(exc)}, status=status)
            except (ValueError, TypeError, AttributeError):
                return web.json_response({"error": "expected {mode, latency_ms}"}, status=400)
            log.warning("link to %s: %s", name, self.links.describe()[name])
            return web.json_response(self.links.describe()[name])

        app = web.Application()
        app.router.add_get("/status", get_status)
        app.router.add_post("/reload", reload)
        app.router.add_post("/deployment", deployment)
        app.router.add_get("/links", get_links)
        app.router.add_post("/links", restore_links)
        app.router.add_post("/links/{name}", set_link)
        app.router.add_get(real_platform.EVIDENCE_PATH, evidence_metrics)
        app.router.add_post(real_platform.ALERTS_WEBHOOK_PATH, alerts_webhook)
        return app


async def write_heartbeats(state: SandboxState) -> None:
    """A timestamped row every second in the cluster's `postgres` database: a recovered copy's
    newest row is the recovery point it really reached. One kept connection; while PostgreSQL
    is down (a fault) the writer just tries again next second."""
    import psycopg

    from vextrus_nb.backup import heartbeat
    from vextrus_nb.sandbox.manager import ADMIN_USER, HEARTBEAT_HOLD

    conn: psycopg.AsyncConnection[Any] | None = None
    while True:
        if (state.root / HEARTBEAT_HOLD).exists():
            # A restored cluster's recovery point is being read (manager._recover_postgres).
            await asyncio.sleep(heartbeat.INTERVAL_S)
            continue
        try:
            if conn is None or conn.closed:
                conn = await psycopg.AsyncConnection.connect(
                    host=HOST,
                    # Through the pooler, as the services: it follows a failover to the new primary.
                    port=state.ports.get("pgbouncer", state.ports["postgres"]),
                    dbname=heartbeat.DATABASE,
                    user=ADMIN_USER,
                    password=state.secret("postgres_password"),
                    connect_timeout=2,
                    autocommit=True,
                    application_name="vextrus-sandbox-heartbeat",
                    prepare_threshold=None,
                )
            await asyncio.wait_for(conn.execute(heartbeat.BEAT), INDICATOR_TIMEOUT_S)
        except asyncio.CancelledError:
            raise
        except Exception:
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            conn = None
        await asyncio.sleep(heartbeat.INTERVAL_S)


async def serve(root: Path) -> None:
    state = SandboxState.load(root)
    inventory = load_inventory(Path(state.extra["inventory"]))
    platform = Platform(state, inventory)
    for server in platform.servers.values():
        await server.setup()
    faults = read_faults(root)
    wanted_real = [n for n in real_platform.REAL_COMPONENTS if (faults.get(n) or {}).get("mode") != "down"]
    ready_after = await asyncio.to_thread(platform.real.start_all, wanted_real)
    log.info("real servers ready: %s", ", ".join(f"{n} {s:.1f}s" for n, s in ready_after.items()))
    await platform.provision()
    await platform.follow_redis_primary()  # so the Redis link fronts the primary the Sentinels name
    await platform.links.open(platform.linked_upstreams())
    # The readiness checks' client libraries, imported now rather than inside the first
    # health check, where the import would hold the loop every service answers on.
    probes.preload_clients({c.probe for c in inventory.components.values()})
    await platform.apply_faults()
    await platform.open_pools()
    beating = asyncio.create_task(write_heartbeats(state))
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
    beating.cancel()
    for server in platform.servers.values():
        await server.runner.cleanup()
    await control.cleanup()
    await platform.links.close()
    # The sandbox is being deleted (`down`): no server needs more than a short grace to stop.
    await asyncio.to_thread(platform.real.stop_all, 2.0)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)  # its INFO is every connection's life story
    asyncio.run(serve(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
