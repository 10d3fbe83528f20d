"""How components are started and inspected: the environment's `driver`."""

from __future__ import annotations

from vextrus_nb.config import Environment
from vextrus_nb.drivers.base import ComponentState, Driver, LogLine, PlatformEvent
from vextrus_nb.errors import VextrusError


class DriverUnavailable(VextrusError):
    """The environment's driver cannot be used from here (not built yet, or no access)."""


def for_environment(env: Environment) -> Driver:
    """The driver the environment names; DriverUnavailable when it cannot be used here."""
    if env.driver == "local":
        from vextrus_nb.drivers.local import LocalDriver

        return LocalDriver.for_sandbox()
    raise DriverUnavailable(
        f"the {env.driver} driver is not available yet (the deployment-phases issue builds it); "
        "component health, PostgreSQL, Redis and metrics are still collected"
    )


__all__ = ["ComponentState", "Driver", "DriverUnavailable", "LogLine", "PlatformEvent", "for_environment"]
