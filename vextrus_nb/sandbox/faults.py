"""Which faults each kind of sandbox component can take, and what they mean.

- down:      the component stops listening (connections are refused); a real server
             (PostgreSQL, Redis, Kafka, ZooKeeper, ... see real_platform.py) is stopped.
- unhealthy: it answers, but its health endpoints report failure (503 / red).
- slow:      every answer is delayed by `delay_s` (default 5 s, beyond the
             default probe timeout of 2 s).
- live-deps: (services only) /health/live also checks the datastores, the
             misconfiguration that makes Kubernetes restart every pod when the
             database blips. Everything still answers 200.
- killed:    (the PostgreSQL and Redis primaries) kill -9: the machine died, nothing
             flushed; heal starts it again (PostgreSQL's crash recovery).
- lagging:   (postgres-replica) replay paused (pg_wal_replay_pause()): WAL arrives and
             piles up unapplied; heal resumes it.
- partitioned: (a Sentinel) SIGSTOP: it holds its connections and answers nothing, as
             behind a network partition; heal sends SIGCONT.
The HA topology's parts (postgres-replica, pgbouncer, redis-replica, sentinel-1..3) are not
inventory components; HA_MODES says what each takes.
"""

from __future__ import annotations

from vextrus_nb.config import Component

SERVICE_MODES = ("down", "unhealthy", "slow", "live-deps")
MODES = (*SERVICE_MODES, "killed", "lagging", "partitioned")
DEFAULT_SLOW_DELAY_S = 5.0
REAL_DATASTORES = ("postgres", "redis")
CONTROL_STORE = "control"
"""The sandbox's control store (`sandbox up --control`): only `down`, the whole store at once."""

HA_MODES: dict[str, tuple[str, ...]] = {
    "postgres-replica": ("down", "lagging"),
    "pgbouncer": ("down",),
    "redis-replica": ("down",),
    "sentinel-1": ("down", "partitioned"),
    "sentinel-2": ("down", "partitioned"),
    "sentinel-3": ("down", "partitioned"),
}


def supported_modes(component: Component) -> tuple[str, ...]:
    from vextrus_nb.sandbox.real_platform import REAL_COMPONENTS, SERVED_BY

    if component.name in SERVED_BY and component.name not in REAL_COMPONENTS:
        return ()  # another server's port (temporal-ui is the Temporal dev server's UI)
    if component.name in REAL_DATASTORES:
        return ("down", "killed")
    if component.name in REAL_COMPONENTS or component.probe == "tcp":
        # A real server or a bare TCP listener has no health endpoint to turn red.
        return ("down",)
    if component.kind != "service":
        return ("down", "unhealthy", "slow")
    return SERVICE_MODES
