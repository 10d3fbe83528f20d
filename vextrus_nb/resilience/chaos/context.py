"""What an experiment works with: the environment, where each component answers (a dependency
behind a fault proxy answers at the proxy), the driver, the links the network faults switch, and
a scrubber that learns every secret read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from vextrus_nb.config import Environment, Inventory
    from vextrus_nb.drivers import Driver


class LinkControl(Protocol):
    """One switchable link in front of a dependency (vextrus_nb/sandbox/fault_proxy.FaultProxy):
    `port` is where clients connect to go through it, on loopback."""

    port: int

    def set_link(self, mode: str, latency_ms: float = 0.0) -> None: ...


@runtime_checkable
class LinkFaults(Protocol):
    """A driver capability: the link in front of a dependency that the platform's own clients go
    through, or None where there is none. The local driver will have it once the sandbox's services
    reach their dependencies through fault proxies; without it the network faults are refused."""

    def link(self, dependency: str) -> LinkControl | None: ...


@dataclass
class ChaosContext:
    env: Environment
    inventory: Inventory
    where: dict[str, tuple[str, int]]
    driver_factory: Callable[[], Driver]
    links: dict[str, LinkControl] = field(default_factory=dict)
    remember_secret: Callable[[str], None] = lambda value: None
    _driver: Driver | None = field(default=None, repr=False)

    @classmethod
    def for_environment(cls, env: Environment, inventory: Inventory, **kwargs: Any) -> ChaosContext:
        from vextrus_nb import drivers
        from vextrus_nb.probe_targets import endpoints

        return cls(env, inventory, endpoints(env, inventory), lambda: drivers.for_environment(env), **kwargs)

    @property
    def driver(self) -> Driver:
        if self._driver is None:
            self._driver = self.driver_factory()
        return self._driver

    @property
    def timeout_s(self) -> float:
        return float(self.env.probe.timeout_s)

    def secret(self, name: str) -> str:
        value = self.env.resolve_secret(name)
        self.remember_secret(value)
        return value

    def link(self, dependency: str) -> LinkControl | None:
        """The link the experiment was given for the dependency, else the driver's, else None."""
        if dependency in self.links:
            return self.links[dependency]
        if isinstance(self.driver, LinkFaults):
            return self.driver.link(dependency)
        return None

    def route_probes_through_link(self, dependency: str) -> None:
        """The steady-state probes reach the dependency through its link, as the platform does,
        so the faults on the link are what they see."""
        link = self.link(dependency)
        if link is not None:
            self.where[dependency] = ("127.0.0.1", int(link.port))

    def service_names(self) -> list[str]:
        from vextrus_nb.probe_targets import components_in_scope

        return [c.name for c in components_in_scope(self.env, self.inventory) if c.kind == "service"]
