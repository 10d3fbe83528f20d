"""The compose driver: a docker-compose deployment on a real Docker engine.

Inspection goes through the Docker SDK (containers of the compose project, by
its labels): run state, Docker's own healthcheck status, restart counts, exit
codes, OOM kills, events and logs. Starting and stopping goes through the
compose CLI, so the compose file stays the single source of truth: v2
(`docker compose`) where the plugin is installed, else v1 (`docker-compose`).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from vextrus_nb.config import Environment
from vextrus_nb.drivers.base import (
    ComponentState,
    HealthState,
    LogLine,
    PlatformEvent,
    RunState,
)
from vextrus_nb.errors import DriverError, DriverUnavailable, first_line

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
CLI_TIMEOUT_S = 600
# Docker events that mean something went wrong, as Kubernetes would call them Warning.
_WARNING_ACTIONS = ("die", "oom", "kill", "health_status: unhealthy")


def compose_command() -> list[str]:
    """`docker compose` (v2) where the plugin answers, else `docker-compose` (v1)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if legacy := shutil.which("docker-compose"):
        return [legacy]
    raise DriverUnavailable("neither `docker compose` (v2) nor `docker-compose` (v1) is installed")


@dataclass
class ComposeDriver:
    compose_file: Path
    project: str
    name: str = "compose"
    client: Any = field(default=None, repr=False)

    @classmethod
    def for_environment(cls, env: Environment) -> ComposeDriver:
        compose_file = env.deployment_files().get("compose_file")
        if compose_file is None:
            raise DriverUnavailable(f"environment '{env.name}' names no deployment.compose_file")
        if not compose_file.is_file():
            raise DriverUnavailable(f"the compose file {compose_file} does not exist")
        try:
            import docker

            client = docker.from_env(timeout=30)
            client.ping()
        except Exception as exc:
            raise DriverUnavailable(f"cannot reach the Docker engine: {first_line(exc)}") from None
        project = env.deployment.get("compose_project") or compose_file.parent.name
        return cls(compose_file, project, client=client)

    # -- inspection (read-only) ----------------------------------------------------
    def containers(self) -> dict[str, Any]:
        """The project's containers by compose service; the newest when there are several."""
        found: dict[str, Any] = {}
        listed = self.client.containers.list(all=True, filters={"label": f"{PROJECT_LABEL}={self.project}"})
        for container in sorted(listed, key=lambda c: c.attrs.get("Created", "")):
            found[container.labels.get(SERVICE_LABEL, container.name)] = container
        return found

    def status(self, components: list[str]) -> dict[str, ComponentState]:
        containers = self.containers()
        states = {}
        for name in components:
            container = containers.get(name)
            if container is None:
                states[name] = ComponentState(name, "stopped", detail="no container")
                continue
            run = container.attrs["State"]
            state: RunState = (
                "restarting" if run.get("Restarting") else "running" if run.get("Running") else "stopped"
            )
            detail = run.get("Status", "")
            if state == "stopped":
                detail = f"{detail}, exit code {run.get('ExitCode')}"
            states[name] = ComponentState(
                component=name,
                state=state,
                restarts=int(container.attrs.get("RestartCount", 0)),
                exit_code=run.get("ExitCode") if state != "running" else None,
                oom_killed=bool(run.get("OOMKilled")),
                started_at=_docker_time(run.get("StartedAt")),
                detail=detail,
            )
        return states

    def health(self, components: list[str]) -> dict[str, HealthState]:
        containers = self.containers()
        states = {}
        for name in components:
            container = containers.get(name)
            if container is None:
                states[name] = HealthState(name, "absent", "no container")
                continue
            run = container.attrs["State"]
            if not run.get("Running"):
                states[name] = HealthState(
                    name, "stopped", f"{run.get('Status')}, exit code {run.get('ExitCode')}"
                )
                continue
            check = run.get("Health")
            if not check:  # no healthcheck: running is all Docker knows
                states[name] = HealthState(name, "healthy", "running (no healthcheck)")
                continue
            last = (check.get("Log") or [{}])[-1]
            output = " ".join(str(last.get("Output", "")).split())[:200]
            detail = (
                f"healthcheck exit {last.get('ExitCode')}: {output}" if last else "no healthcheck run yet"
            )
            states[name] = HealthState(name, check.get("Status", "starting"), detail)
        return states

    def events(self, since: datetime) -> list[PlatformEvent]:
        now = datetime.now(UTC)
        stream = self.client.events(
            since=since,
            until=now,
            decode=True,
            filters={"type": "container", "label": f"{PROJECT_LABEL}={self.project}"},
        )
        found = []
        for event in stream:
            attributes = event.get("Actor", {}).get("Attributes", {})
            action = str(event.get("Action", event.get("status", "")))
            if action.startswith(("exec_", "attach", "resize")):
                continue  # healthcheck execs and terminal plumbing, not events of the component
            warning = action.startswith(_WARNING_ACTIONS) and not (
                action == "die" and attributes.get("exitCode") == "0"
            )
            message = f"container {attributes.get('name', '')}"
            if "exitCode" in attributes:
                message += f" exit code {attributes['exitCode']}"
            found.append(
                PlatformEvent(
                    at=datetime.fromtimestamp(int(event.get("timeNano", 0)) / 1e9, UTC),
                    component=attributes.get(SERVICE_LABEL, "?"),
                    kind="Warning" if warning else "Normal",
                    reason=action,
                    message=message,
                )
            )
        return found

    def logs(self, component: str, since: datetime, lines: int = 200) -> list[LogLine]:
        container = self.containers().get(component)
        if container is None:
            return []
        raw = container.logs(timestamps=True, since=since, tail=lines, stdout=True, stderr=True)
        result = []
        for text in raw.decode(errors="replace").splitlines():
            stamp, _, rest = text.partition(" ")
            at = _docker_time(stamp)
            result.append(LogLine(at, component, rest if at else text))
        return result

    # -- control --------------------------------------------------------------------
    @cached_property
    def _cli(self) -> list[str]:
        return compose_command()

    def compose(self, *arguments: str) -> str:
        command = [*self._cli, "-p", self.project, "-f", str(self.compose_file), *arguments]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, cwd=self.compose_file.parent
        )
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            raise DriverError(
                f"`{' '.join(command[len(self._cli) :])}` failed (exit {done.returncode}): {tail}"
            )
        return done.stderr + done.stdout

    def start(self, components: list[str]) -> None:
        if components:
            # --no-deps: a phase starts exactly its own components; the preflight saw to the rest.
            self.compose("up", "-d", "--no-deps", *components)

    def stop(self, components: list[str]) -> None:
        if components:
            self.compose("stop", "-t", "5", *components)

    def restart(self, components: list[str]) -> None:
        if components:
            self.compose("restart", "-t", "5", *components)


def _docker_time(stamp: str | None) -> datetime | None:
    """RFC 3339 with nanoseconds (Docker's) to a datetime; None for Docker's zero time."""
    if not stamp or stamp.startswith("0001-"):
        return None
    head, _, fraction = stamp.rstrip("Z").partition(".")
    try:
        moment = datetime.fromisoformat(head + (f".{fraction[:6]}" if fraction else ""))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
