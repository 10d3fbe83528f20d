"""A standalone HA topology on real servers, for the tests and the failover bench: a PostgreSQL
primary with a streaming replica behind PgBouncer, and a Redis primary with a replica and three
Sentinels (ha_servers.py starts each). Context managers: whoever uses one owns a fresh one."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis

from vextrus_nb.errors import SandboxError
from vextrus_nb.ha import postgres
from vextrus_nb.pg_conninfo import conninfo
from vextrus_nb.ports import free_ports
from vextrus_nb.postgres_binaries import find_bindir
from vextrus_nb.sandbox import ha_servers, supervisor
from vextrus_nb.sandbox.ha_servers import PgNode
from vextrus_nb.sandbox.real_servers import LOOPBACK, RealServer
from vextrus_nb.sandbox.redis_server import find_redis_server
from vextrus_nb.sandbox_state import SandboxState

SUPERUSER = "vextrus_admin"


@dataclass
class PgPair:
    primary: PgNode
    replica: PgNode
    pooler: RealServer
    password: str

    @property
    def pooled_dsn(self) -> str:
        return conninfo(LOOPBACK, self.pooler.port, SUPERUSER, self.password)

    @property
    def console_dsn(self) -> str:
        return self.pooled_dsn

    @property
    def config(self) -> Path:
        return Path(self.pooler.extra["config"])


@contextlib.contextmanager
def pg_pair() -> Iterator[PgPair]:
    # Not under pytest's own directory: it is private to root, and PostgreSQL runs as its account.
    home = Path(tempfile.mkdtemp(prefix="vextrus-ha-"))
    password = secrets.token_hex(12)
    primary_port, replica_port, pooler_port = free_ports(3)
    primary = replica = pooler = None
    try:
        primary = ha_servers.init_primary(home, find_bindir(), primary_port, SUPERUSER, password)
        with psycopg.connect(primary.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE heartbeat (id serial PRIMARY KEY, at timestamptz DEFAULT now())")
        replica = ha_servers.clone_replica(primary, home, "replica", replica_port)
        pooler = ha_servers.start_pgbouncer(
            home / "pgbouncer", pooler_port, primary_port, {SUPERUSER: password}, SUPERUSER
        )
        yield PgPair(primary, replica, pooler, password)
    finally:
        if pooler:
            pooler.stop()
        for node in (replica, primary):
            if node:
                node.stop()
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class RedisSet:
    primary: RealServer
    replica: RealServer
    sentinels: list[RealServer]
    password: str

    @property
    def primary_port(self) -> int:
        return self.primary.port

    @property
    def addresses(self) -> list[str]:
        return [f"{LOOPBACK}:{s.port}" for s in self.sentinels]


@contextlib.contextmanager
def redis_set(home: Path) -> Iterator[RedisSet]:
    password = secrets.token_hex(12)
    primary_port, replica_port, *sentinel_ports = free_ports(5)
    config = home / "primary.conf"
    config.write_text(
        f'port {primary_port}\nbind {LOOPBACK}\ndir {home}\nsave ""\n'
        f"requirepass {password}\nmasterauth {password}\n"
    )
    config.chmod(0o600)
    primary_process = supervisor.start_ready(
        "redis-primary",
        [find_redis_server(), str(config)],
        home,
        probe=lambda: redis.Redis(port=primary_port, password=password).ping(),
        timeout=10,
    )
    servers: list[RealServer] = [RealServer("redis-primary", [primary_process], {"main": primary_port}, home)]
    try:
        replica = ha_servers.start_redis_replica(home / "replica", replica_port, primary_port, password)
        servers.append(replica)
        sentinels = ha_servers.start_sentinels(home, sentinel_ports, primary_port, password)
        servers += sentinels
        ha_servers.wait_for_sentinels_to_see_replicas(sentinel_ports, 1)
        yield RedisSet(servers[0], replica, sentinels, password)
    finally:
        for server in reversed(servers):
            server.stop()


# ---------------------------------------------------------------- the sandbox's own topology
#
# Around the sandbox's primaries (manager.py starts them): PgBouncer in front of PostgreSQL and
# three Sentinels watching Redis, always (the plumbing every service goes through); the second
# instances, a streaming replica of PostgreSQL (its own slot) and a Redis replica, with the
# hardened deployment variant only. The planted variant is the reference documents' critical
# gap 3 as found: single-instance databases, so the HA checks fail there, naming the replicas.
# Everything is a daemon (pg_ctl, pgbouncer -d, daemonize yes) that outlives `sandbox up`;
# state.extra["ha"] records where each one's files are.

SENTINEL_DOWN_AFTER_MS = 30_000
"""Sentinel's own default: on the sandbox the failover runbook fails Redis over, not Sentinel
behind its back while the runbook starts (the bench measures Sentinel's automatic one)."""
SENTINEL_FAILOVER_TIMEOUT_MS = 10_000
NODE_NAMES = ("pg-a", "pg-b")
"""The two PostgreSQL nodes' names (slots, application names): neutral, as each takes turns."""
REWIND_SETTINGS = ("wal_log_hints = on", "full_page_writes = on", "wal_keep_size = 256MB", "hot_standby = on")
"""In postgresql.conf, not only on pg_ctl's command line: pg_rewind's crash recovery of a killed
primary starts the server with the file alone, and pg_rewind refuses one without hint logging."""
POSTGRES_PARTS = ("postgres-replica", "pgbouncer")
REDIS_PARTS = ("redis-replica", "sentinel-1", "sentinel-2", "sentinel-3")
SENTINELS = REDIS_PARTS[1:]
REPLICAS = ("postgres-replica", "redis-replica")
START_TIMEOUT_S = 30.0
STREAM_TIMEOUT_S = 90.0  # a fresh clone catching up on a loaded machine: the wait is a condition
POOLER_LOGIN_RETRY_S = 0.25
POOLER_POOL_SIZE = 2
"""Server connections per service (its database and role): each service checks one query at a
time. Seventeen services' pools, and as many auth_query pools, then stay far below the sandbox
PostgreSQL's 200 connections (at PgBouncer's default 20 they would not: INF-PG-CONNECTIONS)."""

StartNode = Callable[[PgNode], None]


def ha_record(state: SandboxState) -> dict[str, Any]:
    return state.extra.setdefault("ha", {})


def port_of(state: SandboxState, name: str) -> int:
    """A part's port: in state.ports while it is deployed (what the environment's endpoints,
    and so the checks, triage and the failover, see); a replica the planted variant does not
    run keeps its port here, with no address in the state."""
    return state.ports.get(name) or ha_record(state)["withdrawn_ports"][name]


def publish_replicas(state: SandboxState, deployed: bool) -> None:
    """The replicas' addresses in the state (hardened) or withdrawn from it (planted): an
    environment gives a part it does not run no address."""
    withdrawn = ha_record(state).setdefault("withdrawn_ports", {})
    for name in REPLICAS:
        if deployed and name in withdrawn:
            state.ports[name] = withdrawn.pop(name)
        elif not deployed and name in state.ports:
            withdrawn[name] = state.ports.pop(name)


def prepare_sandbox_primary(datadir: Path) -> None:
    with open(datadir / "postgresql.conf", "a") as conf:
        conf.write("\n# vextrus sandbox: high availability (pg_rewind)\n" + "\n".join(REWIND_SETTINGS) + "\n")


def sandbox_nodes(state: SandboxState, superuser: str) -> tuple[PgNode, PgNode]:
    """(the primary, the replica) as they stand now: the state's `postgres` names the primary."""
    record = ha_record(state)
    password = state.secret("postgres_password")
    bindir = Path(state.pg_bindir)
    primary = PgNode(
        record["primary_node"], bindir, Path(state.pg_datadir), state.ports["postgres"], superuser, password
    )
    replica = PgNode(
        record["replica_node"],
        bindir,
        Path(record["replica_datadir"]),
        port_of(state, "postgres-replica"),
        superuser,
        password,
    )
    return primary, replica


def redis_home(state: SandboxState) -> Path:
    """The Redis servers' private directory (manager.py makes it): the primary's files, the
    replica's and the Sentinels' (which hold the password, as Redis requires)."""
    return Path(ha_record(state).get("redis_home", state.root))


def _sentinel_dir(state: SandboxState, name: str) -> Path:
    return redis_home(state) / name


def _redis_replica_dir(state: SandboxState) -> Path:
    return redis_home(state) / "redis-replica"


def pooler_config(state: SandboxState) -> Path:
    """PgBouncer's ini, in the PostgreSQL account's own directory when we are root (it re-reads
    the file at RELOAD after dropping to that account); the environment names it through the
    link at <sandbox>/ha/pgbouncer.ini."""
    return Path(ha_record(state)["pooler_config"])


def start_sandbox_plumbing(state: SandboxState, superuser: str) -> None:
    """PgBouncer in front of the primary (auth_query as the superuser, so a rotated service
    password needs nothing of the pooler); the Sentinels come later (start_sandbox_sentinels)."""
    record = ha_record(state)
    pg_home = Path(state.pg_datadir).parent
    primary_name, replica_name = NODE_NAMES
    record.update(
        pg_home=str(pg_home),
        primary_node=primary_name,
        replica_node=replica_name,
        replica_datadir=str(pg_home / replica_name / "data"),
        replicas=False,
    )
    password = state.secret("postgres_password")
    config = ha_servers.write_pgbouncer_config(
        pg_home / "pgbouncer",
        state.ports["pgbouncer"],
        state.ports["postgres"],
        {superuser: password},
        superuser,
        auth_user=superuser,
        daemon=True,
        # A restarted PostgreSQL is reached within a quarter second, not PgBouncer's next 1 s try:
        # a heal returns to a pooler already serving.
        login_retry_s=POOLER_LOGIN_RETRY_S,
        pool_size=POOLER_POOL_SIZE,
    )
    record["pooler_config"] = str(config)
    link = state.root / "ha" / "pgbouncer.ini"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    link.symlink_to(config)
    ha_servers.start_pgbouncer_daemon(config, state.ports["pgbouncer"], START_TIMEOUT_S)


def start_sandbox_sentinels(state: SandboxState) -> None:
    """The three Sentinels. Started once the services listen: they open a dozen connections to
    Redis and to each other at once, each from an ephemeral port, which could take one of the
    ports the sandbox has chosen for its components but not yet bound."""
    for name in SENTINELS:
        start_part(state, name)


def start_part(state: SandboxState, name: str) -> None:
    """(Re)start one of PgBouncer, the Sentinels or the Redis replica from its files."""
    password = state.secret("redis_password")
    port = port_of(state, name)
    if name == "pgbouncer":
        ha_servers.start_pgbouncer_daemon(pooler_config(state), port, START_TIMEOUT_S)
    elif name in SENTINELS:
        directory = _sentinel_dir(state, name)
        config = directory / "sentinel.conf"
        if not config.exists():  # once: afterwards the Sentinel's own rewritten file is the truth
            config = ha_servers.write_sentinel_config(
                directory, port, state.ports["redis"], password, len(SENTINELS) // 2 + 1,
                SENTINEL_DOWN_AFTER_MS, SENTINEL_FAILOVER_TIMEOUT_MS, daemon=True,
                known_replicas=(port_of(state, "redis-replica"),),
            )  # fmt: skip
        ha_servers.start_daemon(
            name, [find_redis_server(), str(config), "--sentinel"], directory / "sentinel.pid",
            lambda: redis.Redis(host=LOOPBACK, port=port, socket_timeout=1).ping(), START_TIMEOUT_S,
        )  # fmt: skip
    elif name == "redis-replica":
        directory = _redis_replica_dir(state)
        config = Path(ha_record(state).get("redis_conf", {}).get(name, directory / "redis-replica.conf"))
        if not config.exists():
            config = ha_servers.write_redis_replica_config(
                directory,
                port,
                state.ports["redis"],
                password,
                aclfile=redis_home(state) / "users.acl",
                daemon=True,
            )
        primary_conf = redis_home(state) / "redis.conf"
        ha_record(state).setdefault("redis_conf", {"redis": str(primary_conf)})[name] = str(config)
        ha_servers.start_daemon(
            name, [find_redis_server(), str(config)], pidfile_of(state, name),
            lambda: redis.Redis(host=LOOPBACK, port=port, password=password, socket_timeout=1).ping(),
            START_TIMEOUT_S,
        )  # fmt: skip
    else:
        raise ValueError(f"not a daemon of the HA topology: {name}")


def pidfile_of(state: SandboxState, name: str) -> Path:
    if name == "pgbouncer":
        return pooler_config(state).parent / "pgbouncer.pid"
    if name in SENTINELS:
        return _sentinel_dir(state, name) / "sentinel.pid"
    if name == "redis-replica":
        # The replica's file names its pidfile: after a failover it is the old primary's.
        conf = Path(ha_record(state)["redis_conf"][name])
        for line in conf.read_text().splitlines():
            if line.startswith("pidfile "):
                return Path(line.split(None, 1)[1].strip().strip('"'))
        return conf.parent / "redis.pid"
    raise ValueError(f"no pidfile for {name}")


def part_pid(state: SandboxState, name: str) -> int | None:
    if name == "redis-replica" and "redis_conf" not in ha_record(state):
        return None
    return ha_servers.read_pid(pidfile_of(state, name))


def stop_part(state: SandboxState, name: str) -> None:
    ha_servers.stop_daemon(part_pid(state, name))


def wait_for_sentinels(state: SandboxState, replicas: int, timeout: float = 30.0) -> None:
    """Until every Sentinel knows the other two (a quorum is counted among them) and, with
    `replicas`, sees that many replicas up and linked to the primary (a failover's candidates).
    They know the replica's address from their files; they find each other through the primary."""
    ports = [state.ports[name] for name in SENTINELS]

    def ready() -> bool:
        for port in ports:
            client = redis.Redis(host=LOOPBACK, port=port, socket_timeout=1)
            # Raw replies: redis-py 5's parsers for SENTINEL REPLICAS/SENTINELS reject its own arguments.
            if (
                len(client.execute_command("SENTINEL", "SENTINELS", ha_servers.SENTINEL_SERVICE))
                < len(ports) - 1
            ):
                return False
            seen = client.execute_command("SENTINEL", "REPLICAS", ha_servers.SENTINEL_SERVICE)
            if sum(_replica_up(entry) for entry in seen) < replicas:
                return False
        return True

    _wait_until(ready, "the Sentinels to know each other" + (" and the replica" if replicas else ""), timeout)


def _replica_up(entry: list[Any]) -> bool:
    """One SENTINEL REPLICAS entry (a flat name/value list): watched, up, linked to its primary."""
    fields = [part.decode() if isinstance(part, bytes) else str(part) for part in entry]
    info = dict(zip(fields[::2], fields[1::2], strict=False))
    return info.get("flags") == "slave" and info.get("master-link-status") == "ok"


def start_sandbox_replicas(state: SandboxState, superuser: str, start_node: StartNode) -> None:
    """The hardened variant's second instances: PostgreSQL's replica (cloned once, with its slot;
    restarted from its own data directory, its slot made again, after a planted spell) and the
    Redis replica; returns once both stream and the Sentinels know the Redis replica."""
    primary, replica = sandbox_nodes(state, superuser)
    if not (replica.datadir / "PG_VERSION").exists():
        shutil.rmtree(replica.datadir.parent, ignore_errors=True)
        ha_servers.clone_replica(
            primary, replica.datadir.parent.parent, replica.name, replica.port, start_node
        )
    else:
        with psycopg.connect(primary.dsn, autocommit=True, connect_timeout=5) as conn:
            slot = ha_servers.slot_name(replica.name)
            if not conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone():
                conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
        if not replica.running():
            start_node(replica)
    ha_record(state)["replicas"] = True
    publish_replicas(state, deployed=True)
    if part_pid(state, "redis-replica") is None or not supervisor.port_open(port_of(state, "redis-replica")):
        start_part(state, "redis-replica")
    password = state.secret("redis_password")
    _wait_until(
        lambda: ha_servers.redis_replica_synced(port_of(state, "redis-replica"), password),
        "the Redis replica to sync",
    )
    _wait_until(lambda: _streaming(primary), "the PostgreSQL replica to stream", STREAM_TIMEOUT_S)
    wait_for_sentinels(state, replicas=1)


def _streaming(primary: PgNode) -> bool:
    with psycopg.connect(primary.dsn, connect_timeout=2) as conn:
        return (
            conn.execute("SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'").fetchone() is not None
        )


def _wait_until(condition: Callable[[], object], what: str, timeout: float = START_TIMEOUT_S) -> None:
    met, last = supervisor.wait_for(condition, timeout)
    if not met:
        raise SandboxError(
            f"timed out after {timeout:g} s waiting for {what}" + (f" ({last})" if last else "")
        )


def stop_sandbox_replicas(state: SandboxState, superuser: str) -> None:
    """Back to single instances (the planted variant): both replicas stopped, the PostgreSQL
    replica's slot dropped so it holds no WAL meanwhile, and its data directory deleted: without
    the slot the primary recycles the WAL a restarted copy would need, and such a copy never
    streams again (seen in a full test run after a long planted spell), so the next hardened
    start clones afresh."""
    primary, replica = sandbox_nodes(state, superuser)
    replica.stop()
    slot = ha_servers.slot_name(replica.name)

    def dropped() -> bool:  # once its walsender has gone: an active slot cannot be dropped
        with psycopg.connect(primary.dsn, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            if row is None:
                return True
            if not row[0]:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            return False

    _wait_until(dropped, f"the slot {slot} to be dropped")
    shutil.rmtree(replica.datadir, ignore_errors=True)
    stop_part(state, "redis-replica")
    ha_record(state)["replicas"] = False
    publish_replicas(state, deployed=False)


def stop_sandbox_ha(state: SandboxState, superuser: str) -> None:
    """Everything of the topology (the sandbox is going away); what was never started is skipped."""
    if "primary_node" not in ha_record(state):
        return
    for name in (*REDIS_PARTS, "pgbouncer"):
        with contextlib.suppress(OSError, KeyError, SandboxError):
            stop_part(state, name)
    _, replica = sandbox_nodes(state, superuser)
    with contextlib.suppress(SandboxError):
        replica.stop()


def part_running(state: SandboxState, name: str, superuser: str) -> bool:
    if name == "postgres-replica":
        return sandbox_nodes(state, superuser)[1].running()
    pid = part_pid(state, name)
    return bool(pid) and supervisor.port_open(port_of(state, name))


# ---------------------------------------------------------------- faults (sandbox/faults.py)


def break_part(state: SandboxState, name: str, mode: str, superuser: str) -> None:
    """One HA part made `mode` (faults.HA_MODES): stopped, its replay paused, or SIGSTOPped."""
    if name in REPLICAS and not ha_record(state).get("replicas"):
        raise SandboxError(
            f"{name} does not run in the planted deployment variant (single instances: critical gap 3); "
            "`vextrus-nb sandbox deployment hardened` starts it"
        )
    if name == "postgres-replica":
        _, replica = sandbox_nodes(state, superuser)
        if mode == "lagging":
            postgres.set_replay_paused(replica.dsn, True)
        else:
            replica.stop()
    elif mode == "partitioned":
        pid = part_pid(state, name)
        if pid is None:
            raise SandboxError(f"{name} is not running: nothing to partition")
        os.kill(pid, signal.SIGSTOP)
    else:
        stop_part(state, name)


def mend_part(state: SandboxState, name: str, mode: str, superuser: str, start_node: StartNode) -> None:
    """Undo break_part: started again, replay resumed, SIGCONT."""
    if name == "postgres-replica":
        _, replica = sandbox_nodes(state, superuser)
        if not replica.running():
            start_node(replica)
        if mode == "lagging":
            postgres.set_replay_paused(replica.dsn, False)
    elif mode == "partitioned":
        if pid := part_pid(state, name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    elif not part_running(state, name, superuser):
        start_part(state, name)


def kill_primary(state: SandboxState, superuser: str) -> None:
    """kill -9 the PostgreSQL primary's postmaster and backends (the fault `postgres killed`)."""
    sandbox_nodes(state, superuser)[0].kill_hard()


def wait_for_pooler(state: SandboxState, superuser: str, timeout: float = START_TIMEOUT_S) -> None:
    """Until a query through PgBouncer reaches the primary (after a heal restarted it)."""
    password = state.secret("postgres_password")
    dsn = conninfo(LOOPBACK, state.ports["pgbouncer"], superuser, password)

    def serves() -> bool:
        with psycopg.connect(dsn, connect_timeout=2, prepare_threshold=None) as conn:
            return conn.execute("SELECT 1").fetchone() is not None

    _wait_until(serves, "PgBouncer to reach PostgreSQL", timeout)
