"""What every driver answers: how a component is started, stopped and inspected.

One interface, three implementations (local: the sandbox's own processes;
compose: Docker; kube: Kubernetes). Runbooks ask the environment's driver and
never care which one it is. The inspection half (status, logs, events) is
read-only and is all triage uses.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from vextrus_nb.config import Environment

RunState = Literal["running", "stopped", "restarting", "unknown"]
# What the platform's own health machinery says (Docker healthcheck, Kubernetes readiness):
# healthy | starting (not yet) | unhealthy (failing) | stopped (not running) | absent (never created).
Health = Literal["healthy", "starting", "unhealthy", "stopped", "absent"]


@dataclass(frozen=True)
class HealthState:
    component: str
    health: Health
    detail: str = ""


@dataclass(frozen=True)
class ComponentState:
    """What the platform (not the component's own health endpoint) says about it."""

    component: str
    state: RunState
    restarts: int | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: datetime | None = None
    detail: str = ""


@dataclass(frozen=True)
class PlatformEvent:
    """One thing that happened to a component: Kubernetes events, Docker events, sandbox events."""

    at: datetime
    component: str
    kind: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class LogLine:
    at: datetime | None
    component: str
    text: str


class Driver(Protocol):
    name: str

    def status(self, components: list[str]) -> dict[str, ComponentState]:
        """The run state of each named component (read-only)."""
        ...

    def events(self, since: datetime) -> list[PlatformEvent]:
        """Events at or after `since`, oldest first (read-only)."""
        ...

    def logs(self, component: str, since: datetime, lines: int = 200) -> list[LogLine]:
        """The component's last `lines` log lines at or after `since` (read-only)."""
        ...

    def health(self, components: list[str]) -> dict[str, HealthState]:
        """Each component's health as the platform sees it (read-only)."""
        ...

    def start(self, components: list[str]) -> None:
        """Start exactly these components (not their dependencies); returns once asked, not once healthy."""
        ...

    def stop(self, components: list[str]) -> None: ...

    def restart(self, components: list[str]) -> None: ...


@runtime_checkable
class FailoverControl(Protocol):
    """What a failover needs from a driver beyond SQL and the pooler's console (optional: the
    ha/failover runbook asks `isinstance(driver, FailoverControl)` and says what to do by hand
    when the driver has not got it).

    stop_datastore: stop a database node cleanly (a planned switchover's old primary, so its last
    WAL reaches the replica before the replica is promoted). rejoin_as_replica: rewind a former
    primary onto the node now primary (pg_rewind) and start it as that node's replica."""

    def stop_datastore(self, component: str) -> None: ...

    def rejoin_as_replica(self, component: str, primary: str) -> None: ...


@runtime_checkable
class ScratchServers(Protocol):
    """A throwaway server of a datastore's protocol, to prove a restore into without touching the
    environment's own (optional: the sandbox's driver has it; elsewhere a scratch restore of that
    datastore says it needs one, or `target=live`).

    scratch_kafka: a context manager yielding a fresh broker's bootstrap address (host:port),
    stopped and deleted on exit."""

    def scratch_kafka(self) -> AbstractContextManager[str]: ...


@dataclass(frozen=True)
class ScratchPlatform:
    """A second, fresh platform of the environment's kind, started for a whole-platform restore
    drill: where it keeps everything (`root`), an Environment naming its own endpoints, logins and
    deployment files (what the smoke sweep and the checklist are run against), and a driver that
    starts and stops its components (Redis's RDB swap needs one)."""

    root: Path
    environment: Environment
    driver: Driver


class PostgresRecovery(Protocol):
    """PostgreSQL brought back whole into a second platform before its server first starts, as
    in a real recovery (a physical restore of the cluster: roles, passwords and all), instead of
    the fresh cluster a platform starts with.

    restore_into: put the restored data directory at `datadir` (which does not exist yet; its
    parent belongs to the server's account), set to recover and promote at its first start.
    proven: called once the platform's server has recovered and promoted, on `host`:`port`.
    The platform's other parts may start beside the restore (the sandbox starts its Redis,
    PgBouncer and services process while it runs), but nothing of the platform writes to the
    copy until `proven` returns (the sandbox's services process holds its heartbeat writes
    until then): what `proven` reads first is the recovery point as restored. Its own findings
    are its to keep (it raises only when the platform must not go on), and it may go on reading
    in the background, which its owner ends (the platform's start can still fail after it)."""

    def restore_into(self, datadir: Path) -> None: ...

    def proven(self, host: str, port: int) -> None: ...


@runtime_checkable
class ScratchPlatforms(Protocol):
    """A throwaway copy of the whole platform, empty of the environment's data (optional: the
    sandbox's driver can start a second sandbox; elsewhere dr/platform-drill says it needs one).
    A separate protocol from ScratchServers, so a driver may offer one without the other.

    scratch_platform: a context manager that starts the platform under `root` (its own directory
    and ports), yields it once every component answers, and stops and deletes it on exit, also
    when the body raised. With `postgres`, its PostgreSQL is that recovery rather than a fresh
    cluster, and its services take the environment's own credentials (those the secret store
    holds, which the restored roles have), as a real recovery's would."""

    def scratch_platform(
        self, root: Path, postgres: PostgresRecovery | None = None
    ) -> AbstractContextManager[ScratchPlatform]: ...
