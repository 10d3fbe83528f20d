"""Infrastructure stability: the datastores and brokers every service needs."""

from __future__ import annotations

import asyncio

import psycopg
from redis.exceptions import AuthenticationError, ResponseError

from vextrus_nb.checks.context import CheckContext, describe_error
from vextrus_nb.checks.model import Finding, Outcome, check

CONNECTION_CEILING = 0.80  # of max_connections, the reference documents' alert threshold


async def components_answer(ctx: CheckContext, names: tuple[str, ...], what: str) -> Outcome:
    """Each named component in the environment answers its probe (TCP connect or health path);
    the ones that do not are the findings."""
    present = [n for n in names if ctx.in_scope(n)]
    if not present:
        return Outcome.not_applicable(f"the environment runs none of {', '.join(names)}")
    results = await asyncio.gather(*(ctx.probe(n) for n in present))
    findings = [Finding(r.component, r.detail) for r in results if r.status == "down"]
    evidence = "; ".join(f"{r.component} {r.status} ({r.detail}, {r.latency_ms:.0f} ms)" for r in results)
    return Outcome.of(f"{what}: {evidence}", findings)


@check(
    "INF-PG-ACCEPT",
    "infrastructure",
    "critical",
    title="PostgreSQL accepts connections",
    probes="login as the environment's admin user and SELECT server_version",
    criterion="the login and the query succeed within the probe timeout",
    remediation="Check the postgres container/pod and its log; `pg_isready`; disk space and max_connections.",
)
async def postgres_accepts(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("postgres"):
        return Outcome.not_applicable("the environment runs no PostgreSQL")
    result = await ctx.probe("postgres")
    return Outcome.of(result.detail, [] if result.ok else [Finding("postgres", result.detail)])


@check(
    "INF-PG-CONNECTIONS",
    "infrastructure",
    "high",
    title="PostgreSQL connections below 80% of max_connections",
    probes="count(*) of client backends in pg_stat_activity against max_connections",
    criterion="client connections < 80% of max_connections",
    remediation="Find the application holding connections (pg_stat_activity by application_name); "
    "put PgBouncer in front, or lower the services' pool sizes.",
)
async def postgres_connections(ctx: CheckContext) -> Outcome:
    login = ctx.env.postgres
    if not ctx.in_scope("postgres") or login is None:
        return Outcome.not_applicable("the environment runs no PostgreSQL")
    host, port = ctx.where["postgres"]

    async def measure() -> tuple[int, int]:
        conn = await psycopg.AsyncConnection.connect(
            host=host,
            port=port,
            dbname="postgres",
            user=login.user,
            password=ctx.secret(login.password_secret),
            connect_timeout=max(1, int(ctx.timeout_s)),
            application_name="vextrus-nb-checklist",
        )
        async with conn:
            cur = await conn.execute(
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
                " current_setting('max_connections')::int"
            )
            used, limit = await cur.fetchone()  # type: ignore[misc]  # Optional, but this SELECT has a row
        return used, limit

    try:
        used, limit = await ctx.bounded(measure())
    except Exception as exc:
        return Outcome.of("could not measure", [Finding("postgres", describe_error(exc, ctx.timeout_s))])
    ratio = used / limit
    evidence = f"{used} of max_connections {limit} in use ({ratio:.0%}; ceiling {CONNECTION_CEILING:.0%})"
    findings = [Finding("postgres", evidence)] if ratio >= CONNECTION_CEILING else []
    return Outcome.of(evidence, findings)


@check(
    "INF-REDIS-AUTH",
    "infrastructure",
    "critical",
    title="Redis answers PING with authentication and refuses it without",
    probes="PING with the environment's credentials, then PING with none",
    criterion="the authenticated PING answers PONG; the anonymous one gets NOAUTH",
    remediation="Start Redis with requirepass / an ACL default user with a password "
    "(`ACL SETUSER default on >...`); check that the services' credentials are current.",
)
async def redis_auth(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("redis") or ctx.env.redis is None:
        return Outcome.not_applicable("the environment runs no Redis")

    async def anonymous_ping() -> str:
        client = ctx.redis_client(authenticated=False)
        try:
            await client.ping()
            return "answered"
        except AuthenticationError:
            return "refused"
        except ResponseError as exc:
            return "refused" if "NOAUTH" in str(exc) else f"error: {exc}"
        finally:
            await client.aclose()

    authenticated, anonymous = await asyncio.gather(
        ctx.probe("redis"), ctx.bounded(anonymous_ping()), return_exceptions=True
    )
    findings = []
    authenticated_ok = not isinstance(authenticated, BaseException) and authenticated.ok
    if not authenticated_ok:
        detail = (
            describe_error(authenticated, ctx.timeout_s)
            if isinstance(authenticated, BaseException)
            else authenticated.detail
        )
        findings.append(Finding("redis", f"authenticated PING failed: {detail}"))
    if isinstance(anonymous, BaseException):
        anonymous = f"error: {describe_error(anonymous, ctx.timeout_s)}"
    if anonymous == "answered":
        findings.append(Finding("redis", "an unauthenticated client got PONG: no password is enforced"))
    elif anonymous != "refused" and authenticated_ok:
        findings.append(Finding("redis", f"unauthenticated PING: {anonymous}"))
    evidence = (
        f"authenticated PING: {'PONG' if authenticated_ok else 'failed'}; unauthenticated PING: {anonymous}"
    )
    return Outcome.of(evidence, findings)


@check(
    "INF-ES-HEALTH",
    "infrastructure",
    "high",
    title="Elasticsearch cluster health green",
    probes="GET /_cluster/health",
    criterion="status green; yellow is tolerated on a single-node cluster",
    remediation="GET /_cluster/allocation/explain for unassigned shards; check disk watermarks.",
)
async def elasticsearch_health(ctx: CheckContext) -> Outcome:
    if not ctx.in_scope("elasticsearch"):
        return Outcome.not_applicable("the environment runs no Elasticsearch")
    result = await ctx.probe("elasticsearch")
    body = result.body or {}
    status, nodes = str(body.get("status", "")).lower(), body.get("number_of_nodes")
    evidence = f"cluster status {status or '?'}, {nodes if nodes is not None else '?'} node(s)"
    if status == "green" or (status == "yellow" and nodes == 1):
        return Outcome.of(evidence + (" (yellow tolerated: single node)" if status == "yellow" else ""))
    detail = evidence if status else result.detail
    return Outcome.of(evidence if status else result.detail, [Finding("elasticsearch", detail)])


@check(
    "INF-KAFKA",
    "infrastructure",
    "critical",
    title="Kafka brokers and ZooKeeper answer",
    probes="a Kafka metadata request to the broker; ZooKeeper's ruok and srvr (TCP where simulated)",
    criterion="the broker lists itself and ZooKeeper answers imok and a serving mode",
    remediation="Check the broker's log for ZooKeeper session errors; restart zookeeper, then kafka.",
)
async def kafka_reachable(ctx: CheckContext) -> Outcome:
    return await components_answer(ctx, ("zookeeper", "kafka"), "brokers")


@check(
    "INF-MINIO",
    "infrastructure",
    "high",
    title="MinIO answers S3",
    probes="S3 ListBuckets with the environment's object_store keys (GET /minio/health/live where simulated)",
    criterion="the request is signed and answered",
    remediation="Check the minio container and its volume; file-storage cannot store documents without it.",
)
async def minio_live(ctx: CheckContext) -> Outcome:
    return await components_answer(ctx, ("minio",), "object storage")


@check(
    "INF-TEMPORAL",
    "infrastructure",
    "high",
    title="Temporal answers",
    probes="DescribeNamespace of the default namespace over the frontend's gRPC (7233)",
    criterion="the namespace is registered",
    remediation="Check temporal's log (it needs PostgreSQL); `tctl cluster health`.",
)
async def temporal_reachable(ctx: CheckContext) -> Outcome:
    return await components_answer(ctx, ("temporal",), "workflow engine")
