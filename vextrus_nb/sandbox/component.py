"""One simulated component in a process of its own: what each container of the
local compose stack runs (see vextrus_nb/sandbox/compose_stack.py).

It serves the same endpoints as the sandbox's one-process platform (Terminus
health, /metrics, the gateway's subgraph listing, Kafka's topic API), logs to
stdout (what `docker logs` and `kubectl logs` read), and checks its
dependencies the way a container sees them: a TCP connect to each one's port.

    python -m vextrus_nb.sandbox.component NAME

Environment: VEXTRUS_PORTS (JSON: component -> port, every component it talks to),
VEXTRUS_FAULT (optional: unhealthy | slow), VEXTRUS_INVENTORY (optional path).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable
from pathlib import Path

from vextrus_nb.config import Component, load_inventory
from vextrus_nb.sandbox.service_app import ComponentServer, JwtKeys, LoopbackReachability

PORTS_VAR = "VEXTRUS_PORTS"
FAULT_VAR = "VEXTRUS_FAULT"
INVENTORY_VAR = "VEXTRUS_INVENTORY"


class StandaloneHost(LoopbackReachability):
    """The dependencies as a container sees them: reachable or not, by TCP."""

    log_directory: Path | None = None

    def __init__(self, ports: dict[str, int]):
        self.ports = ports

    def dependency_checks(self, component: Component) -> dict[str, Awaitable[str | None]]:
        # Terminus names the TypeORM indicator "database"; the rest by their component name.
        return {
            ("database" if dep == "postgres" else dep): self.tcp_check(dep)
            for dep in component.depends_on
            if dep in self.ports
        }

    async def count_pending_outbox(self, component: Component) -> int:
        raise RuntimeError("no database session in a standalone component")

    def user_password(self, email: str) -> str | None:
        return None  # a standalone container has no users' store: every login is refused

    def jwt_keys(self) -> JwtKeys:
        """The keys the container's environment holds (the manifests' secretKeyRefs)."""
        names = ("JWT_SIGNING_KEY", "JWT_VERIFY_KEY_PENDING", "JWT_VERIFY_KEY_PREVIOUS")
        keys = [os.environ.get(n, "").strip() for n in names]
        return JwtKeys(keys[0] or None, tuple(k for k in keys if k))


async def serve(name: str) -> None:
    inventory_path = os.environ.get(INVENTORY_VAR)
    inventory = load_inventory(Path(inventory_path) if inventory_path else None)
    component = inventory.get(name)
    ports = {k: int(v) for k, v in json.loads(os.environ.get(PORTS_VAR, "{}")).items()}
    ports.setdefault(name, component.port)
    server = ComponentServer(component, ports[name], StandaloneHost(ports))
    fault = os.environ.get(FAULT_VAR, "").strip()
    server.fault = {"mode": fault} if fault else None
    await server.setup()
    await server.listen()
    if server.fault:
        server.log.warning("[Bootstrap] started with fault %s", fault)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop_listening()
    await server.runner.cleanup()


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m vextrus_nb.sandbox.component NAME")
    asyncio.run(serve(sys.argv[1]))


if __name__ == "__main__":
    main()
