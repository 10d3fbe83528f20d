"""Inside PostgreSQL: connections against max_connections, long-running
queries, idle-in-transaction sessions, who blocks whom (pg_blocking_pids),
and replication lag where there are replicas.

Read-only by construction: the session runs with default_transaction_read_only
and a statement timeout. The login needs pg_monitor (or superuser) to see
other roles' queries. Query texts are cut short and password literals
redacted before anything is shown.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from vextrus_nb.triage.context import TriageContext
from vextrus_nb.triage.model import CollectorReport, Signal, TimelineEvent

OWN_APPLICATION = "vextrus-nb-triage"
QUERY_CHARS = 160

SESSIONS = """
SELECT pid, datname, usename, application_name, client_addr::text AS client, state,
       wait_event_type, wait_event, pg_blocking_pids(pid) AS blocked_by,
       -- an aborted transaction has no xact_start: it has been open at least since it aborted
       COALESCE(xact_start, state_change) AS xact_start, query_start,
       EXTRACT(EPOCH FROM now() - COALESCE(xact_start, state_change))::float AS xact_s,
       EXTRACT(EPOCH FROM now() - query_start)::float AS query_s,
       left(query, 400) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND application_name NOT LIKE 'vextrus-nb%'
"""
LIMITS = """
SELECT current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS connections
"""
REPLICATION = """
SELECT application_name, client_addr::text AS client, state,
       EXTRACT(EPOCH FROM replay_lag)::float AS replay_lag_s
FROM pg_stat_replication
"""
_PASSWORD_LITERAL = re.compile(r"(PASSWORD\s+)('(?:[^']|'')*'|\$\$.*?\$\$)", re.IGNORECASE | re.DOTALL)


def redact_query(text: str | None) -> str:
    """A query as we show it: password literals replaced, whitespace folded, cut short."""
    folded = " ".join(_PASSWORD_LITERAL.sub(r"\1'***'", text or "").split())
    return folded if len(folded) <= QUERY_CHARS else folded[: QUERY_CHARS - 1] + "…"


async def collect_postgres(ctx: TriageContext) -> CollectorReport:
    login = ctx.env.postgres
    if login is None or "postgres" not in {c.name for c in ctx.components()}:
        return CollectorReport("postgres", "skipped", detail="the environment has no PostgreSQL login")
    host, port = ctx.where["postgres"]
    timeout_ms = int(ctx.settings.timeout_s * 1000)
    conn = await ctx.bounded(
        psycopg.AsyncConnection.connect(
            host=host,
            port=port,
            dbname="postgres",
            user=login.user,
            password=ctx.secret(login.password_secret),
            connect_timeout=max(1, int(ctx.settings.timeout_s)),
            application_name=OWN_APPLICATION,
            options=f"-c default_transaction_read_only=on -c statement_timeout={timeout_ms}",
            autocommit=True,
            row_factory=dict_row,
        )
    )
    async with conn:
        limits = await (await conn.execute(LIMITS)).fetchone()
        sessions = await (await conn.execute(SESSIONS)).fetchall()
        replicas = await (await conn.execute(REPLICATION)).fetchall()
    for row in sessions:
        row["query"] = ctx.scrubber.text(redact_query(row["query"]))
    analysis = analyse(sessions, limits or {}, replicas, ctx)
    return CollectorReport(
        "postgres",
        detail=(
            f"{(limits or {}).get('connections')} of {(limits or {}).get('max_connections')} connections, "
            f"{len(analysis['problem_sessions'])} sessions worth a look, {len(replicas)} replicas"
        ),
        signals=analysis["signals"],
        events=analysis["events"],
        data={
            "limits": limits,
            "connections": connection_counts(sessions),
            "sessions": analysis["problem_sessions"],
            "replicas": replicas,
        },
    )


def connection_counts(sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts = Counter((s["datname"], s["application_name"] or "(none)", s["state"] or "?") for s in sessions)
    return [
        {"database": db, "application": app, "state": state, "connections": n}
        for (db, app, state), n in sorted(counts.items(), key=lambda kv: -kv[1])
    ]


def _service_of(session: dict[str, Any], ctx: TriageContext) -> str:
    """Which Vextrus service a session belongs to: by application name, else by database."""
    app = session.get("application_name") or ""
    for service in ctx.services():
        if app in (service.name, f"vextrus-{service.name}"):
            return service.name
    for service in ctx.services():
        if service.database and service.database == session.get("datname"):
            return service.name
    return app or session.get("usename") or f"pid {session['pid']}"


def _who(session: dict[str, Any]) -> str:
    return (
        f"pid {session['pid']} (user {session['usename']}, application "
        f"'{session['application_name'] or ''}', database {session['datname']})"
    )


def _root_blockers(sessions: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Blocked sessions grouped by the session at the head of their wait chain."""
    by_pid = {s["pid"]: s for s in sessions}
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for session in sessions:
        if not session["blocked_by"]:
            continue
        head, seen = session["blocked_by"][0], {session["pid"]}
        while head in by_pid and by_pid[head]["blocked_by"] and head not in seen:
            seen.add(head)
            head = by_pid[head]["blocked_by"][0]
        groups[head].append(session)
    return groups


def analyse(
    sessions: list[dict[str, Any]],
    limits: dict[str, Any],
    replicas: list[dict[str, Any]],
    ctx: TriageContext,
) -> dict[str, Any]:
    settings = ctx.settings
    signals: list[Signal] = []
    events: list[TimelineEvent] = []
    problem: dict[int, dict[str, Any]] = {}
    by_pid = {s["pid"]: s for s in sessions}

    def note(session: dict[str, Any], problem_name: str) -> None:
        row = problem.setdefault(session["pid"], {**session, "problem": problem_name})
        if problem_name not in row["problem"]:
            row["problem"] += f", {problem_name}"

    blockers = _root_blockers(sessions)
    for pid, blocked in blockers.items():
        head = by_pid.get(pid)
        victims = Counter(_service_of(s, ctx) for s in blocked)
        longest = max((s["query_s"] or 0) for s in blocked)
        waiting = ", ".join(f"{name} x{n}" for name, n in victims.items())
        who = _who(head) if head else f"pid {pid}"
        idle = bool(head and (head["state"] or "").startswith("idle in transaction"))
        if head:
            note(head, "blocks others")
            age = f"{head['xact_s'] or 0:.0f}s"
            state = (
                f"idle in transaction for {age}"
                if idle
                else f"{head['state']} for {head['query_s'] or 0:.0f}s"
            )
            evidence = (
                f"{who} {state}, last statement: {head['query']}; blocks {len(blocked)} "
                f"session(s): {waiting}, waiting up to {longest:.0f}s"
            )
        else:
            evidence = f"{who} blocks {len(blocked)} session(s): {waiting}"
        for session in blocked:
            note(session, f"waits on pid {pid}")
        signals.append(
            Signal(
                "pg_idle_tx_blocking" if idle else "pg_lock_wait",
                "postgres",
                evidence,
                "postgres",
                subject=who,
                affected=tuple(sorted(victims)),
                magnitude=len(blocked),
            )
        )
    for session in sessions:
        state = session["state"] or ""
        if state.startswith("idle in transaction"):
            if session["pid"] not in blockers and (session["xact_s"] or 0) >= settings.idle_in_tx_s:
                note(session, "idle in transaction")
                signals.append(
                    Signal(
                        "pg_idle_tx",
                        "postgres",
                        f"{_who(session)} idle in transaction for {session['xact_s']:.0f}s: "
                        f"{session['query']}",
                        "postgres",
                        subject=_who(session),
                        magnitude=session["xact_s"] or 0,
                    )
                )
            _event(events, ctx, session.get("xact_start"), session, "opened a transaction (still open, idle)")
        elif (
            state == "active"
            and not session["blocked_by"]
            and (session["query_s"] or 0) >= settings.long_query_s
        ):
            note(session, "long-running")
            signals.append(
                Signal(
                    "pg_long_query",
                    "postgres",
                    f"{_who(session)} running for {session['query_s']:.0f}s: {session['query']}",
                    "postgres",
                    subject=_who(session),
                    magnitude=session["query_s"] or 0,
                )
            )
            _event(events, ctx, session.get("query_start"), session, "started a long-running query")
        if session["blocked_by"]:
            _event(
                events,
                ctx,
                session.get("query_start"),
                session,
                f"began waiting on pid {session['blocked_by'][0]}",
            )

    if limits.get("max_connections"):
        usable = limits["max_connections"] - limits.get("reserved", 0)
        ratio = limits["connections"] / usable if usable > 0 else 1.0
        if ratio >= settings.connections_ratio:
            signals.append(
                Signal(
                    "pg_connections_high",
                    "postgres",
                    f"{limits['connections']} client connections of {usable} usable "
                    f"(max_connections {limits['max_connections']}); busiest: {_busiest(sessions)}",
                    "postgres",
                    subject=f"{ratio:.0%}",
                    magnitude=ratio,
                )
            )
    # An environment with `ha:` has its replicas judged by the replication collector, against
    # the environment's own bound (triage/ha.py): one finding, not two.
    judged_elsewhere = bool(ctx.env.ha and ctx.env.ha.postgres)
    for replica in [] if judged_elsewhere else replicas:
        lag = replica.get("replay_lag_s") or 0
        if lag >= settings.replication_lag_s:
            name = replica["application_name"] or replica["client"]
            signals.append(
                Signal(
                    "pg_replication_lag",
                    "postgres",
                    f"replica {name} ({replica['state']}) replays {lag:.0f}s behind",
                    "postgres",
                    subject=f"{name}, {lag:.0f}s",
                    magnitude=lag,
                )
            )
    columns = [
        "pid",
        "problem",
        "datname",
        "usename",
        "application_name",
        "state",
        "wait_event_type",
        "blocked_by",
        "xact_s",
        "query_s",
        "query",
    ]
    rows = [{k: row.get(k) for k in columns} for row in problem.values()]
    return {"signals": signals, "events": events, "problem_sessions": rows}


def _busiest(sessions: list[dict[str, Any]]) -> str:
    counts = Counter(s["application_name"] or s["usename"] for s in sessions).most_common(3)
    return ", ".join(f"{name} {n}" for name, n in counts)


def _event(
    events: list[TimelineEvent], ctx: TriageContext, at: datetime | None, session: dict[str, Any], what: str
) -> None:
    if at is not None and at >= ctx.since:
        events.append(TimelineEvent(at, "postgres", _service_of(session, ctx), f"{_who(session)} {what}"))
