"""The sandbox driver's half of a failover (drivers.FailoverControl): what SQL, PgBouncer's
console and Sentinel cannot do themselves. Stop a PostgreSQL node cleanly (a planned
switchover's old primary), and rejoin a former primary as the replica of the node now primary:
PostgreSQL's rewound with pg_rewind, Redis's repointed with REPLICAOF.

A rejoin ends with the state's names following the roles: `postgres` (and `redis`) then name
the new primary, `postgres-replica` (`redis-replica`) the rejoined node, so everything that
reads the state (the checks, the backups, the next failover, a heal) reaches the right server."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, cast

import psycopg
import redis

from vextrus_nb.backup import pgbackrest
from vextrus_nb.errors import SandboxError
from vextrus_nb.sandbox import events, ha_servers, ha_topology, manager, redis_server, supervisor
from vextrus_nb.sandbox.real_servers import LOOPBACK
from vextrus_nb.sandbox_state import SandboxState, read_faults, write_faults

REJOIN_TIMEOUT_S = 60.0
DATASTORES = {"postgres": "postgres-replica", "redis": "redis-replica"}


class SandboxFailoverControl:
    """Mixed into LocalDriver: `root` is the sandbox's directory."""

    root: Path

    def stop_datastore(self, component: str) -> None:
        """Stop the PostgreSQL primary cleanly (pg_ctl -m fast: its shutdown checkpoint reaches
        the replica). Recorded as the fault `down`, so a heal restarts it if no rejoin follows."""
        if component != "postgres":
            raise SandboxError(f"the sandbox stops only PostgreSQL's primary for a failover, not {component}")
        with manager.locked(self.root):
            state = SandboxState.load(self.root)
            manager.cluster(state).stop()
            faults = read_faults(self.root)
            faults["postgres"] = {"mode": "down", "by": "ha/failover (planned switchover)"}
            write_faults(self.root, faults)
        events.record(
            self.root, "postgres", "Stopped", "stopped cleanly for a planned switchover", kind="Warning"
        )

    def rejoin_as_replica(self, component: str, primary: str) -> None:
        if DATASTORES.get(component) != primary:
            raise SandboxError(
                f"the sandbox rejoins postgres onto postgres-replica or redis onto redis-replica, "
                f"not {component} onto {primary}"
            )
        with manager.locked(self.root):
            state = SandboxState.load(self.root)
            if component == "postgres":
                _rejoin_postgres(state)
            else:
                _rejoin_redis(state)
            faults = read_faults(self.root)
            faults.pop(component, None)  # the name now means the new primary, which is healthy
            write_faults(self.root, faults)
        events.record(
            self.root,
            component,
            "FailedOver",
            f"{component} is now the server on port {state.ports[component]}; the former primary "
            f"rejoined as {primary} on port {state.ports[primary]}",
        )


def _rejoin_postgres(state: SandboxState) -> None:
    old, new = ha_topology.sandbox_nodes(state, manager.ADMIN_USER)
    if new.in_recovery():
        raise SandboxError(f"{new.name} on port {new.port} is still a replica: promote it first")
    ha_servers.rejoin_as_replica(old, new, manager.start_node(state))
    record = ha_topology.ha_record(state)
    state.ports["postgres"], state.ports["postgres-replica"] = new.port, old.port
    state.pg_datadir, record["replica_datadir"] = str(new.datadir), str(old.datadir)
    record["primary_node"], record["replica_node"] = new.name, old.name
    state.save()
    # pgBackRest's configuration names the primary's data directory and port.
    if state.extra.get("pgbackrest"):
        pgbackrest.write_config(manager.stanza(state))
    _wait(lambda: _streams_from(new, old.name), f"{old.name} to stream from {new.name}")


def _streams_from(primary: ha_servers.PgNode, application_name: str) -> bool:
    with psycopg.connect(primary.dsn, connect_timeout=2) as conn:
        row = conn.execute(
            "SELECT 1 FROM pg_stat_replication WHERE application_name = %s AND state = 'streaming'",
            (application_name,),
        ).fetchone()
    return row is not None


def _rejoin_redis(state: SandboxState) -> None:
    """The former primary started again if it is down, and made a replica of the one the
    Sentinels promoted (what Sentinel itself does when it next sees it: at once, not at
    its next 10 s round); then the new primary reloads the shared ACL file, whose later
    rotations a replica never saw (ACL changes are not replicated)."""
    password = state.secret("redis_password")
    old_port, new_port = state.ports["redis"], state.ports["redis-replica"]
    record = ha_topology.ha_record(state)
    new = redis.Redis(host=LOOPBACK, port=new_port, password=password, socket_timeout=2)
    replication = cast(dict[str, Any], new.info("replication"))  # sync client: a dict, never an Awaitable
    if replication.get("role") != "master":
        raise SandboxError(f"the Redis replica on port {new_port} is not a primary: fail over first")
    if not supervisor.port_open(old_port):
        state.redis_pid = redis_server.start(manager.redis_conf(state), old_port, password)
    old = redis.Redis(host=LOOPBACK, port=old_port, password=password, socket_timeout=2)
    old.replicaof(LOOPBACK, new_port)
    with contextlib.suppress(redis.ResponseError):
        old.config_rewrite()
    _wait(lambda: ha_servers.redis_replica_synced(old_port, password), f"Redis on {old_port} to sync")
    new.execute_command("ACL", "LOAD")
    replica_pid = ha_topology.part_pid(state, "redis-replica")
    conf = record["redis_conf"]
    conf["redis"], conf["redis-replica"] = conf["redis-replica"], conf["redis"]
    state.ports["redis"], state.ports["redis-replica"] = new_port, old_port
    state.redis_pid = replica_pid
    state.save()


def _wait(condition: object, what: str) -> None:
    met, last = supervisor.wait_for(condition, REJOIN_TIMEOUT_S)  # type: ignore[arg-type]
    if not met:
        raise SandboxError(
            f"timed out after {REJOIN_TIMEOUT_S:g} s waiting for {what}" + (f" ({last})" if last else "")
        )
