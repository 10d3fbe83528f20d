"""What every check measures with: the live context (environment, endpoints, one shared
HTTP client, one bounded pool, scope, secrets: vextrus_nb/live_context.py), the latency
budget, and a cache of probe results.

Several checks read the same answer (the readiness probe feeds both the
health check and the latency check); the cache makes that one request, so
the checklist costs about one probe per endpoint however many checks read it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vextrus_nb import probes
from vextrus_nb.config import Component, Environment, Inventory
from vextrus_nb.evidence import scrub
from vextrus_nb.live_context import LiveContext, live_fields
from vextrus_nb.probe_targets import probe_targets
from vextrus_nb.probes import ProbeResult, ProbeTarget

if TYPE_CHECKING:
    import httpx
    import redis.asyncio as aioredis


@dataclass
class CheckContext(LiveContext):
    env: Environment
    inventory: Inventory
    client: httpx.AsyncClient
    gate: asyncio.Semaphore
    timeout_s: float
    latency_budget_ms: float
    outputs_dir: Path
    scrubber: scrub.Scrubber
    where: MutableMapping[str, tuple[str, int]] = field(default_factory=dict)
    _cache: dict[tuple[str, str], asyncio.Future[ProbeResult]] = field(default_factory=dict, repr=False)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False)

    # -- scope ---------------------------------------------------------------------
    def services(self) -> list[Component]:
        """The services in scope, in inventory order (the order the checklist reports them in)."""
        return [c for c in self.inventory.services() if self.in_scope(c.name)]

    def once(self, key: str, compute: Callable[[], Any]) -> Any:
        """compute() the first time a check asks for `key`; its result (or its error) after that."""
        if key not in self._memo:
            try:
                self._memo[key] = (compute(), None)
            except Exception as exc:
                self._memo[key] = (None, exc)
        value, error = self._memo[key]
        if error is not None:
            raise error
        return value

    # -- measuring ---------------------------------------------------------------
    def probe(self, component: str, check: str = "health") -> asyncio.Future[ProbeResult]:
        """The component's probe for one of its health checks, made at most once per run."""
        key = (component, check)
        if key not in self._cache:
            self._cache[key] = asyncio.ensure_future(self._probe(self._target(component, check)))
        return self._cache[key]

    def _target(self, component: str, check: str) -> ProbeTarget:
        targets = probe_targets(
            self.env, self.inventory, [self.inventory.get(component)], all_health_paths=True
        )
        for target in targets:
            if target.password:
                self.scrubber.add([target.password])
        return next(t for t in targets if t.check == check)

    async def _probe(self, target: ProbeTarget) -> ProbeResult:
        async with self.gate:
            return await probes.probe(target, self.timeout_s, self.client)

    async def remeasure_slow_alone(self) -> None:
        """Every answer in the probe cache over the latency budget, measured again with nothing
        else in flight (probes.measured_alone), before any check reads it: a sweep's round trips
        include its own queue, and the latency check judges the platform, not that queue."""
        budget = self.latency_budget_ms
        keys = [key for key, answer in self._cache.items() if answer.done() and not answer.cancelled()]
        swept = []
        for key in keys:
            answer = self._cache[key].result()
            slow = answer.status != "down" and answer.latency_ms > budget
            swept.append((self._target(*key), replace(answer, over_budget=slow)))
        # No budget for the lone probes: they report a status as the cached ones do (the checks
        # that read the status are not latency checks); PERF-HEALTH-LATENCY compares latency_ms.
        remeasured = await probes.measured_alone(swept, self.timeout_s, self.client, None)
        for key, answer in zip(keys, remeasured, strict=True):
            settled: asyncio.Future[ProbeResult] = asyncio.get_running_loop().create_future()
            settled.set_result(answer)
            self._cache[key] = settled

    def redis_client(self, authenticated: bool = True) -> aioredis.Redis:
        """A client for the environment's Redis, with its login or with none; no retries, since
        a check reports the first answer (redis-py would otherwise retry even a refused login)."""
        host, port = self.where["redis"]
        login = self.env.redis if authenticated else None
        return probes.redis_client(
            host,
            port,
            login.user if login else None,
            self.secret(login.password_secret) if login else None,
            self.timeout_s,
        )

    @classmethod
    def open(
        cls,
        env: Environment,
        inventory: Inventory,
        client: httpx.AsyncClient,
        concurrency: int,
        timeout_s: float,
        latency_budget_ms: float,
        outputs_dir: Path,
        scrubber: scrub.Scrubber,
    ) -> CheckContext:
        return cls(
            **live_fields(env, inventory, client, concurrency, scrubber),
            timeout_s=timeout_s,
            latency_budget_ms=latency_budget_ms,
            outputs_dir=outputs_dir,
        )


def describe_error(exc: BaseException, timeout_s: float) -> str:
    return probes.describe_error(exc, timeout_s)


async def in_thread(ctx: CheckContext, work: Callable[[], Any]) -> Any:
    """A blocking client call (confluent-kafka, boto3, pika) in a thread, through the pool, so a
    hanging server costs one timeout and the check still reports within its deadline. `work`
    bounds itself by ctx.timeout_s (the outer wait gives it a little more, so its own timeout is
    what the caller sees)."""
    return await ctx.bounded(asyncio.to_thread(work), ctx.timeout_s + 0.25)
