"""The Vextrus platform as a docker-compose project that runs on this machine.

No image registry is reachable here, so the stack uses one locally built, empty
image and runs the host's own binaries in it, bind-mounted read-only: the
real PostgreSQL and Redis servers, and for every other component the
simulated server of `vextrus_nb.sandbox.component`. Containers use the host
network, so each component listens on its own loopback port, chosen free.

Everything else is what a production compose file has: one container per
component, a healthcheck on each (the real readiness endpoint, pg_isready, an
authenticated Redis PING), memory and CPU limits, secrets as files under
/run/secrets (never in the environment or argv), and a compose project name.

The driver, the phases and the tests treat it like any compose deployment;
`write_environment` writes the environment YAML that points at it.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vextrus_nb import paths
from vextrus_nb.config import Component, Inventory
from vextrus_nb.errors import StackError
from vextrus_nb.ports import free_ports

BASE_IMAGE = "vextrus/base:local"
PG_USER = "vextrus_admin"
SECRET_NAMES = ("postgres_password", "redis_password")
# Host directories a container needs to run the host's binaries (what exists of them).
HOST_DIRECTORIES = ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc")
# Every healthcheck is a `docker exec` (a runc start, ~50 ms of CPU): at 1 s, 34 containers keep a
# 2-CPU machine a third busy and slow every start; 2 s halves that for 1 s more per start.
HEALTH_INTERVAL = "2s"


def ensure_base_image(client: Any) -> str:
    """The empty image every container of the stack runs in; imported once (0.1 s)."""
    import docker.errors

    try:
        client.images.get(BASE_IMAGE)
        return BASE_IMAGE
    except docker.errors.ImageNotFound:
        pass
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for folder in ("tmp", "run", "proc", "sys", "dev"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            tar.addfile(info)
    repository, tag = BASE_IMAGE.split(":")
    client.api.import_image_from_data(archive.getvalue(), repository=repository, tag=tag)
    return BASE_IMAGE


def postgres_bindir() -> Path:
    from vextrus_nb.postgres_binaries import find_bindir

    return Path(find_bindir())


def _host_mounts() -> list[str]:
    """Read-only binds: the system directories, the Python the venv was made from, the checkout."""
    wanted = [d for d in HOST_DIRECTORIES if os.path.exists(d)]
    for extra in (sys.base_prefix, sys.prefix, str(paths.project_root()), str(paths.parameters_dir())):
        real = os.path.realpath(extra)
        if not any(real == d or real.startswith(d + "/") for d in wanted):
            wanted.append(real)
    return [f"{d}:{d}:ro" for d in wanted]


@dataclass
class LocalStack:
    """Where the stack's files are and what it was written with."""

    directory: Path
    project: str
    ports: dict[str, int]
    faults: dict[str, str] = field(default_factory=dict)

    @property
    def compose_file(self) -> Path:
        return self.directory / "docker-compose.yml"

    def secret_file(self, name: str) -> Path:
        return self.directory / "secrets" / name


def write_stack(
    directory: Path,
    inventory: Inventory,
    project: str = "vextrus-local",
    faults: dict[str, str] | None = None,
    components: list[str] | None = None,
    ports: dict[str, int] | None = None,
) -> LocalStack:
    """Write docker-compose.yml and the secret files for the named components (default: every
    component with a phase). `faults` plants one: {"finance": "unhealthy"} makes its healthcheck
    fail for good. Existing secret files are kept, so rewriting a running stack is safe."""
    names = components or [n for n in inventory.start_order if inventory.components[n].phase]
    faults = dict(faults or {})
    unknown = sorted(set(faults) - set(names))
    if unknown:
        raise StackError(f"a fault is planted on a component not in the stack: {', '.join(unknown)}")
    directory.mkdir(parents=True, exist_ok=True)
    ports = ports or dict(zip(names, free_ports(len(names)), strict=True))  # given: rewrite a running stack
    stack = LocalStack(directory.resolve(), project, {n: ports[n] for n in names}, faults)
    _write_secrets(stack)
    mounts = _host_mounts()
    services = {name: _service(inventory.components[name], stack, mounts) for name in names}
    document = {
        "version": "2.4",
        "services": services,
        "secrets": {name: {"file": f"./secrets/{name}"} for name in SECRET_NAMES},
    }
    header = "# Written by vextrus_nb.sandbox.compose_stack: the Vextrus platform on this Docker engine.\n"
    stack.compose_file.write_text(header + yaml.safe_dump(document, sort_keys=False, width=120))
    return stack


def _write_secrets(stack: LocalStack) -> None:
    folder = stack.directory / "secrets"
    folder.mkdir(mode=0o700, exist_ok=True)
    for name in SECRET_NAMES:
        path = stack.secret_file(name)
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24))
        # The containers run as nobody and read it through the /run/secrets bind mount;
        # the folder (0700, root's) keeps everyone else out.
        path.chmod(0o644)


def _service(component: Component, stack: LocalStack, mounts: list[str]) -> dict[str, Any]:
    port = stack.ports[component.name]
    base: dict[str, Any] = {
        "image": BASE_IMAGE,
        "network_mode": "host",
        "user": "65534:65534",
        "read_only": True,
        "tmpfs": ["/tmp"],
        "volumes": list(mounts),
        "mem_limit": "512m" if component.name == "postgres" else "160m",
        "cpus": 1.0,
        "restart": "unless-stopped",
        "stop_grace_period": "3s",
        "labels": {"io.vextrus.component": component.name, "io.vextrus.phase": str(component.phase)},
    }
    if component.name == "postgres":
        bindir = postgres_bindir()
        script = (
            "set -e; D=/tmp/pgdata; "
            f'[ -s "$D/PG_VERSION" ] || {bindir}/initdb -D "$D" -U {PG_USER} '
            "--pwfile=/run/secrets/postgres_password --auth=scram-sha-256 >/dev/null; "
            f'exec {bindir}/postgres -D "$D" -p {port} -k /tmp -c listen_addresses=127.0.0.1'
        )
        test = ["CMD", f"{bindir}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)]
        return {
            **base,
            "command": _literal(["/bin/sh", "-c", script]),
            "secrets": ["postgres_password"],
            "healthcheck": _healthcheck(test),
        }
    if component.name == "redis":
        redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"
        redis_cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        # printf is the shell's builtin: the password reaches the config file, never an argv.
        script = (
            f'printf \'port {port}\\nbind 127.0.0.1\\nsave ""\\nappendonly no\\nrequirepass "%s"\\n\' '
            '"$(cat /run/secrets/redis_password)" > /tmp/redis.conf && exec '
            + redis_server
            + " /tmp/redis.conf"
        )
        test = [
            "CMD-SHELL",
            f"REDISCLI_AUTH=$(cat /run/secrets/redis_password) {redis_cli} -p {port} ping | grep -q PONG",
        ]
        return {
            **base,
            "command": _literal(["/bin/sh", "-c", script]),
            "secrets": ["redis_password"],
            "healthcheck": _healthcheck(test),
        }
    talks_to = {component.name, *component.depends_on, *component.subgraphs}
    environment = {
        "VEXTRUS_PORTS": json.dumps({n: p for n, p in stack.ports.items() if n in talks_to}, sort_keys=True),
        "VEXTRUS_INVENTORY": str(paths.parameters_dir().resolve() / "inventory.yaml"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "VEXTRUS_FAULT": stack.faults.get(component.name, ""),
    }
    path = "/health/ready" if component.kind == "service" else component.health_path
    return {
        **base,
        "command": [sys.executable, "-m", "vextrus_nb.sandbox.component", component.name],
        "working_dir": str(paths.project_root()),
        "environment": environment,
        "healthcheck": _healthcheck(_http_check(port, path) if path else _tcp_check(port)),
    }


def _http_check(port: int, path: str) -> list[str]:
    """An HTTP GET in bash alone (no curl in the image): healthy on a 200 status line."""
    request = f"GET {path} HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n"
    return [
        "CMD",
        "/bin/bash",
        "-c",
        f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf '{request}' >&3 && head -c 12 <&3 | grep -q ' 200'",
    ]


def _tcp_check(port: int) -> list[str]:
    return ["CMD", "/bin/bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"]


def _literal(words: list[str]) -> list[str]:
    """Compose interpolates ${...} itself: a $ meant for the container's shell is written $$."""
    return [w.replace("$", "$$") for w in words]


def _healthcheck(test: list[str]) -> dict[str, Any]:
    return {
        "test": _literal(test),
        "interval": HEALTH_INTERVAL,
        "timeout": "2s",
        "retries": 3,
        "start_period": "60s",
    }


def _simulated_components() -> list[str]:
    from vextrus_nb.config import load_inventory
    from vextrus_nb.sandbox.faults import REAL_DATASTORES

    inventory = load_inventory()
    return [
        n
        for n in inventory.start_order
        if inventory.components[n].kind != "service" and n not in REAL_DATASTORES
    ]


def write_environment(parameters_dir: Path, name: str, stack: LocalStack, description: str = "") -> Path:
    """An environment YAML for the stack: compose driver, its ports, its secret files."""
    document = {
        "name": name,
        "description": description
        or f"The Vextrus platform on this machine's Docker engine ({stack.project})",
        "driver": "compose",
        "production": False,
        "default_host": "127.0.0.1",
        "ports": stack.ports,
        "exclude": [],
        # Every container but PostgreSQL's and Redis's runs a simulation (component.py): probed
        # over its HTTP health or TCP, not the real server's protocol.
        "simulated": _simulated_components(),
        "secrets": {n: {"file": str(stack.secret_file(n))} for n in SECRET_NAMES},
        "postgres": {"user": PG_USER, "password_secret": "postgres_password"},
        "redis": {"user": "default", "password_secret": "redis_password"},
        # 4 s: 34 containers' healthchecks share the 2-core machine with the test run, and a
        # phase's verify gave up at 2 s on the scheduler in a clean-clone run.
        "probe": {"timeout_s": 4.0, "concurrency": 32, "latency_budget_ms": 1000},
        "deployment": {"compose_file": str(stack.compose_file), "compose_project": stack.project},
    }
    path = parameters_dir / "environments" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path
