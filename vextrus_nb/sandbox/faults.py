"""Which faults each kind of sandbox component can take, and what they mean.

- down:      the component stops listening (connections are refused); a real server
             (PostgreSQL, Redis, Kafka, ZooKeeper, ... see real_platform.py) is stopped.
- unhealthy: it answers, but its health endpoints report failure (503 / red).
- slow:      every answer is delayed by `delay_s` (default 5 s, beyond the
             default probe timeout of 2 s).
- live-deps: (services only) /health/live also checks the datastores, the
             misconfiguration that makes Kubernetes restart every pod when the
             database blips. Everything still answers 200.
"""

from __future__ import annotations

from vextrus_nb.config import Component

MODES = ("down", "unhealthy", "slow", "live-deps")
DEFAULT_SLOW_DELAY_S = 5.0
REAL_DATASTORES = ("postgres", "redis")


def supported_modes(component: Component) -> tuple[str, ...]:
    from vextrus_nb.sandbox.real_platform import REAL_COMPONENTS, SERVED_BY

    if component.name in SERVED_BY and component.name not in REAL_COMPONENTS:
        return ()  # another server's port (temporal-ui is the Temporal dev server's UI)
    if component.name in REAL_DATASTORES or component.name in REAL_COMPONENTS or component.probe == "tcp":
        # A real server or a bare TCP listener has no health endpoint to turn red.
        return ("down",)
    if component.kind != "service":
        return ("down", "unhealthy", "slow")
    return MODES
