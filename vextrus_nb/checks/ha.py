"""High availability (the reference documents' critical gap 3: single-instance databases): a
PostgreSQL replica streaming within its lag bound through a live slot, PgBouncer answering with
no client queued, and Redis Sentinels agreeing on the primary with a quorum, its replica in sync.

Each reads the real servers through the ha engines (SQL, PgBouncer's console, Sentinel's
commands). An environment without an `ha:` section has nothing to fail over to: the checks are
not applicable there. The sandbox declares one: its hardened variant runs both replicas, its
planted one single instances (critical gap 3), which these checks name."""

from __future__ import annotations

import asyncio
from typing import Any

import redis

from vextrus_nb.checks.context import CheckContext, describe_error
from vextrus_nb.checks.model import Finding, Outcome, check
from vextrus_nb.config import PostgresHA, RedisHA
from vextrus_nb.ha import pgbouncer, postgres, sentinel
from vextrus_nb.pg_conninfo import conninfo


def _postgres_ha(ctx: CheckContext) -> PostgresHA | None:
    ha = ctx.env.ha
    return ha.postgres if ha and ctx.env.postgres and ctx.in_scope("postgres") else None


def _redis_ha(ctx: CheckContext) -> RedisHA | None:
    ha = ctx.env.ha
    return ha.redis if ha and ctx.in_scope("redis") else None


def dsn(ctx: CheckContext, component: str, dbname: str = "postgres") -> str:
    """A libpq connection string to a PostgreSQL-protocol endpoint as the environment's admin.
    It holds the password: it goes to the driver, never into evidence."""
    host, port = ctx.where[component]
    login = ctx.env.postgres
    assert login is not None
    password = ctx.secret(login.password_secret)
    return conninfo(host, port, login.user, password, dbname, application_name="vextrus-nb-checklist")


async def _in_thread(ctx: CheckContext, work: Any) -> Any:
    return await ctx.bounded(asyncio.to_thread(work), ctx.timeout_s + 0.5)


NOT_DEPLOYED = "declared, but not deployed here (no address): a single instance, nothing to fail over to"


def _not_configured(what: str) -> Outcome:
    return Outcome.not_applicable(f"the environment declares no {what} (`ha:` in its file)")


async def _primary_view(ctx: CheckContext) -> postgres.PrimaryView | Outcome:
    """The primary's replication view, read once per run for the PostgreSQL HA checks."""

    def read() -> postgres.PrimaryView:
        return postgres.primary_view(dsn(ctx, "postgres"), ctx.timeout_s)

    shared = ctx.once("ha.primary_view", lambda: asyncio.ensure_future(_in_thread(ctx, read)))
    try:
        return await asyncio.shield(shared)
    except Exception as exc:
        detail = (
            f"no replication view from the primary: {ctx.scrubber.text(describe_error(exc, ctx.timeout_s))}"
        )
        return Outcome.of(detail, [Finding("postgres", detail)])


async def _replication(ctx: CheckContext) -> tuple[PostgresHA, postgres.PrimaryView] | Outcome:
    """What the three replication checks start from: the environment's replica settings and the
    primary's view, or the Outcome to return (not configured; the primary gave no view)."""
    ha = _postgres_ha(ctx)
    if ha is None:
        return _not_configured("PostgreSQL replica")
    view = await _primary_view(ctx)
    return view if isinstance(view, Outcome) else (ha, view)


@check(
    "INF-PG-REPLICA",
    "infrastructure",
    "critical",
    title="PostgreSQL has a streaming replica",
    probes="pg_stat_replication on the primary; pg_is_in_recovery() on the replica",
    criterion="at least one replica is `streaming`, and the configured replica answers in recovery",
    remediation="Rebuild the replica (pg_basebackup -R -C -S <slot>) and check primary_conninfo; "
    "the replica's log says why it is not streaming. Reference: critical gap 3.",
)
async def postgres_replica(ctx: CheckContext) -> Outcome:
    read = await _replication(ctx)
    if isinstance(read, Outcome):
        return read
    ha, view = read
    findings = []
    if not view.streaming():
        states = ", ".join(f"{s.name} {s.state}" for s in view.standbys) or "no replica connected"
        findings.append(Finding(ha.replica, f"no streaming replica ({states})"))
    if ha.replica not in ctx.where:
        findings.append(Finding(ha.replica, NOT_DEPLOYED))
        return Outcome.of("replicas seen by the primary: none", findings)
    try:
        replica = await _in_thread(ctx, lambda: postgres.replica_view(dsn(ctx, ha.replica), ctx.timeout_s))
        if not replica.in_recovery:
            findings.append(Finding(ha.replica, "answers as a primary, not in recovery (promoted?)"))
    except Exception as exc:
        findings.append(Finding(ha.replica, ctx.scrubber.text(describe_error(exc, ctx.timeout_s))))
    listed = ", ".join(f"{s.name} {s.state} ({s.sync_state})" for s in view.standbys) or "none"
    return Outcome.of(f"replicas seen by the primary: {listed}", findings)


@check(
    "INF-PG-REPLICA-LAG",
    "infrastructure",
    "high",
    title="The PostgreSQL replica's replay lag is within the environment's bound",
    probes="pg_stat_replication: primary LSN minus replay LSN, and replay_lag",
    criterion="lag <= ha.postgres.max_lag_bytes and replay_lag <= ha.postgres.max_replay_lag_s",
    remediation="Is replay paused (pg_get_wal_replay_pause_state())? A long query on the replica "
    "(max_standby_streaming_delay)? Its disk or CPU? A failover now would lose the gap.",
)
async def postgres_replica_lag(ctx: CheckContext) -> Outcome:
    read = await _replication(ctx)
    if isinstance(read, Outcome):
        return read
    ha, view = read
    if not view.standbys:
        return Outcome.of("no replica connected: no lag to measure", [Finding(ha.replica, "not connected")])
    findings = []
    for standby in view.standbys:
        seconds = standby.replay_lag_s or 0.0
        if standby.lag_bytes > ha.max_lag_bytes or seconds > ha.max_replay_lag_s:
            findings.append(
                Finding(
                    standby.name,
                    f"{standby.lag_bytes} bytes / {seconds:.1f} s behind "
                    f"(bound {ha.max_lag_bytes} bytes / {ha.max_replay_lag_s:g} s)",
                )
            )
    evidence = "; ".join(
        f"{s.name} {s.lag_bytes} bytes, {(s.replay_lag_s or 0.0):.2f} s behind" for s in view.standbys
    )
    if not findings and await _replay_paused(ctx, ha):
        # Within the bound only for now: what arrives piles up unapplied until someone resumes it.
        findings.append(Finding(ha.replica, "replay is paused (pg_wal_replay_pause): its lag has no bound"))
    return Outcome.of(evidence, findings)


async def _replay_paused(ctx: CheckContext, ha: PostgresHA) -> bool:
    """Whether the replica's replay is paused; a replica that does not answer is INF-PG-REPLICA's."""
    try:
        view = await _in_thread(ctx, lambda: postgres.replica_view(dsn(ctx, ha.replica), ctx.timeout_s))
    except Exception:
        return False
    return bool(view.replay_paused)


@check(
    "INF-PG-SLOTS",
    "infrastructure",
    "medium",
    title="No inactive replication slot holds WAL",
    probes="pg_replication_slots on the primary: active, and the WAL each retains",
    criterion="every slot is active (an inactive slot keeps WAL until the disk fills)",
    remediation="Bring its replica back, or drop the slot (pg_drop_replication_slot) if the replica is gone.",
)
async def postgres_slots(ctx: CheckContext) -> Outcome:
    read = await _replication(ctx)
    if isinstance(read, Outcome):
        return read
    _, view = read
    findings = [
        Finding(slot.name, f"inactive, retaining {slot.retained_bytes} bytes of WAL")
        for slot in view.slots
        if not slot.active
    ]
    listed = ", ".join(f"{s.name} {'active' if s.active else 'INACTIVE'}" for s in view.slots) or "none"
    return Outcome.of(f"slots: {listed}", findings)


@check(
    "INF-PGBOUNCER-POOLS",
    "infrastructure",
    "high",
    title="PgBouncer answers and no pool is saturated",
    probes="PgBouncer's admin console: SHOW POOLS (clients active and waiting, servers, max wait)",
    criterion="the console answers and no pool has a client waiting 1 s or more for a server connection",
    remediation="Raise default_pool_size (or the backend's max_connections); find the service "
    "holding server connections (SHOW CLIENTS); a backend that refuses shows in PgBouncer's log.",
)
async def pgbouncer_pools(ctx: CheckContext) -> Outcome:
    ha = _postgres_ha(ctx)
    if ha is None:
        return _not_configured("PgBouncer")
    try:
        rows = await _in_thread(ctx, lambda: pgbouncer.pools(dsn(ctx, ha.pooler), ctx.timeout_s))
    except Exception as exc:
        detail = ctx.scrubber.text(describe_error(exc, ctx.timeout_s))
        return Outcome.of(f"no answer from the console: {detail}", [Finding(ha.pooler, detail)])
    findings = [
        Finding(
            ha.pooler,
            f"pool {p.database}/{p.user}: {p.clients_waiting} client(s) waiting, {p.max_wait_s:.1f} s",
        )
        for p in rows
        if p.saturated
    ]
    evidence = f"{len(rows)} pool(s); " + ", ".join(
        f"{p.database}/{p.user} {p.clients_active} active, {p.clients_waiting} waiting" for p in rows
    )
    return Outcome.of(evidence, findings)


def _sentinel_addresses(ctx: CheckContext, ha: RedisHA) -> dict[str, str]:
    """host:port -> the Sentinel's name in the environment (what a finding names)."""
    return {f"{ctx.where[name][0]}:{ctx.where[name][1]}": name for name in ha.sentinels if name in ctx.where}


@check(
    "INF-SENTINEL-QUORUM",
    "infrastructure",
    "critical",
    title="Redis Sentinels agree on the primary, with a quorum",
    probes="SENTINEL GET-MASTER-ADDR-BY-NAME and SENTINEL CKQUORUM on every configured Sentinel",
    criterion="at least ha.redis.min_sentinels answer, a majority name the same primary, and CKQUORUM holds",
    remediation="Restart the Sentinels that do not answer; run at least three on separate hosts "
    "(a quorum of two); a split view means a partition: check the network between them.",
)
async def sentinel_quorum(ctx: CheckContext) -> Outcome:
    ha = _redis_ha(ctx)
    if ha is None:
        return _not_configured("Redis Sentinel")
    names = _sentinel_addresses(ctx, ha)
    view = await _in_thread(ctx, lambda: sentinel.view(list(names), ha.service, ctx.timeout_s))
    findings = [
        Finding(names[vote.sentinel], f"{vote.sentinel}: {vote.detail}")
        for vote in view.votes
        if vote.primary is None
    ]
    answering = len(view.answering())
    if answering < ha.min_sentinels:
        findings.append(Finding("redis", f"{answering} Sentinel(s) answer, fewer than {ha.min_sentinels}"))
    primary = view.agreed_primary()
    if primary is None:
        findings.append(Finding("redis", "no majority of Sentinels names one primary"))
    elif not view.has_quorum():
        findings.append(Finding("redis", "CKQUORUM fails: a failover could not be authorised"))
    return Outcome.of(
        f"{answering} of {len(view.votes)} Sentinel(s) answer; primary {primary or 'disputed'}", findings
    )


@check(
    "INF-REDIS-REPLICA",
    "infrastructure",
    "high",
    title="The Redis replica is connected to its primary and in sync",
    probes="INFO replication on the replica: role, master_link_status, the offset gap",
    criterion="role slave with master_link_status up",
    remediation="Check masterauth and the primary's address on the replica (`replicaof`); after a "
    "failover Sentinel repoints replicas itself: a replica left pointing at the old primary is stuck.",
)
async def redis_replica(ctx: CheckContext) -> Outcome:
    ha = _redis_ha(ctx)
    if ha is None:
        return _not_configured("Redis replica")
    if ha.replica not in ctx.where:
        return Outcome.of(NOT_DEPLOYED, [Finding(ha.replica, NOT_DEPLOYED)])
    host, port = ctx.where[ha.replica]
    login = ctx.env.redis

    def read() -> dict[str, Any]:
        client = redis.Redis(
            host=host,
            port=port,
            username=login.user if login else None,
            password=ctx.secret(login.password_secret) if login else None,
            socket_timeout=ctx.timeout_s,
            socket_connect_timeout=ctx.timeout_s,
        )
        # redis-py types a reply as Awaitable | Any for its sync and async clients alike
        return client.info("replication")  # type: ignore[return-value]

    try:
        info = await _in_thread(ctx, read)
    except Exception as exc:
        detail = ctx.scrubber.text(describe_error(exc, ctx.timeout_s))
        return Outcome.of(f"no answer: {detail}", [Finding(ha.replica, detail)])
    role, link = info.get("role"), info.get("master_link_status")
    evidence = f"role {role}, link {link or '-'}, primary {info.get('master_host')}:{info.get('master_port')}"
    findings = [] if role == "slave" and link == "up" else [Finding(ha.replica, evidence)]
    return Outcome.of(evidence, findings)
