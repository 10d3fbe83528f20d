"""How components are started and inspected: the environment's `driver`.

Drivers are found by name among the `vextrus_nb.drivers` entry points (pyproject.toml): compose
and kube live here, `local` is the sandbox's own (vextrus_nb/sandbox/driver.py), so production
code never imports the sandbox, and a new driver is a new entry point.
"""

from __future__ import annotations

from vextrus_nb.config import Environment
from vextrus_nb.drivers.base import (
    ComponentState,
    Driver,
    FailoverControl,
    HealthState,
    LogLine,
    PlatformEvent,
    ScratchServers,
)
from vextrus_nb.errors import DriverUnavailable

DRIVER_GROUP = "vextrus_nb.drivers"


def for_environment(env: Environment) -> Driver:
    """The driver the environment names; DriverUnavailable when it cannot be used here."""
    from importlib.metadata import entry_points

    found = entry_points(group=DRIVER_GROUP, name=env.driver)
    if not found:
        known = ", ".join(sorted(e.name for e in entry_points(group=DRIVER_GROUP))) or "none"
        raise DriverUnavailable(f"no driver '{env.driver}' is installed (drivers: {known})")
    factory = next(iter(found)).load()
    return factory(env)


__all__ = [
    "ComponentState",
    "Driver",
    "FailoverControl",
    "HealthState",
    "LogLine",
    "PlatformEvent",
    "ScratchServers",
    "for_environment",
]
