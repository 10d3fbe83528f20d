"""The local driver: the sandbox's own processes (a PostgreSQL cluster, a
redis-server, and one process serving every other component).

Run state comes from the sandbox itself (is the cluster up, is the Redis pid
alive, is the component's port listening), events from its event log, logs
from each component's log file. Stopping a component is the sandbox's `down`
fault and starting it is healing that fault: that is what stop and start mean
for a process that serves 34 components at once.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vextrus_nb import paths
from vextrus_nb.config import Environment
from vextrus_nb.drivers.base import ComponentState, Health, HealthState, LogLine, PlatformEvent, RunState
from vextrus_nb.sandbox import events as sandbox_events
from vextrus_nb.sandbox import links, manager
from vextrus_nb.sandbox import scratch_platform as scratch_platforms
from vextrus_nb.sandbox.failover_control import SandboxFailoverControl
from vextrus_nb.sandbox.links import RemoteLink
from vextrus_nb.sandbox.service_app import LOGS_DIR
from vextrus_nb.sandbox_state import SandboxState

# The three timestamp shapes in the sandbox's logs: ours and NestJS's (ISO, UTC),
# PostgreSQL's default log_line_prefix '%m [%p] ', and redis-server's 'pid:X 22 Nov 2026 02:14:07.123'.
_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?)Z?\s")
_POSTGRES = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?) (UTC|GMT)\s")
_REDIS = re.compile(r"^\d+:[A-Z] (\d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2}(?:\.\d+)?)\s")


def parse_log_time(line: str) -> datetime | None:
    if match := _ISO.match(line):
        return datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC)
    if match := _POSTGRES.match(line):
        return datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC)
    if match := _REDIS.match(line):
        stamp = match.group(1)
        pattern = "%d %b %Y %H:%M:%S.%f" if "." in stamp else "%d %b %Y %H:%M:%S"
        return datetime.strptime(stamp, pattern).replace(tzinfo=UTC)
    return None


@dataclass
class LocalDriver(SandboxFailoverControl):
    """drivers.Driver; also the chaos runbook's LinkFaults (link), drivers.ScratchServers
    (scratch_kafka) and drivers.FailoverControl (stop_datastore, rejoin_as_replica: failover_control.py)."""

    root: Path
    name: str = "local"
    environment: Environment | None = None  # whose probe settings and logins health() uses
    # drivers.ScratchPlatforms: a second, fresh sandbox for dr/platform-drill (scratch_platform.py)
    scratch_platform = scratch_platforms.scratch_platform

    @classmethod
    def for_sandbox(cls, root: Path | None = None, environment: Environment | None = None) -> LocalDriver:
        return cls((root or paths.sandbox_dir()).resolve(), environment=environment)

    def beside(self, root: Path, environment: Environment) -> LocalDriver:
        """The driver of another sandbox under `root` (a second platform's), with its environment."""
        return type(self)(root, environment=environment)

    @classmethod
    def for_environment(cls, env: Environment) -> LocalDriver:
        """The `local` entry point of vextrus_nb.drivers (pyproject.toml)."""
        return cls.for_sandbox(environment=env)

    # -- inspection (read-only) ---------------------------------------------------
    def status(self, components: list[str]) -> dict[str, ComponentState]:
        report = manager.status(self.root)
        history = sandbox_events.read(self.root)
        states = {}
        for name in components:
            row = report["components"].get(name) or report["ha"].get(name)
            restarts, started_at = _restarts_and_start(name, history)
            state: RunState
            if row is None:
                state, detail = "unknown", "not served by the sandbox"
            elif row["running"]:
                state, detail = "running", f"listening on port {row['port']}"
            else:
                state, detail = "stopped", f"nothing listening on port {row['port']}"
            states[name] = ComponentState(
                component=name, state=state, restarts=restarts, started_at=started_at, detail=detail
            )
        return states

    def events(self, since: datetime) -> list[PlatformEvent]:
        return [
            PlatformEvent(e["at"], e["component"], e["kind"], e["reason"], e["message"])
            for e in sandbox_events.read(self.root, since)
        ]

    def logs(self, component: str, since: datetime, lines: int = 200) -> list[LogLine]:
        path = self.log_file(component)
        if path is None or not path.is_file():
            return []
        result: list[LogLine] = []
        current: datetime | None = None
        for text in _tail_lines(path, lines * 4):
            current = parse_log_time(text) or current  # a continuation line belongs to the one before
            if current is None or current >= since:
                result.append(LogLine(current, component, text))
        return result[-lines:]

    def log_file(self, component: str) -> Path | None:
        if component == "postgres":
            state = SandboxState.load(self.root)
            return Path(state.pg_datadir).parent / "postgres.log" if state.pg_datadir else None
        if component == "redis":
            return manager.redis_log(SandboxState.load(self.root))
        return self.root / LOGS_DIR / f"{component}.log"

    def health(self, components: list[str]) -> dict[str, HealthState]:
        """The sandbox has no health machinery of its own: its components' own health
        endpoints (and PostgreSQL/Redis logins) are asked, as a readiness probe would."""
        from vextrus_nb.asyncio_bridge import run_sync
        from vextrus_nb.config import load_environment, load_inventory
        from vextrus_nb.probe_targets import probe_targets
        from vextrus_nb.probes import run_probes

        inventory = load_inventory()
        env = self.environment or load_environment("sandbox", inventory)
        running = self.status(components)
        wanted = [inventory.get(n) for n in components if running[n].state == "running"]
        results = run_sync(run_probes(probe_targets(env, inventory, wanted), timeout=env.probe.timeout_s))
        states = {n: HealthState(n, "stopped", running[n].detail) for n in components}
        for result in results:
            health: Health = "unhealthy" if result.status == "down" else "healthy"
            states[result.component] = HealthState(result.component, health, result.detail)
        return states

    # -- control ----------------------------------------------------------------------
    def stop(self, components: list[str]) -> None:
        if components:
            manager.fault_many(components, "down", root=self.root)

    def start(self, components: list[str]) -> None:
        if components:
            manager.heal_many(components, root=self.root)

    def restart(self, components: list[str]) -> None:
        self.stop(components)
        self.start(components)

    def link(self, dependency: str) -> RemoteLink | None:
        """The chaos runbook's LinkFaults: the fault proxy in the services' path to `dependency`
        (links.py), or None where there is none (Kafka, a simulated component)."""
        control_port = SandboxState.load(self.root).control_port
        described = links.links_of(control_port).get(dependency)
        if described is None:
            return None
        return RemoteLink(dependency, int(described["port"]), control_port)

    @contextlib.contextmanager
    def scratch_kafka(self) -> Iterator[str]:
        """drivers.ScratchServers: a fresh Tansu (the sandbox's Kafka-protocol broker) on a free
        loopback port, for a restore's proof."""
        from vextrus_nb.sandbox import real_servers

        with (
            tempfile.TemporaryDirectory(prefix="vextrus-kafka-scratch-") as folder,
            real_servers.running("kafka", Path(folder)) as server,
        ):
            yield f"{real_servers.LOOPBACK}:{server.port}"


def _restarts_and_start(name: str, history: list[dict]) -> tuple[int, datetime | None]:
    """How often the component came back after being stopped, and when it last started."""
    restarts, stopped, started_at = 0, False, None
    for event in history:
        if event["component"] != name:
            continue
        if event["reason"] == "Stopped":
            stopped = True
        elif event["reason"] == "Started" or (event["reason"] == "Healed" and stopped):
            restarts += event["reason"] == "Healed"
            stopped, started_at = False, event["at"]
    return restarts, started_at


def _tail_lines(path: Path, count: int, chunk: int = 64 * 1024) -> list[str]:
    """The last `count` lines, reading only the end of a large file."""
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - chunk * max(1, count // 200)))
        data = handle.read()
    text = data.decode(errors="replace").splitlines()
    return text[-count:] if size <= len(data) else text[1:][-count:]
