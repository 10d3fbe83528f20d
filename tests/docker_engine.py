"""A real Docker engine for the tests: the one running, or one started here.

DESIGN.md: `dockerd --iptables=false --bridge=none` in the background (no
bridge network; the stacks use host networking). Started only when none
answers, and stopped again at the end of the session if it was started here.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

READY_WITHIN_S = 60


def _client() -> Any:
    import docker

    client = docker.from_env(timeout=30)
    client.ping()
    return client


@contextmanager
def docker_engine(workdir: Path) -> Iterator[Any]:
    try:
        yield _client()
        return
    except Exception:
        pass
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RuntimeError(
            "no Docker engine answers and dockerd is not installed (apt-get install docker.io)"
        )
    log = open(workdir / "dockerd.log", "w")  # noqa: SIM115 - kept open for the daemon's lifetime
    process = subprocess.Popen(
        [dockerd, "--iptables=false", "--bridge=none", "--pidfile", str(workdir / "dockerd.pid")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + READY_WITHIN_S
    client = None
    while client is None:
        try:
            client = _client()
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                tail = (workdir / "dockerd.log").read_text()[-2000:]
                raise RuntimeError(f"dockerd did not come up:\n{tail}") from None
            time.sleep(0.2)
    try:
        yield client
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def remove_compose_project(client: Any, project: str) -> int:
    """Force-remove every container of a compose project; returns how many.

    Called before a stack starts as well as after: a run that was killed
    leaves its containers behind with `restart: unless-stopped`, so the next
    dockerd start brings them back on the same host ports.
    """
    # The low-level listing: one request, where containers.list() inspects each container too,
    # and an inspect waits behind a container being stopped (a 30 s read timeout seen on a loaded
    # machine in the stack's teardown).
    leftovers = client.api.containers(all=True, filters={"label": f"com.docker.compose.project={project}"})
    for container in leftovers:
        client.api.remove_container(container["Id"], force=True, v=True)
    return len(leftovers)
