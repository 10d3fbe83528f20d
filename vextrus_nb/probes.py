"""Async probes: http, postgres, redis, tcp, and the real servers' own protocols (kafka, s3,
temporal, amqp, zookeeper) -> ProbeResult.

Probes run concurrently with a bounded pool and a per-probe timeout, so one
dead or hanging target costs its own timeout and never delays the others.
The blocking clients (confluent-kafka, boto3, pika) run in a thread and carry the
timeout themselves too: a thread cannot be cancelled, so a hung server must let it go.
Results are plain data, in the order the targets were given.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from vextrus_nb.asyncio_bridge import run_sync
from vextrus_nb.config import ProbeKind
from vextrus_nb.errors import ProbeDown

if TYPE_CHECKING:
    import httpx
    import redis.asyncio as aioredis

# The client libraries (httpx, psycopg, redis) are imported by the probes that use them, not here:
# a runbook's parameter checks import this module, and a refusal must not wait ~0.4 s for them.

ProbeStatus = Literal["up", "degraded", "down"]

# Health bodies whose "status" means the component is not serving.
_DOWN_STATUSES = {"error", "down", "red", "fail", "failed", "unhealthy"}
_DEGRADED_STATUSES = {"yellow", "warn", "degraded"}


@dataclass(frozen=True)
class ProbeTarget:
    """One thing to probe. The secrets (`password`, the S3 keys) are never shown (repr=False)."""

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
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    namespace: str = "default"  # the Temporal namespace DescribeNamespace asks about

    @property
    def address(self) -> str:
        if self.kind == "http":
            return f"http://{self.host}:{self.port}{self.path or '/'}"
        if self.kind == "postgres":
            return f"postgresql://{self.user or ''}@{self.host}:{self.port}/{self.database or 'postgres'}"
        if self.kind == "s3":
            return f"http://{self.host}:{self.port}"
        if self.kind == "amqp":
            return f"amqp://{self.user or ''}@{self.host}:{self.port}"
        if self.kind == "temporal":
            return f"temporal://{self.host}:{self.port}/{self.namespace}"
        return f"{self.kind}://{self.host}:{self.port}"

    def secrets(self) -> list[str]:
        """The secret values this target carries, for scrubbing what a client library says."""
        return [s for s in (self.password, self.access_key, self.secret_key) if s]


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
    # It answered, later than the latency budget allows (and is `degraded` for that alone).
    over_budget: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "up"

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("body")
        return row


async def _probe_tcp(target: ProbeTarget, timeout: float) -> tuple[ProbeStatus, str, dict]:
    _, writer = await asyncio.open_connection(target.host, target.port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return "up", "accepting connections", {}


async def _probe_postgres(target: ProbeTarget, timeout: float) -> tuple[ProbeStatus, str, dict]:
    import psycopg

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
    client = redis_client(target.host, target.port, target.user, target.password, timeout)
    try:
        await client.ping()
        info = await client.info("server")
    finally:
        await client.aclose()
    return "up", f"Redis {info.get('redis_version', '?')} answered PING", {}


def redis_client(
    host: str, port: int, user: str | None, password: str | None, timeout: float
) -> aioredis.Redis:
    """An asyncio Redis client that reports the first answer: no retries (redis-py would
    otherwise retry even a refused login), every wait bounded by `timeout`."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return aioredis.Redis(
        host=host,
        port=port,
        username=user,
        password=password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


# ---------------------------------------------------------------- the real servers' protocols

# How often the Kafka probe looks at what librdkafka reported: a refused port or a listener
# speaking something else is named within this, not after the whole timeout.
_KAFKA_POLL_S = 0.2
# "127.0.0.1:9092/bootstrap: Connect to ... failed: Connection refused (after 0ms in state CONNECT)"
_KAFKA_BROKER_PREFIX = re.compile(r"^\S+/(?:bootstrap|\d+): ")
_KAFKA_STATE_SUFFIX = re.compile(r" \(after \d+ms in state \w+\)$")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _kafka_failure(errors: list[Any]) -> str | None:
    """The first error librdkafka reported that says why (not merely "1/1 brokers are down")."""
    from confluent_kafka import KafkaError

    for error in errors:
        if error.code() != KafkaError._ALL_BROKERS_DOWN:
            text = _KAFKA_STATE_SUFFIX.sub("", _KAFKA_BROKER_PREFIX.sub("", error.str()))
            return f"{error.name()}: {text}"
    return None


def _kafka_metadata(host: str, port: int, timeout: float) -> tuple[int, int]:
    """(brokers, topics) from a metadata request; blocking, bounded by `timeout`."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[Any] = []
    timeout_ms = max(1, int(timeout * 1000))
    settings: dict[str, Any] = {  # confluent-kafka's stubs leave out callbacks such as error_cb
        "bootstrap.servers": f"{host}:{port}",
        "client.id": "vextrus-nb-probe",
        "log_level": 0,  # librdkafka would print every failed connect on stderr
        "error_cb": errors.append,  # the reasons, collected instead
        "socket.timeout.ms": timeout_ms,
        "socket.connection.setup.timeout.ms": timeout_ms,
        "api.version.request.timeout.ms": timeout_ms,
    }
    admin = AdminClient(settings)
    deadline = time.monotonic() + timeout
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                metadata = admin.list_topics(timeout=min(_KAFKA_POLL_S, remaining))
                return len(metadata.brokers), len(metadata.topics)
            except KafkaException:
                admin.poll(0)  # serves error_cb: what went wrong, if librdkafka knows yet
            failure = _kafka_failure(errors)
            if failure:
                raise ProbeDown(f"no Kafka metadata: {failure}")
        raise TimeoutError
    finally:
        # Gone at once: a Kafka broker (Tansu) waits for open connections before it stops.
        del admin


async def _probe_kafka(target: ProbeTarget, timeout: float) -> tuple[ProbeStatus, str, dict]:
    brokers, topics = await asyncio.to_thread(_kafka_metadata, target.host, target.port, timeout)
    if brokers == 0:
        raise ProbeDown("Kafka metadata lists no broker")
    return "up", f"Kafka metadata: {_plural(brokers, 'broker')}, {_plural(topics, 'topic')}", {}


_boto_session: Any = None
# boto3 sessions are not thread-safe; clients made from one are. One session, so the service
# model is loaded once per process, not once per probe.
_boto_session_lock = threading.Lock()


def _s3_client(target: ProbeTarget, timeout: float) -> Any:
    global _boto_session
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path"},  # MinIO and its stand-ins serve buckets as paths
        retries={"total_max_attempts": 1},
        connect_timeout=timeout,
        read_timeout=timeout,
    )
    with _boto_session_lock:
        if _boto_session is None:
            _boto_session = boto3.session.Session()
        return _boto_session.client(
            "s3",
            endpoint_url=target.address,
            aws_access_key_id=target.access_key,
            aws_secret_access_key=target.secret_key,
            region_name="us-east-1",
            config=config,
        )


def _s3_list_buckets(target: ProbeTarget, timeout: float) -> int:
    """How many buckets ListBuckets returns; blocking, bounded by the client's timeouts."""
    from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

    client = _s3_client(target, timeout)
    try:
        return len(client.list_buckets().get("Buckets", []))
    except ClientError as exc:
        # The error code names the fault (InvalidAccessKeyId, SignatureDoesNotMatch); the message
        # is the server's prose and is left out, so nothing it echoes reaches a report.
        code = exc.response.get("Error", {}).get("Code") or "unknown error"
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        suffix = f" (HTTP {status})" if status else ""
        raise ProbeDown(f"S3 refused ListBuckets: {code}{suffix}", status) from None
    except (ConnectTimeoutError, ReadTimeoutError):
        raise TimeoutError from None
    finally:
        client.close()


async def _probe_s3(target: ProbeTarget, timeout: float) -> tuple[ProbeStatus, str, dict]:
    if not (target.access_key and target.secret_key):
        # Without keys boto3 would go looking for some elsewhere (~/.aws, the environment).
        raise ProbeDown("no S3 access and secret key to sign ListBuckets with")
    buckets = await asyncio.to_thread(_s3_list_buckets, target, timeout)
    return "up", f"S3 answered ListBuckets: {buckets} bucket(s)", {}


# 'Failed client connect: ... Os { code: 111, kind: ConnectionRefused, message: "Connection refused" }'
_TEMPORAL_CAUSE = re.compile(r'message: "([^"]+)"')
_TEMPORAL_UP_STATES = {"REGISTERED"}
_TEMPORAL_DEGRADED_STATES = {"DEPRECATED"}


async def _probe_temporal(target: ProbeTarget, timeout: float) -> tuple[ProbeStatus, str, dict]:
    from datetime import timedelta

    from temporalio.api.enums.v1 import NamespaceState
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
    from temporalio.service import ConnectConfig, RPCError, RPCStatusCode, ServiceClient

    limit = timedelta(seconds=timeout)
    try:
        # The gRPC service client, not temporalio.client.Client: one RPC needs no workflow
        # machinery, and importing it would cost every sweep another 0.2 s.
        client = await ServiceClient.connect(
            ConnectConfig(target_host=f"{target.host}:{target.port}", connect_timeout=limit)
        )
    except RuntimeError as exc:  # the Rust core's connect error: its innermost message says why
        causes = _TEMPORAL_CAUSE.findall(str(exc))
        raise ProbeDown(f"Temporal connect failed: {causes[-1] if causes else describe_error(exc)}") from None
    try:
        response = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=target.namespace), timeout=limit
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.DEADLINE_EXCEEDED:
            raise TimeoutError from None
        raise ProbeDown(
            f"Temporal DescribeNamespace {target.namespace}: {exc.status.name}: {exc.message}"
        ) from None
    state = NamespaceState.Name(response.namespace_info.state).removeprefix("NAMESPACE_STATE_")
    detail = f"Temporal namespace {target.namespace}: {state}"
    if state in _TEMPORAL_UP_STATES:
        return "up", detail, {}
    if state in _TEMPORAL_DEGRADED_STATES:
        return "degraded", detail, {}
    raise ProbeDown(detail)


def _amqp_failure(exc: Exception) -> Exception:
    """What pika's connection error wraps (refused, timed out), as the exception to raise."""
    from pika.adapters.utils.connection_workflow import AMQPConnectorStackTimeout

    cause: Any = exc
    # pika wraps: AMQPConnectionError(args=(AMQPConnector...Error(.exception=ConnectionRefusedError),))
    while True:
        inner = getattr(cause, "exception", None)
        if inner is None and cause.args and isinstance(cause.args[0], BaseException):
            inner = cause.args[0]
        if not isinstance(inner, BaseException):
            break
        cause = inner
    if isinstance(cause, AMQPConnectorStackTimeout | TimeoutError):
        return TimeoutError()
    if cause is exc:
        return exc
    return ProbeDown(f"{type(exc).__name__}: {describe_error(cause)}")


def _amqp_login(target: ProbeTarget, timeout: float) -> dict[str, Any]:
    """The broker's server_properties after a login as the target's user; blocking, bounded."""
    import pika
    from pika.adapters.utils.connection_workflow import AMQPConnectorException
    from pika.exceptions import AMQPError

    # pika logs every failed connect at ERROR, with a traceback, on stderr when nothing is
    # configured; the probe's result already names the failure.
    logging.getLogger("pika").setLevel(logging.CRITICAL)

    parameters = pika.ConnectionParameters(
        target.host,
        target.port,
        credentials=pika.PlainCredentials(target.user or "", target.password or ""),
        connection_attempts=1,
        retry_delay=0,
        socket_timeout=timeout,
        stack_timeout=timeout,  # the whole handshake, login included
        blocked_connection_timeout=timeout,
        client_properties={"connection_name": "vextrus-nb-probe"},
    )
    try:
        connection = pika.BlockingConnection(parameters)
    except (AMQPError, AMQPConnectorException) as exc:
        raise _amqp_failure(exc) from None
    try:
        # pika keeps the broker's Connection.Start properties on its implementation only.
        return dict(connection._impl.server_properties or {})
    finally:
        connection.close()


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


async def _probe_amqp(target: ProbeTarget, timeout: float) -> tuple[ProbeStatus, str, dict]:
    properties = await asyncio.to_thread(_amqp_login, target, timeout)
    product = _text(properties.get("product", "AMQP broker"))
    version = _text(properties.get("version", "?"))
    return "up", f"AMQP login as {target.user} accepted ({product} {version})", {}


# A four-letter word's answer is a few hundred bytes; a listener that streams more is not ZooKeeper.
_ZK_ANSWER_LIMIT = 64 * 1024
_ZK_SERVING_MODES = {"standalone", "leader", "follower", "observer"}


async def _zookeeper_word(target: ProbeTarget, word: str) -> str:
    """Send a four-letter word, read the answer until ZooKeeper closes the connection."""
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        writer.write(word.encode())
        await writer.drain()
        answer = b""
        while len(answer) < _ZK_ANSWER_LIMIT and (chunk := await reader.read(4096)):
            answer += chunk
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return answer.decode(errors="replace").strip()


def _first_line(text: str, limit: int = 80) -> str:
    line = text.splitlines()[0] if text else ""
    return repr(line[:limit]) if line else "nothing"


async def _probe_zookeeper(target: ProbeTarget, timeout: float) -> tuple[ProbeStatus, str, dict]:
    # ruok answers imok before the server serves; srvr's Mode says whether it does.
    answer = await _zookeeper_word(target, "ruok")
    if answer != "imok":
        raise ProbeDown(f"ZooKeeper ruok answered {_first_line(answer)}, not 'imok'")
    stats = await _zookeeper_word(target, "srvr")
    mode = re.search(r"^Mode: (\S+)", stats, re.MULTILINE)
    if mode is None:
        raise ProbeDown(f"ZooKeeper srvr reports no Mode: {_first_line(stats)}")
    version = re.search(r"^Zookeeper version: ([^-,\s]+)", stats, re.MULTILINE)
    detail = f"ZooKeeper {version.group(1) if version else '?'} answered imok, mode {mode.group(1)}"
    return ("up" if mode.group(1) in _ZK_SERVING_MODES else "degraded"), detail, {}


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
        raise ProbeDown(f"HTTP {response.status_code}: {reason}", response.status_code, body)
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


_RUNNERS = {
    "tcp": _probe_tcp,
    "postgres": _probe_postgres,
    "redis": _probe_redis,
    "kafka": _probe_kafka,
    "s3": _probe_s3,
    "temporal": _probe_temporal,
    "amqp": _probe_amqp,
    "zookeeper": _probe_zookeeper,
}


def _scrub(text: str, target: ProbeTarget) -> str:
    """A client library's message with the target's secrets masked, should one ever echo them."""
    for secret in target.secrets():
        text = text.replace(secret, "***")
    return text


async def probe(
    target: ProbeTarget,
    timeout: float = 2.0,
    client: httpx.AsyncClient | None = None,
    latency_budget_ms: float | None = None,
) -> ProbeResult:
    """Probe one target; never raises, every outcome is a ProbeResult."""
    import httpx

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
            runner = _RUNNERS[target.kind]
            status, detail, extra = await asyncio.wait_for(runner(target, timeout), timeout)
    except ProbeDown as exc:
        status, detail = "down", str(exc)
        extra = {"http_status": exc.http_status, "body": exc.body}
    except (TimeoutError, httpx.TimeoutException):
        status, detail, timed_out = "down", f"no answer within {timeout:g}s", True
    except Exception as exc:  # every failure of a probe is a finding, not a crash
        status, detail = "down", describe_error(exc)
    detail = _scrub(detail, target)
    latency_ms = (time.perf_counter() - started) * 1000
    over_budget = status == "up" and latency_budget_ms is not None and latency_ms > latency_budget_ms
    if over_budget:
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
        over_budget=over_budget,
    )


def describe_error(exc: BaseException, timeout_s: float | None = None) -> str:
    """One line for an error; a timeout (given the timeout it hit) reads 'no answer within Ns'."""
    if timeout_s is not None and _is_timeout(exc):
        return f"no answer within {timeout_s:g}s"
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, TimeoutError):
        return True
    import httpx

    return isinstance(exc, httpx.TimeoutException)


# The client library each protocol's probe imports. Importing temporalio or boto3 takes 0.5-2 s
# (more on a loaded machine) and holds the event loop: done inside a timed probe, it would
# time out every probe in flight, so a sweep imports what it needs before the clock starts.
_CLIENT_MODULES: dict[str, tuple[str, ...]] = {
    "postgres": ("psycopg",),
    "redis": ("redis.asyncio", "redis.asyncio.retry", "redis.backoff"),
    "kafka": ("confluent_kafka.admin",),
    "s3": ("boto3", "botocore.config", "botocore.exceptions"),
    "temporal": ("temporalio.api.enums.v1", "temporalio.api.workflowservice.v1", "temporalio.service"),
    "amqp": ("pika", "pika.adapters.utils.connection_workflow"),
}


def preload_clients(kinds: set[str]) -> None:
    """Import the client libraries these probe kinds use (a no-op once imported)."""
    import importlib

    for kind in kinds:
        for module in _CLIENT_MODULES.get(kind, ()):
            importlib.import_module(module)
    if "s3" in kinds:  # botocore reads its S3 service model with the first client: ~0.3 s of CPU
        _s3_client(ProbeTarget("preload", "s3", "127.0.0.1", 9), 1.0).close()


async def run_probes(
    targets: Sequence[ProbeTarget],
    timeout: float = 2.0,
    concurrency: int = 32,
    latency_budget_ms: float | None = None,
) -> list[ProbeResult]:
    """Probe all targets concurrently (at most `concurrency` at once), in input order."""
    import httpx

    preload_clients({t.kind for t in targets})
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, follow_redirects=False) as client:

        async def bounded(target: ProbeTarget) -> ProbeResult:
            async with gate:
                return await probe(target, timeout, client, latency_budget_ms)

        swept = await asyncio.gather(*(bounded(t) for t in targets))
        return await measured_alone(
            list(zip(targets, swept, strict=True)), timeout, client, latency_budget_ms
        )


async def measured_alone(
    swept: Sequence[tuple[ProbeTarget, ProbeResult]],
    timeout: float,
    client: httpx.AsyncClient,
    latency_budget_ms: float | None,
) -> list[ProbeResult]:
    """The sweep's results, each one over the latency budget measured again on its own.

    In a sweep every probe shares one event loop and one connection pool (and on the sandbox the
    18 services share one process), so a round trip includes waiting its turn on both sides: the
    probing's queue, not the component's latency. A component is judged slow only if it is slow
    alone; its detail gives both figures. The probes again run one at a time, all within one
    timeout: each gets what is left of it, and one that cannot answer in what is left keeps the
    sweep's figure (still over the budget) rather than becoming down for want of time."""
    deadline = time.monotonic() + timeout
    results = []
    for target, result in swept:
        left = deadline - time.monotonic()
        if result.over_budget and left > 0:
            alone = await probe(target, min(timeout, left), client, latency_budget_ms)
            if alone.status != "down":
                result = replace(
                    alone,
                    detail=f"{alone.detail} (measured alone; {result.latency_ms:.0f} ms within the sweep)",
                )
        results.append(result)
    return results


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
