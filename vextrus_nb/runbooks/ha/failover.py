"""The steps of notebooks/ha/failover.ipynb: fail PostgreSQL over to its replica behind
PgBouncer, or Redis over through its Sentinels, planned (a switchover) or unplanned (the primary
is gone). Preflight refuses what would be wrong; a dry run stops after the plan; a live run
promotes, repoints, proves a write, and rejoins the old primary where the driver can.

The record holds each step's seconds, the write-unavailability window and the data at risk."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from vextrus_nb import drivers
from vextrus_nb.config import Environment, PostgresHA, RedisHA, load_inventory, resolve_path
from vextrus_nb.errors import RunRefused, VextrusError
from vextrus_nb.ha import pgbouncer, postgres_failover, sentinel
from vextrus_nb.pg_conninfo import conninfo
from vextrus_nb.probe_targets import endpoints

if TYPE_CHECKING:
    from vextrus_nb.run.session import Runbook

DATASTORES = ("postgres", "redis")


def validate(env: Environment, parameters: dict[str, Any]) -> None:
    """Refuse bad parameters before anything is touched (the runner exits 2, before a kernel)."""
    datastore = parameters.get("datastore", "postgres")
    mode = parameters.get("mode", "unplanned")
    if datastore not in DATASTORES:
        raise RunRefused(f"datastore must be one of {', '.join(DATASTORES)}, not {datastore!r}")
    if mode not in postgres_failover.MODES:
        raise RunRefused(f"mode must be one of {', '.join(postgres_failover.MODES)}, not {mode!r}")
    ha = env.ha
    if ha is None or getattr(ha, datastore) is None:
        raise RunRefused(
            f"environment {env.name!r} declares no ha.{datastore} (a replica to fail over to): "
            "there is nothing to fail over"
        )
    # ha.postgres is not None: the getattr above checked it, in a form mypy cannot follow
    if datastore == "postgres" and not ha.postgres.pooler_config:  # type: ignore[union-attr]
        raise RunRefused(f"environment {env.name!r}: ha.postgres.pooler_config is not set (PgBouncer's ini)")
    if datastore == "postgres" and env.postgres is None:
        raise RunRefused(f"environment {env.name!r} names no PostgreSQL login (`postgres:`)")
    replica = getattr(ha, datastore).replica
    where: dict[str, Any] | None = None
    with contextlib.suppress(VextrusError):  # no platform to ask (the sandbox is down): start() says
        where = endpoints(env, load_inventory())
    if where is not None and replica not in where:
        raise RunRefused(
            f"environment {env.name!r} declares {replica} but runs none (no address): a single "
            "instance has nothing to fail over to (the sandbox: `vextrus-nb sandbox deployment hardened`)"
        )


@dataclass
class Plan:
    datastore: str
    mode: postgres_failover.Mode
    refusals: list[str]
    actions: list[tuple[str, str]]  # (what, detail)
    facts: list[dict[str, Any]] = field(default_factory=list)
    at_risk: str = ""

    @property
    def ok(self) -> bool:
        return not self.refusals

    def table(self) -> Any:
        import pandas as pd

        return pd.DataFrame(
            [{"step": what, "detail": detail} for what, detail in self.actions]
            + [{"step": "REFUSED", "detail": reason} for reason in self.refusals]
        )

    def facts_table(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.facts)


def _postgres_ha(rb: Runbook) -> PostgresHA:
    """The environment's ha.postgres, which validate() refused to run without."""
    settings = rb.env.ha.postgres if rb.env.ha else None
    assert settings is not None
    return settings


def _redis_ha(rb: Runbook) -> RedisHA:
    """The environment's ha.redis, which validate() refused to run without."""
    settings = rb.env.ha.redis if rb.env.ha else None
    assert settings is not None
    return settings


# ---------------------------------------------------------------- PostgreSQL


def _dsn(rb: Runbook, component: str) -> str:
    host, port = endpoints(rb.env, rb.inventory)[component]
    login = rb.env.postgres
    assert login is not None
    return conninfo(
        host, port, login.user, rb.secret(login.password_secret), application_name="vextrus-nb-failover"
    )


def _postgres_endpoints(rb: Runbook, settings: PostgresHA) -> postgres_failover.Endpoints:
    host, port = endpoints(rb.env, rb.inventory)[settings.replica]
    return postgres_failover.Endpoints(
        primary_dsn=_dsn(rb, "postgres"),
        replica_dsn=_dsn(rb, settings.replica),
        pooler_dsn=_dsn(rb, settings.pooler),
        pooler_config=resolve_path(settings.pooler_config),
        replica_host=host,
        replica_port=port,
    )


def _control(rb: Runbook) -> Any:
    """The driver, when it can stop a datastore node and rejoin one as a replica; else None.
    The local driver acts on the sandbox's own processes only: an environment it drives that is
    not the sandbox (servers named by port) has nothing it could rejoin."""
    if rb.env.driver == "local" and not rb.env.sandbox:
        return None
    try:
        driver = drivers.for_environment(rb.env)
    except Exception:
        return None
    return driver if isinstance(driver, drivers.FailoverControl) else None


def _plan_postgres(rb: Runbook, mode: postgres_failover.Mode) -> Plan:
    settings = _postgres_ha(rb)
    ends = _postgres_endpoints(rb, settings)
    pre = postgres_failover.preflight(ends, mode, settings.max_lag_bytes, settings.max_replay_lag_s)
    refusals = list(pre.refusals)
    if mode == "planned" and _control(rb) is None:
        refusals.append(
            f"the {rb.env.driver} driver cannot stop the old primary cleanly: a planned switchover "
            "needs it (stop it by hand, then run mode=unplanned)"
        )
    where = endpoints(rb.env, rb.inventory)
    old = "{}:{}".format(*where["postgres"])
    new = f"{ends.replica_host}:{ends.replica_port}"
    pooled_to = "{}:{}".format(*pgbouncer.backend(ends.pooler_config))
    actions = []
    if mode == "planned":
        actions += [
            ("fence", f"{old}: default_transaction_read_only, client sessions ended"),
            ("stop", f"{old} cleanly (the driver), so its last WAL reaches the replica"),
            ("catch up", f"{new} replays the old primary's last LSN"),
        ]
    actions += [
        ("promote", f"{new} (pg_promote)"),
        ("repoint", f"PgBouncer {settings.pooler} from {pooled_to} to {new} (RELOAD, RECONNECT)"),
        ("verify", "a write commits through the pooler"),
        ("rejoin", f"{old} rewound onto {new} and started as its replica (the driver)"),
    ]
    at_risk = (
        "nothing: the replica replays the fenced primary's last LSN before promotion"
        if mode == "planned"
        else f"what the replica never received; its replay backlog is {pre.lag_bytes} bytes, "
        f"last replayed commit at {pre.last_replayed_at}"
    )
    return Plan("postgres", mode, refusals, actions, pre.rows(), at_risk)


# ---------------------------------------------------------------- Redis


def _sentinels(rb: Runbook, settings: RedisHA) -> list[str]:
    where = endpoints(rb.env, rb.inventory)
    return ["{}:{}".format(*where[name]) for name in settings.sentinels if name in where]


def _redis_client(rb: Runbook, address: str) -> redis.Redis:
    host, port = address.rsplit(":", 1)
    login = rb.env.redis
    return redis.Redis(
        host=host,
        port=int(port),
        username=login.user if login else None,
        password=rb.secret(login.password_secret) if login else None,
        socket_timeout=2,
        socket_connect_timeout=2,
    )


def _plan_redis(rb: Runbook, mode: postgres_failover.Mode) -> Plan:
    settings = _redis_ha(rb)
    view = sentinel.view(_sentinels(rb, settings), settings.service)
    refusals = []
    answering = len(view.answering())
    if answering < settings.min_sentinels:
        refusals.append(f"{answering} Sentinel(s) answer, fewer than {settings.min_sentinels}: no quorum")
    primary = view.agreed_primary()
    if primary is None:
        refusals.append("the Sentinels do not agree on a primary: a failover now could split the data")
    elif not view.has_quorum():
        refusals.append("CKQUORUM fails: the Sentinels could not authorise a failover")
    facts: list[dict[str, Any]] = [
        {"check": f"Sentinel {v.sentinel}", "value": v.primary or v.detail} for v in view.votes
    ]
    at_risk = "writes acknowledged by the primary and not yet replicated (Redis replication is asynchronous)"
    if primary and mode == "planned":
        try:
            # redis-py types a reply as Awaitable | Any for its sync and async clients alike
            info: dict[str, Any] = _redis_client(rb, primary).info("replication")  # type: ignore[assignment]
            offsets = [int(v.get("offset", 0)) for k, v in info.items() if k.startswith("slave")]
            gap = int(info["master_repl_offset"]) - max(offsets, default=0)
            facts.append({"check": "replication offset gap (bytes)", "value": gap})
            at_risk = f"{gap} bytes of replication stream not yet acknowledged by the replica"
        except (redis.RedisError, KeyError, ValueError) as exc:
            refusals.append(
                f"the primary {primary} does not answer INFO: {type(exc).__name__} (mode=unplanned)"
            )
    actions = [
        ("failover", f"SENTINEL FAILOVER {settings.service} (from {primary or 'disputed'})"),
        ("verify", "a write commits on the primary the Sentinels then name"),
        ("rejoin", "Sentinel reconfigures the old primary as a replica when it answers again"),
    ]
    return Plan("redis", mode, refusals, actions, facts, at_risk)


# ---------------------------------------------------------------- the steps


def plan(rb: Runbook) -> Plan:
    """Preflight and the plan: what would be promoted, fenced and repointed, the data at risk;
    each refusal fails the run, and nothing after it is done."""
    datastore, mode = rb.parameters.get("datastore", "postgres"), rb.parameters.get("mode", "unplanned")
    made = _plan_postgres(rb, mode) if datastore == "postgres" else _plan_redis(rb, mode)
    rb.summary.update({"datastore": datastore, "mode": mode, "data_at_risk": made.at_risk})
    for reason in made.refusals:
        rb.fail(f"failover refused: {reason}")
    return made


@dataclass
class Outcome:
    done: bool
    note: str
    steps: dict[str, float] = field(default_factory=dict)
    write_unavailable_s: float | None = None
    data_lost_bytes: int | None = None
    new_primary: str = ""

    def table(self) -> Any:
        import pandas as pd

        return pd.DataFrame([{"step": s, "seconds": v} for s, v in self.steps.items()])


def fail_over(rb: Runbook, made: Plan) -> Outcome:
    """Promote, repoint, verify (live only, and only after a clean preflight)."""
    if not made.ok:
        return Outcome(False, "nothing done: the preflight refused")
    if rb.dry_run:
        return Outcome(False, "dry run: nothing promoted or repointed (dry_run=False to fail over)")
    started = time.monotonic()
    if made.datastore == "postgres":
        settings = _postgres_ha(rb)
        control = _control(rb)
        stop = (lambda: control.stop_datastore("postgres")) if control else None
        record = postgres_failover.switch(
            _postgres_endpoints(rb, settings),
            made.mode,
            stop_old_primary=stop,
            primary_died_at=started,
        )
        outcome = Outcome(
            True,
            "promoted",
            record.steps,
            record.write_unavailable_s,
            record.data_lost_bytes,
            record.new_primary,
        )
    else:
        outcome = _fail_over_redis(rb, started)
    rb.summary.update(
        {
            "new_primary": outcome.new_primary,
            "write_unavailable_s": outcome.write_unavailable_s,
            "data_lost_bytes": outcome.data_lost_bytes,
            "step_seconds": outcome.steps,
        }
    )
    return outcome


def _fail_over_redis(rb: Runbook, started: float) -> Outcome:
    settings = _redis_ha(rb)
    addresses = _sentinels(rb, settings)
    steps: dict[str, float] = {}
    mark = time.perf_counter()
    new = sentinel.failover(addresses, settings.service)
    steps["SENTINEL FAILOVER"] = round(time.perf_counter() - mark, 3)
    mark = time.perf_counter()
    deadline = time.monotonic() + 30
    while True:
        try:
            _redis_client(rb, new).set("vextrus:failover:probe", str(time.time()), ex=60)
            break
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    steps["a write on the new primary"] = round(time.perf_counter() - mark, 3)
    return Outcome(True, "failed over", steps, round(time.monotonic() - started, 3), None, new)


def rejoin(rb: Runbook, made: Plan, outcome: Outcome) -> str:
    """The old primary back as a replica of the new one: the driver's (pg_rewind), or Sentinel's."""
    if not outcome.done:
        return "nothing to rejoin"
    control = _control(rb)
    if made.datastore == "redis":
        if control is None:
            return "Sentinel reconfigures the old primary as a replica of the new one when it answers again"
        control.rejoin_as_replica("redis", _redis_ha(rb).replica)
        return f"the old primary replicates from {outcome.new_primary}"
    if control is None:
        raise RunRefused(
            f"the {rb.env.driver} driver cannot rejoin a node: on the old primary's host run "
            "pg_rewind --source-server='<new primary>' -D <data dir>, touch standby.signal, set "
            "primary_conninfo to the new primary, start it"
        )
    control.rejoin_as_replica("postgres", _postgres_ha(rb).replica)
    return f"the old primary streams from {outcome.new_primary}"
