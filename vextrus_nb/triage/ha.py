"""High availability as triage sees it, read from the real servers the environment's `ha:`
names, through the ha engines (vextrus_nb/ha: SQL for replication, Sentinel's own commands):

- replication: the primary's reachability, its pg_stat_replication (each replica's state and
  replay lag against the environment's bound), the replica's own replay state (paused? what it
  has replayed, when it last replayed a commit);
- sentinels: each Sentinel's primary, its flags for it (s_down, o_down), CKQUORUM, how many agree,
  and whether the primary they name answers.

An environment without `ha:` has nothing here: both collectors are skipped, no signal."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis

from vextrus_nb.config import PostgresHA, RedisHA
from vextrus_nb.ha import postgres as replication
from vextrus_nb.ha import sentinel
from vextrus_nb.pg_conninfo import conninfo
from vextrus_nb.probes import describe_error
from vextrus_nb.triage.context import TriageContext
from vextrus_nb.triage.model import CollectorReport, Signal
from vextrus_nb.triage.postgres import OWN_APPLICATION

PRIMARY = "postgres"  # the inventory's PostgreSQL: the primary the services reach
REDIS = "redis"
SENTINELS = "sentinels"  # the Sentinels as one subject of findings (they fail or agree together)
DOWN_FLAGS = ("s_down", "o_down")


# -- PostgreSQL replication -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReplicationState:
    """What the collector read: each part, or why it could not (the error, scrubbed)."""

    primary_address: str
    primary_unreachable: str  # why a TCP connect to the primary failed; "" when it answers
    primary: replication.PrimaryView | None
    primary_error: str
    replica: replication.ReplicaView | None
    replica_error: str
    replica_deployed: bool = True  # False: the environment gives the replica no address here


def _dsn(ctx: TriageContext, component: str) -> str:
    """A read-only libpq connection string as the environment's admin. It holds the password:
    it goes to psycopg only, never into evidence."""
    host, port = ctx.where[component]
    login = ctx.env.postgres
    assert login is not None
    return conninfo(
        host,
        port,
        login.user,
        ctx.secret(login.password_secret),
        application_name=OWN_APPLICATION,
        options="-c default_transaction_read_only=on",
    )


async def _unreachable(host: str, port: int, timeout_s: float) -> str:
    """Why a TCP connect fails, "" when it succeeds: a dead server, told apart from one that
    answers but refuses our login (that is not a dead primary)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError) as exc:
        return describe_error(exc, timeout_s)
    writer.close()
    return ""


async def _read(ctx: TriageContext, work: Any) -> tuple[Any, str]:
    """A blocking ha-engine read in a thread, within the timeout: (result, "") or (None, why)."""
    try:
        return await ctx.bounded(asyncio.to_thread(work), ctx.timeout_s + 1.0), ""
    except Exception as exc:
        return None, ctx.scrubber.text(describe_error(exc, ctx.timeout_s))


async def read_replication(ctx: TriageContext, ha: PostgresHA) -> ReplicationState:
    host, port = ctx.where[PRIMARY]
    primary_dsn = _dsn(ctx, PRIMARY)
    # A replica the environment declares but runs nowhere (the sandbox's planted deployment has
    # none: the checklist's critical gap) has no address: not asked, and not a triage finding.
    deployed = ha.replica in ctx.where

    async def replica_read() -> tuple[Any, str]:
        if not deployed:
            return None, "declared, but not deployed here (no address)"
        replica_dsn = _dsn(ctx, ha.replica)
        return await _read(ctx, lambda: replication.replica_view(replica_dsn, ctx.timeout_s))

    unreachable, (primary, primary_error), (replica, replica_error) = await asyncio.gather(
        _unreachable(host, port, ctx.timeout_s),
        _read(ctx, lambda: replication.primary_view(primary_dsn, ctx.timeout_s)),
        replica_read(),
    )
    return ReplicationState(
        f"{host}:{port}", unreachable, primary, primary_error, replica, replica_error, deployed
    )


def _replica_summary(state: ReplicationState, ha: PostgresHA) -> str:
    if state.replica is None:
        return f"replica {ha.replica}: {state.replica_error}"
    view = state.replica
    if not view.in_recovery:
        return f"replica {ha.replica} answers as a primary (not in recovery)"
    replayed = (
        f", last commit replayed at {view.last_replayed_at:%H:%M:%S} UTC" if view.last_replayed_at else ""
    )
    paused = ", replay PAUSED" if view.replay_paused else ""
    return (
        f"replica {ha.replica} in recovery, received up to {view.receive_lsn}, "
        f"replayed up to {view.replay_lsn}{replayed}{paused}"
    )


def replication_signals(state: ReplicationState, ha: PostgresHA) -> list[Signal]:
    """The replication symptoms: a dead primary, a replica not streaming, lag past the bound,
    replay paused."""
    signals: list[Signal] = []
    replica_summary = _replica_summary(state, ha)
    if state.primary_unreachable:
        candidate = state.replica is not None and state.replica.in_recovery
        signals.append(
            Signal(
                "pg_primary_down",
                PRIMARY,
                f"primary {state.primary_address}: {state.primary_unreachable}; {replica_summary}",
                "replication",
                subject=f"{ha.replica} can be promoted" if candidate else f"{ha.replica} cannot take over",
            )
        )
    elif state.primary is not None:
        view = state.primary
        # Never set up (no replica connected, no slot kept for one, none answering: the sandbox's
        # planted single instance) is a gap in redundancy, not a replica that broke.
        absent = not view.standbys and not view.slots and state.replica is None
        if absent and state.replica_deployed:
            signals.append(
                Signal(
                    "pg_no_replica",
                    ha.replica,
                    f"the primary has no replica connected and no replication slot; {replica_summary}",
                    "replication",
                    subject=ha.replica,
                )
            )
        elif not view.streaming() and state.replica_deployed:
            connected = ", ".join(f"{s.name} {s.state}" for s in view.standbys) or "no replica connected"
            inactive = ", ".join(
                f"slot {s.name} inactive, retaining {s.retained_bytes} bytes of WAL"
                for s in view.slots
                if not s.active
            )
            signals.append(
                Signal(
                    "pg_replica_not_streaming",
                    ha.replica,
                    "; ".join(
                        part for part in (f"primary sees {connected}", inactive, replica_summary) if part
                    ),
                    "replication",
                    subject=ha.replica,
                )
            )
        for standby in view.standbys:
            seconds = standby.replay_lag_s or 0.0
            if standby.lag_bytes > ha.max_lag_bytes or seconds > ha.max_replay_lag_s:
                signals.append(
                    Signal(
                        "pg_replication_lag",
                        ha.replica,
                        f"replica {standby.name} ({standby.state}) is {standby.lag_bytes} bytes / "
                        f"{seconds:.1f} s behind the primary's {view.lsn} (bound {ha.max_lag_bytes} "
                        f"bytes / {ha.max_replay_lag_s:g} s); a failover now would lose the gap",
                        "replication",
                        subject=f"{standby.name}, {standby.lag_bytes} bytes / {seconds:.1f} s behind",
                        magnitude=standby.lag_bytes,
                    )
                )
    if state.replica is not None and state.replica.replay_paused:
        signals.append(
            Signal(
                "pg_replay_paused",
                ha.replica,
                f"pg_get_wal_replay_pause_state() is not 'not paused': {replica_summary}",
                "replication",
                subject=ha.replica,
            )
        )
    return signals


async def collect_replication(ctx: TriageContext) -> CollectorReport:
    ha = ctx.env.ha.postgres if ctx.env.ha else None
    if ha is None or ctx.env.postgres is None or not ctx.in_scope(PRIMARY):
        return CollectorReport(
            "replication", "skipped", detail="the environment declares no PostgreSQL replica"
        )
    state = await read_replication(ctx, ha)
    standbys = state.primary.standbys if state.primary else []
    primary_detail = (
        f"primary {state.primary_address} unreachable"
        if state.primary_unreachable
        else (f"primary at {state.primary.lsn}" if state.primary else f"primary: {state.primary_error}")
    )
    # A primary that answers but gives no view (a refused login, a timeout) is a gap in the
    # evidence, shown as the collector's error; a primary that does not answer is a finding.
    unread = state.primary is None and not state.primary_unreachable
    return CollectorReport(
        "replication",
        "error" if unread else "ok",
        detail=f"{primary_detail}, {len(standbys)} replica(s) connected; {_replica_summary(state, ha)}",
        signals=replication_signals(state, ha),
        data={
            "standbys": [s.__dict__ for s in standbys],
            "slots": [s.__dict__ for s in state.primary.slots] if state.primary else [],
            "replica": state.replica.__dict__ if state.replica else {"error": state.replica_error},
        },
    )


# -- Redis Sentinel -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SentinelState:
    """One Sentinel's answer: its vote (ha/sentinel.py) and its flags for the primary."""

    vote: sentinel.SentinelVote
    flags: tuple[str, ...] = ()


def _ask_one(address: str, service: str, timeout_s: float) -> SentinelState:
    vote = sentinel.view([address], service, timeout_s).votes[0]
    if vote.primary is None:
        return SentinelState(vote)
    host, port = address.rsplit(":", 1)
    client = redis.Redis(
        host=host, port=int(port), socket_timeout=timeout_s, socket_connect_timeout=timeout_s
    )
    try:
        # SENTINEL MASTER's flat reply (name, value, ...): raw, as ha/sentinel.py reads Sentinel.
        reply = client.execute_command("SENTINEL", "MASTER", service)
        words = [part.decode() if isinstance(part, bytes) else str(part) for part in reply]
        fields = dict(zip(words[::2], words[1::2], strict=True))
        return SentinelState(vote, tuple(fields.get("flags", "").split(",")))
    except redis.RedisError:
        return SentinelState(vote)  # its vote stands; only the flags are missing
    finally:
        client.close()


async def read_sentinels(ctx: TriageContext, ha: RedisHA) -> tuple[list[SentinelState], str]:
    """Every configured Sentinel asked at once (one that hangs costs one timeout, not one each),
    and why the primary they name does not answer ("" when it does, or none is named)."""
    addresses = [f"{ctx.where[name][0]}:{ctx.where[name][1]}" for name in ha.sentinels if name in ctx.where]
    # Two rounds at most per Sentinel (its vote, then its flags), each within the timeout.
    states = list(
        await asyncio.gather(
            *(
                ctx.bounded(
                    asyncio.to_thread(_ask_one, address, ha.service, ctx.timeout_s), 2 * ctx.timeout_s
                )
                for address in addresses
            )
        )
    )
    named = Counter(s.vote.primary for s in states if s.vote.primary)
    unreachable = ""
    if named:
        host, port = named.most_common(1)[0][0].rsplit(":", 1)
        unreachable = await _unreachable(host, int(port), ctx.timeout_s)
    return states, unreachable


def sentinel_signals(states: list[SentinelState], primary_unreachable: str, ha: RedisHA) -> list[Signal]:
    """The Sentinel symptoms: the primary they name dead, the quorum lost, a split view, a
    Sentinel that does not answer."""
    signals: list[Signal] = []
    votes = sentinel.SentinelView(ha.service, [s.vote for s in states])
    answering = votes.answering()
    majority = len(states) // 2 + 1
    named = Counter(v.primary for v in answering)
    primary, agreeing = named.most_common(1)[0] if named else (None, 0)
    described = "; ".join(
        f"{s.vote.sentinel}: {s.vote.primary or s.vote.detail}"
        + (f" [{','.join(s.flags)}]" if s.flags else "")
        + ("" if s.vote.quorum_ok or s.vote.primary is None else f" ({s.vote.detail})")
        for s in states
    )
    down_by = [
        s.vote.sentinel for s in states if s.vote.primary == primary and set(s.flags) & set(DOWN_FLAGS)
    ]
    if primary and (primary_unreachable or len(down_by) >= majority):
        why = primary_unreachable or f"flagged down by {len(down_by)} Sentinel(s)"
        signals.append(
            Signal(
                "redis_primary_down",
                REDIS,
                f"the primary the Sentinels name, {primary} ({agreeing} of {len(states)} agree), is down: "
                f"{why}; the Sentinels: {described}",
                "sentinels",
                subject=primary,
            )
        )
    if len(answering) < majority or not any(v.quorum_ok for v in answering):
        signals.append(
            Signal(
                "sentinel_quorum_lost",
                SENTINELS,
                f"{len(answering)} of {len(states)} Sentinel(s) answer (a majority is {majority}), "
                f"CKQUORUM holds on {sum(v.quorum_ok for v in answering)}: {described}",
                "sentinels",
                subject=f"{len(answering)} of {len(states)} answer",
                magnitude=len(states) - len(answering),
            )
        )
    if len(named) > 1:
        signals.append(
            Signal(
                "sentinel_disagree",
                SENTINELS,
                f"the Sentinels name {len(named)} different primaries: {described}",
                "sentinels",
                subject=", ".join(f"{p} ({n})" for p, n in named.most_common()),
            )
        )
    # Each silent Sentinel: its own finding while the others still hold a quorum (redundancy
    # lost), folded into the quorum's finding when they do not (rules: merge_into).
    for vote in (s.vote for s in states if s.vote.primary is None):
        signals.append(
            Signal(
                "sentinel_unreachable",
                SENTINELS,
                f"Sentinel {vote.sentinel}: {vote.detail}",
                "sentinels",
                subject=vote.sentinel,
            )
        )
    return signals


async def collect_sentinels(ctx: TriageContext) -> CollectorReport:
    ha = ctx.env.ha.redis if ctx.env.ha else None
    if ha is None or not ctx.in_scope(REDIS):
        return CollectorReport("sentinels", "skipped", detail="the environment declares no Redis Sentinels")
    if not any(name in ctx.where for name in ha.sentinels):
        named = ", ".join(ha.sentinels) or "none"
        return CollectorReport("sentinels", "error", detail=f"no address for any Sentinel named ({named})")
    states, primary_unreachable = await read_sentinels(ctx, ha)
    answering = [s for s in states if s.vote.primary]
    votes = Counter(s.vote.primary for s in answering)
    primary = votes.most_common(1)[0][0] if votes else "none"
    return CollectorReport(
        "sentinels",
        detail=f"{len(answering)} of {len(states)} Sentinel(s) answer; primary {primary}"
        + (f" (unreachable: {primary_unreachable})" if primary_unreachable else ""),
        signals=sentinel_signals(states, primary_unreachable, ha),
        data={
            "sentinels": [
                {
                    "sentinel": s.vote.sentinel,
                    "primary": s.vote.primary,
                    "flags": ",".join(s.flags),
                    "quorum": s.vote.detail,
                }
                for s in states
            ]
        },
    )
