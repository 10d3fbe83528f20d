"""How components are started and inspected: the environment's `driver`."""

from __future__ import annotations

from vextrus_nb.config import Environment
from vextrus_nb.drivers.base import (
    ComponentState,
    Driver,
    DriverError,
    DriverUnavailable,
    HealthState,
    LogLine,
    PlatformEvent,
)


def for_environment(env: Environment) -> Driver:
    """The driver the environment names; DriverUnavailable when it cannot be used here."""
    if env.driver == "local":
        from vextrus_nb.drivers.local import LocalDriver

        return LocalDriver.for_sandbox(environment=env)
    if env.driver == "compose":
        from vextrus_nb.drivers.compose import ComposeDriver

        return ComposeDriver.for_environment(env)
    from vextrus_nb.drivers.kube import KubeDriver

    return KubeDriver.for_environment(env)


__all__ = [
    "ComponentState",
    "Driver",
    "DriverError",
    "DriverUnavailable",
    "HealthState",
    "LogLine",
    "PlatformEvent",
    "for_environment",
]
