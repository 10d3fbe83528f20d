"""What every collector works with: the environment, one HTTP client, one
bounded pool, the time window, the thresholds, and the scrubber."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from vextrus_nb.config import Component, Environment, Inventory
from vextrus_nb.drivers import Driver
from vextrus_nb.evidence import scrub
from vextrus_nb.targets import components_in_scope, endpoints


@dataclass(frozen=True)
class TriageSettings:
    """The runbook's knobs; defaults are what an on-call engineer wants at 3 a.m."""

    window_minutes: float = 30.0
    timeout_s: float = 2.0
    latency_budget_ms: float = 500.0
    long_query_s: float = 60.0
    idle_in_tx_s: float = 60.0
    replication_lag_s: float = 30.0
    connections_ratio: float = 0.8
    redis_memory_ratio: float = 0.95
    error_rate: float = 0.05
    min_requests: int = 20
    kafka_lag_max: int = 10_000
    log_lines: int = 5
    suspected: str = ""


@dataclass
class TriageContext:
    env: Environment
    inventory: Inventory
    settings: TriageSettings
    client: httpx.AsyncClient
    gate: asyncio.Semaphore
    scrubber: scrub.Scrubber
    now: datetime
    driver: Driver | None = None
    driver_problem: str = ""
    where: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def since(self) -> datetime:
        return self.now - timedelta(minutes=self.settings.window_minutes)

    def components(self) -> list[Component]:
        return components_in_scope(self.env, self.inventory)

    def services(self) -> list[Component]:
        return [c for c in self.components() if c.kind == "service"]

    def secret(self, name: str) -> str:
        value = self.env.resolve_secret(name)
        self.scrubber.add([value])
        return value

    async def bounded(self, work: Any, timeout_s: float | None = None) -> Any:
        """One awaitable through the pool, within the timeout: a hanging target costs its own timeout."""
        async with self.gate:
            return await asyncio.wait_for(work, timeout_s or self.settings.timeout_s)

    async def get(self, component: str, path: str, **params: str) -> httpx.Response:
        host, port = self.where[component]
        return await self.bounded(
            self.client.get(f"http://{host}:{port}{path}", params=params, timeout=self.settings.timeout_s)
        )

    @classmethod
    def open(
        cls,
        env: Environment,
        inventory: Inventory,
        settings: TriageSettings,
        client: httpx.AsyncClient,
        concurrency: int,
        scrubber: scrub.Scrubber,
        now: datetime,
    ) -> TriageContext:
        from vextrus_nb.drivers import DriverUnavailable, for_environment

        driver, problem = None, ""
        try:
            driver = for_environment(env)
        except DriverUnavailable as exc:
            problem = str(exc)
        return cls(
            env=env,
            inventory=inventory,
            settings=settings,
            client=client,
            gate=asyncio.Semaphore(concurrency),
            scrubber=scrubber,
            now=now,
            driver=driver,
            driver_problem=problem,
            where=endpoints(env, inventory),
        )
