"""One component of the sandbox as a real HTTP server, and the service application a Vextrus
service runs in it: NestJS Terminus health (/health, /health/ready, /health/live) computed
from real checks of the service's dependencies, the JWT guard (and the signer's /auth/token, and
/auth/login + /auth/profile for the load test's user), /metrics, the outbox query on the
service's own database, and the gateway's GraphQL subgraph listing.

Every other component is simulated (simulated.py). Whatever runs the servers is their
ComponentHost: the sandbox's one process (control.py, which also does the real dependency
checks and serves the control API), or a container of its own (component.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.handlers
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from vextrus_nb.config import Component
from vextrus_nb.errors import first_line
from vextrus_nb.sandbox import faults as fault_modes
from vextrus_nb.sandbox.simulated import SimulatedInfrastructure

HOST = "127.0.0.1"
LOGS_DIR = "logs"
LOG_FILE_BYTES = 1_000_000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ComponentHost(Protocol):
    """What a component server asks of whatever runs it: the sandbox's one process
    (control.Platform), or a container of its own (component.StandaloneHost)."""

    ports: dict[str, int]
    log_directory: Path | None

    def dependency_checks(self, component: Component) -> dict[str, Awaitable[str | None]]: ...

    async def tcp_check(self, name: str) -> str | None: ...

    async def count_pending_outbox(self, component: Component) -> int: ...

    def jwt_keys(self) -> JwtKeys: ...

    def user_password(self, email: str) -> str | None:
        """The password a user logs in with, or None for no such user."""
        ...


class JwtKeys(NamedTuple):
    """What a service knows of the JWT signing key when it starts: the key it signs with,
    and every key it accepts (current, plus a rotation's pending and previous)."""

    signing: str | None
    verifying: tuple[str, ...]


JWT_ALGORITHM = "HS256"
JWT_SIGNER = "auth"  # the service that issues tokens; every service verifies them


class ComponentServer(SimulatedInfrastructure):
    """One component: its aiohttp app, its listening site, its current fault; a service runs the
    service application below, any other component its simulation (simulated.py)."""

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
                app.router.add_post("/auth/login", self._login)
                app.router.add_get("/auth/profile", self._profile)
            if c.database:
                app.router.add_get("/api/outbox/pending", self._pending_outbox)
            if c.subgraphs:
                app.router.add_route("*", "/graphql", self._graphql)
        else:
            self._add_simulated_routes(app)

    async def _issue_token(self, request: web.Request) -> web.Response:
        """A short-lived access token signed with the key this process started with (the
        operators' and the runbooks' token: no password, loopback only)."""
        return self._token_for(request.query.get("sub", "operator"))

    async def _login(self, request: web.Request) -> web.Response:
        """POST {email, password}: a token for a known user whose password matches (compared in
        constant time), else 401 naming nothing (which of the two was wrong stays unsaid)."""
        import hmac

        try:
            body = await request.json()
            email, password = str(body["email"]), str(body["password"])
        except (ValueError, KeyError, TypeError):
            message = "email and password required"
            return web.json_response({"statusCode": 400, "message": message}, status=400)
        known = self.platform.user_password(email)
        if known is None or not hmac.compare_digest(known.encode(), password.encode()):
            self.log.warning("[AuthService] login refused")
            return web.json_response({"statusCode": 401, "message": "Unauthorized"}, status=401)
        return self._token_for(email)

    async def _profile(self, request: web.Request) -> web.Response:
        claims = self._verified_claims(request)
        if claims is None:
            return web.json_response({"statusCode": 401, "message": "Unauthorized"}, status=401)
        return web.json_response({"email": claims.get("sub"), "roles": ["user"]})

    def _token_for(self, subject: str) -> web.Response:
        import jwt

        if self.keys.signing is None:
            return web.json_response({"statusCode": 503, "message": "no signing key"}, status=503)
        now = int(time.time())
        claims = {"sub": subject, "iat": now, "exp": now + 900}
        return web.json_response({"access_token": jwt.encode(claims, self.keys.signing, JWT_ALGORITHM)})

    def _verified_claims(self, request: web.Request) -> dict[str, Any] | None:
        """What a JwtAuthGuard does: accept a bearer token signed by any key the service knows."""
        import jwt

        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        for key in self.keys.verifying:
            try:
                return dict(jwt.decode(token, key, algorithms=[JWT_ALGORITHM]))
            except jwt.InvalidTokenError:
                continue
        self.log.warning("[JwtAuthGuard] rejected a token: no known key verifies it")
        return None

    async def _verify_token(self, request: web.Request) -> web.Response:
        claims = self._verified_claims(request)
        if claims is None:
            return web.json_response({"statusCode": 401, "message": "Unauthorized"}, status=401)
        return web.json_response({"sub": claims.get("sub")})

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
            self.log.error("[ExceptionsHandler] GET /api/outbox/pending failed: %s", first_line(exc))
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


class LoopbackReachability:
    """`tcp_check` for a host that knows its components' ports on loopback."""

    ports: dict[str, int]

    async def tcp_check(self, name: str) -> str | None:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(HOST, self.ports[name]), 0.5)
            writer.close()
            return None
        except (OSError, TimeoutError) as exc:
            return f"{name} unreachable: {first_line(exc)}"
