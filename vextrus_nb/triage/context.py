"""What every collector works with: the live context (environment, endpoints, one HTTP
client, one bounded pool, scope, secrets and the scrubber: vextrus_nb/live_context.py), the
time window, the thresholds, and the environment's driver."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from vextrus_nb.config import Component, Environment, Inventory
from vextrus_nb.drivers import Driver
from vextrus_nb.evidence import scrub
from vextrus_nb.live_context import LiveContext, live_fields


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
class TriageContext(LiveContext):
    env: Environment
    inventory: Inventory
    settings: TriageSettings
    client: httpx.AsyncClient
    gate: asyncio.Semaphore
    scrubber: scrub.Scrubber
    now: datetime
    driver: Driver | None = None
    driver_problem: str = ""
    where: MutableMapping[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def since(self) -> datetime:
        return self.now - timedelta(minutes=self.settings.window_minutes)

    @property
    def timeout_s(self) -> float:
        return self.settings.timeout_s

    def services(self) -> list[Component]:
        """The services in scope, in start order."""
        return [c for c in self.components() if c.kind == "service"]

    async def get(self, component: str, path: str, **params: str) -> httpx.Response:
        return await self.http(component, path, params=params)

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
        from vextrus_nb.drivers import for_environment
        from vextrus_nb.errors import DriverUnavailable

        driver, problem = None, ""
        try:
            driver = for_environment(env)
        except DriverUnavailable as exc:
            problem = str(exc)
        return cls(
            **live_fields(env, inventory, client, concurrency, scrubber),
            settings=settings,
            now=now,
            driver=driver,
            driver_problem=problem,
        )
