"""The links between the sandbox's services and their dependencies: a fault proxy
(fault_proxy.py) in front of each real datastore and broker the services reach, so latency and
a cut connection happen in the services' own path, as on a real network (this kernel has no
netem). The services process owns the proxies (`Links`); the local driver switches them
through the control API (`RemoteLink`, the chaos runbook's `LinkFaults` capability).

Kafka has no link: its clients ask the bootstrap address for metadata and then connect to the
broker's advertised address, which a proxy on the bootstrap port would not be in the path of.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from vextrus_nb.errors import LinkError
from vextrus_nb.sandbox.fault_proxy import LINK_MODES, FaultProxy, LinkMode

HOST = "127.0.0.1"
UNLINKED = ("kafka",)  # see the module's docstring
CONTROL_TIMEOUT_S = 5.0


class Links:
    """The proxies of the services process, one per linked dependency, on its event loop."""

    def __init__(self) -> None:
        self.proxies: dict[str, FaultProxy] = {}

    async def open(self, upstreams: dict[str, int]) -> None:
        for name, port in upstreams.items():
            if name not in UNLINKED:
                self.proxies[name] = await FaultProxy(HOST, port).open()

    async def close(self) -> None:
        for proxy in self.proxies.values():
            await proxy.close()

    def port(self, name: str, direct: int) -> int:
        """Where a service connects to reach `name`: its link when it has one, else `direct`."""
        proxy = self.proxies.get(name)
        return proxy.port if proxy is not None else direct

    def set(self, name: str, mode: str, latency_ms: float = 0.0) -> None:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise LinkError(f"no link to '{name}'; links: {', '.join(sorted(self.proxies)) or 'none'}")
        if mode not in LINK_MODES:
            raise LinkError(f"unknown link mode '{mode}'; modes: {', '.join(LINK_MODES)}")
        try:
            proxy.set_link(mode, float(latency_ms))
        except ValueError as exc:
            raise LinkError(str(exc)) from None

    def restore_all(self) -> list[str]:
        """Every link back to pass (the sandbox's heal); the names of those that were not."""
        restored = [name for name, proxy in self.proxies.items() if proxy.mode != "pass"]
        for name in restored:
            self.proxies[name].set_link("pass")
        return restored

    def describe(self) -> dict[str, dict[str, Any]]:
        return {
            name: {
                "port": proxy.port,
                "upstream_port": proxy.upstream_port,
                "mode": proxy.mode,
                "latency_ms": proxy.latency_ms,
            }
            for name, proxy in self.proxies.items()
        }


def linked_dependencies(candidates: Iterable[str]) -> list[str]:
    return [name for name in dict.fromkeys(candidates) if name not in UNLINKED]


@dataclass
class RemoteLink:
    """One link of a running sandbox, switched through its control API (drivers' `LinkControl`)."""

    name: str
    port: int
    control_port: int

    def set_link(self, mode: LinkMode | str, latency_ms: float = 0.0) -> None:
        response = httpx.post(
            f"http://{HOST}:{self.control_port}/links/{self.name}",
            json={"mode": mode, "latency_ms": latency_ms},
            timeout=CONTROL_TIMEOUT_S,
        )
        if response.status_code in (400, 404):
            raise LinkError(response.json().get("error", response.text))
        response.raise_for_status()

    @property
    def mode(self) -> str:
        return str(links_of(self.control_port)[self.name]["mode"])


def links_of(control_port: int) -> dict[str, dict[str, Any]]:
    """The running sandbox's links as its services process describes them."""
    response = httpx.get(f"http://{HOST}:{control_port}/links", timeout=CONTROL_TIMEOUT_S)
    response.raise_for_status()
    return dict(response.json())


def restore_all(control_port: int) -> list[str]:
    url = f"http://{HOST}:{control_port}/links"
    response = httpx.post(url, json={"mode": "pass"}, timeout=CONTROL_TIMEOUT_S)
    response.raise_for_status()
    return list(response.json()["restored"])
