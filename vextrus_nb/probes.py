"""Async probes: http, postgres, redis, tcp -> ProbeResult.

Probes run concurrently with a bounded pool and a per-probe timeout, so one
dead or hanging target costs its own timeout and never delays the others.
Results are plain data, in the order the targets were given.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import httpx
import psycopg
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from vextrus_nb.asyncio_bridge import run_sync
from vextrus_nb.config import ProbeKind

ProbeStatus = Literal["up", "degraded", "down"]

# Health bodies whose "status" means the component is not serving.
_DOWN_STATUSES = {"error", "down", "red", "fail", "failed", "unhealthy"}
_DEGRADED_STATUSES = {"yellow", "warn", "degraded"}


@dataclass(frozen=True)
class ProbeTarget:
    """One thing to probe. `password` is never shown (repr=False)."""

    component: str
    kind: ProbeKind
    host: str
    port: int
    path: str | None = None
    check: str = "health"
    database: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    criticality: str = "medium"

    @property
    def address(self) -> str:
        if self.kind == "http":
            return f"http://{self.host}:{self.port}{self.path or '/'}"
        if self.kind == "postgres":
            return f"postgresql://{self.user or ''}@{self.host}:{self.port}/{self.database or 'postgres'}"
        return f"{self.kind}://{self.host}:{self.port}"


@dataclass(frozen=True)
class ProbeResult:
    component: str
    check: str
    kind: str
    address: str
    status: ProbeStatus
    latency_ms: float
    detail: str
    criticality: str = "medium"
    http_status: int | None = None
    body: dict[str, Any] | None = None
    # It accepted the connection (or the request) but did not answer in time: hung, not stopped.
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "up"

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("body")
        return row


class _ProbeDown(Exception):
    """Raised inside a probe to report a reachable-but-unhealthy target."""

    def __init__(self, detail: str, http_status: int | None = None, body: dict | None = None):
        super().__init__(detail)
        self.http_status = http_status
        self.body = body


async def _probe_tcp(target: ProbeTarget, timeout: float) -> tuple[ProbeStatus, str, dict]:
    _, writer = await asyncio.open_connection(target.host, target.port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return "up", "accepting connections", {}


async def _probe_postgres(target: ProbeTarget, timeout: float) -> tuple[ProbeStatus, str, dict]:
    conn = await psycopg.AsyncConnection.connect(
        host=target.host,
        port=target.port,
        dbname=target.database or "postgres",
        user=target.user,
        password=target.password,
        connect_timeout=max(1, int(timeout)),
        application_name="vextrus-nb-probe",
    )
    async with conn:
        cur = await conn.execute("SELECT current_setting('server_version')")
        row = await cur.fetchone()
    return "up", f"PostgreSQL {row[0] if row else '?'} accepting queries", {}


async def _probe_redis(target: ProbeTarget, timeout: float) -> tuple[ProbeStatus, str, dict]:
    client = aioredis.Redis(
        host=target.host,
        port=target.port,
        username=target.user,
        password=target.password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # A probe reports the first answer; redis-py would otherwise retry even a refused login.
        retry=Retry(NoBackoff(), 0),
    )
    try:
        await client.ping()
        info = await client.info("server")
    finally:
        await client.aclose()
    return "up", f"Redis {info.get('redis_version', '?')} answered PING", {}


def _terminus_failures(body: dict[str, Any]) -> list[str]:
    """Names (and messages) of failing indicators in a NestJS Terminus body."""
    failures = []
    for key, value in (body.get("error") or {}).items():
        message = value.get("message") if isinstance(value, dict) else None
        failures.append(f"{key}: {message}" if message else key)
    return failures


async def _probe_http(
    target: ProbeTarget, timeout: float, client: httpx.AsyncClient
) -> tuple[ProbeStatus, str, dict]:
    response = await client.get(target.address, timeout=timeout)
    body: dict[str, Any] | None = None
    if "json" in response.headers.get("content-type", ""):
        try:
            parsed = response.json()
            body = parsed if isinstance(parsed, dict) else None
        except (json.JSONDecodeError, ValueError):
            body = None
    reported = str((body or {}).get("status", "")).lower()
    failures = _terminus_failures(body or {})
    if response.status_code >= 400 or reported in _DOWN_STATUSES:
        reason = "; ".join(failures) or reported or response.reason_phrase
        raise _ProbeDown(f"HTTP {response.status_code}: {reason}", response.status_code, body)
    if reported in _DEGRADED_STATUSES:
        return (
            "degraded",
            f"HTTP {response.status_code}, status {reported}",
            {
                "http_status": response.status_code,
                "body": body,
            },
        )
    return (
        "up",
        f"HTTP {response.status_code}" + (f", status {reported}" if reported else ""),
        {
            "http_status": response.status_code,
            "body": body,
        },
    )


async def probe(
    target: ProbeTarget,
    timeout: float = 2.0,
    client: httpx.AsyncClient | None = None,
    latency_budget_ms: float | None = None,
) -> ProbeResult:
    """Probe one target; never raises, every outcome is a ProbeResult."""
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    timed_out = False
    try:
        if target.kind == "http":
            if client is None:
                async with httpx.AsyncClient() as own_client:
                    status, detail, extra = await asyncio.wait_for(
                        _probe_http(target, timeout, own_client), timeout
                    )
            else:
                status, detail, extra = await asyncio.wait_for(_probe_http(target, timeout, client), timeout)
        else:
            runner = {"tcp": _probe_tcp, "postgres": _probe_postgres, "redis": _probe_redis}[target.kind]
            status, detail, extra = await asyncio.wait_for(runner(target, timeout), timeout)
    except _ProbeDown as exc:
        status, detail = "down", str(exc)
        extra = {"http_status": exc.http_status, "body": exc.body}
    except (TimeoutError, httpx.TimeoutException):
        status, detail, timed_out = "down", f"no answer within {timeout:g}s", True
    except Exception as exc:  # every failure of a probe is a finding, not a crash
        status, detail = "down", describe_error(exc)
    latency_ms = (time.perf_counter() - started) * 1000
    if status == "up" and latency_budget_ms is not None and latency_ms > latency_budget_ms:
        status, detail = "degraded", f"{detail}; slow: {latency_ms:.0f} ms > budget {latency_budget_ms:g} ms"
    return ProbeResult(
        component=target.component,
        check=target.check,
        kind=target.kind,
        address=target.address,
        status=status,
        latency_ms=round(latency_ms, 1),
        detail=detail,
        criticality=target.criticality,
        http_status=extra.get("http_status"),
        body=extra.get("body"),
        timed_out=timed_out,
    )


def describe_error(exc: BaseException, timeout_s: float | None = None) -> str:
    """One line for an error; a timeout (given the timeout it hit) reads 'no answer within Ns'."""
    if timeout_s is not None and isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"no answer within {timeout_s:g}s"
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


async def run_probes(
    targets: Sequence[ProbeTarget],
    timeout: float = 2.0,
    concurrency: int = 32,
    latency_budget_ms: float | None = None,
) -> list[ProbeResult]:
    """Probe all targets concurrently (at most `concurrency` at once), in input order."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, follow_redirects=False) as client:

        async def bounded(target: ProbeTarget) -> ProbeResult:
            async with gate:
                return await probe(target, timeout, client, latency_budget_ms)

        return list(await asyncio.gather(*(bounded(t) for t in targets)))


def sweep(
    targets: Sequence[ProbeTarget],
    timeout: float = 2.0,
    concurrency: int = 32,
    latency_budget_ms: float | None = None,
) -> list[ProbeResult]:
    """Blocking form of run_probes, safe to call from a notebook cell."""
    return run_sync(run_probes(targets, timeout, concurrency, latency_budget_ms))


def check_probe_settings(parameters: dict[str, Any]) -> None:
    """A runbook's probe overrides, when given: a positive timeout and budget, at least one probe in
    flight. None leaves the environment's setting; RunRefused (exit 2) names a bad one."""
    from vextrus_nb.errors import RunRefused

    for name in ("timeout_s", "latency_budget_ms", "concurrency"):
        value = parameters.get(name)
        if value is not None and value <= 0:
            raise RunRefused(f"{name} must be positive, or None for the environment's setting, not {value:g}")
