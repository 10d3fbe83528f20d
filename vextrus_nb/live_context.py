"""What a live read of an environment works with, whoever reads it (the checklist's checks,
triage's collectors): the environment and its endpoints, one HTTP client, one bounded pool,
the scope (which components this environment runs), and its secrets, each added to the
scrubber as it is read.

CheckContext (checks/context.py) and TriageContext (triage/context.py) are dataclasses that
declare the fields below and add their own (a check's probe cache, triage's time window and
driver); the methods here are the part they share.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, TypeVar

from vextrus_nb.config import Component, Environment, Inventory
from vextrus_nb.evidence import scrub
from vextrus_nb.probe_targets import components_in_scope, endpoints

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")

# A live read wants its probes at once. A pool smaller than the number of targets (about 85 on
# the full platform) lets a few hanging targets hold slots while the rest queue past their
# deadline; the checklist and triage therefore open at least this many connections at a time.
MIN_POOL = 128


def http_client(connections: int) -> httpx.AsyncClient:
    """The one client of a live read: `connections` at a time, none kept alive between
    requests, no redirect followed (a health path that redirects is an answer, not a hop)."""
    import httpx  # here, not at the top: a refusal imports this module and must not wait for it

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=0)
    return httpx.AsyncClient(limits=limits, follow_redirects=False)


class Endpoints(MutableMapping[str, tuple[str, int]]):
    """(host, port) of every component, looked up on first use: a read that only looks at
    files (the static checks) never needs the platform's endpoints, nor a sandbox running."""

    def __init__(self, env: Environment, inventory: Inventory):
        self._env, self._inventory = env, inventory
        self._where: dict[str, tuple[str, int]] | None = None

    def _resolved(self) -> dict[str, tuple[str, int]]:
        if self._where is None:
            self._where = endpoints(self._env, self._inventory)
        return self._where

    def __getitem__(self, name: str) -> tuple[str, int]:
        return self._resolved()[name]

    def __setitem__(self, name: str, where: tuple[str, int]) -> None:
        self._resolved()[name] = where  # a test (or a tunnel) pointing one component elsewhere

    def __delitem__(self, name: str) -> None:
        del self._resolved()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._resolved())

    def __len__(self) -> int:
        return len(self._resolved())


def live_fields(
    env: Environment,
    inventory: Inventory,
    client: httpx.AsyncClient,
    concurrency: int,
    scrubber: scrub.Scrubber,
) -> dict[str, Any]:
    """The shared fields of a context opened on `env`: `concurrency` awaitables at a time."""
    return {
        "env": env,
        "inventory": inventory,
        "client": client,
        "gate": asyncio.Semaphore(concurrency),
        "scrubber": scrubber,
        "where": Endpoints(env, inventory),
    }


class LiveContext:
    """The shared methods; a subclass declares these fields (and `timeout_s`, a field or a property)."""

    env: Environment
    inventory: Inventory
    client: httpx.AsyncClient
    gate: asyncio.Semaphore
    scrubber: scrub.Scrubber
    where: MutableMapping[str, tuple[str, int]]

    if TYPE_CHECKING:  # declared for mypy only: a class attribute here would be a dataclass's default

        @property
        def timeout_s(self) -> float: ...

    # -- scope ---------------------------------------------------------------------
    def components(self, include_dev_tools: bool = False) -> list[Component]:
        """The components this environment runs, in start order."""
        return components_in_scope(self.env, self.inventory, include_dev_tools)

    def in_scope(self, name: str) -> bool:
        return any(c.name == name for c in self.components(include_dev_tools=True))

    # -- secrets -------------------------------------------------------------------
    def secret(self, name: str) -> str:
        """The secret's value, which the scrubber then blanks out of everything recorded."""
        value = self.env.resolve_secret(name)
        self.scrubber.add([value])
        return value

    # -- bounded work --------------------------------------------------------------
    async def bounded(self, work: Awaitable[T], timeout_s: float | None = None) -> T:
        """One awaitable through the pool, within the timeout: a hanging target costs its own timeout."""
        async with self.gate:
            return await asyncio.wait_for(work, timeout_s or self.timeout_s)

    async def http(self, component: str, path: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
        """One request to a component, through the pool, within the timeout."""
        host, port = self.where[component]
        return await self.bounded(
            self.client.request(method, f"http://{host}:{port}{path}", timeout=self.timeout_s, **kwargs)
        )
