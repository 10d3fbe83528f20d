"""Run checks: all at once, each within one probe timeout (plus a little for its own work).

A check that raises or overruns its deadline is a result too (status `error`,
counted as failed, saying why), so one broken check never hides the others.
"""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Iterable
from pathlib import Path

from vextrus_nb import paths, probes
from vextrus_nb.asyncio_bridge import run_sync
from vextrus_nb.checks.context import CheckContext, describe_error
from vextrus_nb.checks.model import CATALOGUE, CATEGORY_WEIGHTS, Check, CheckResult
from vextrus_nb.checks.results import ChecklistResult
from vextrus_nb.config import Environment, Inventory
from vextrus_nb.errors import ConfigError
from vextrus_nb.evidence import scrub
from vextrus_nb.live_context import MIN_POOL, http_client

# A check's own work beyond its probes (parsing, scoring) must fit in this.
DEADLINE_SLACK_S = 0.5


CHECK_MODULES = (
    "infrastructure",
    "ha",
    "kafka",
    "temporal",
    "object_store",
    "zookeeper",
    "rabbitmq",
    "manifests",
    "services",
    "edge",
    "security",
    "observability",
    "recovery",
    "performance",
)
"""The modules that register checks, in the order a category lists them: the datastores' and
the edge's basics before the finer checks of each."""


def catalogue() -> list[Check]:
    """Every registered check, in catalogue order (importing the modules registers them)."""
    for module in CHECK_MODULES:
        importlib.import_module(f"vextrus_nb.checks.{module}")
    order = list(CATEGORY_WEIGHTS)
    return sorted(CATALOGUE.values(), key=lambda c: order.index(c.category))  # stable: registration order


def select(ids: Iterable[str] = (), categories: Iterable[str] = ()) -> list[Check]:
    """The checks named by id or by category (all when none is named); an unknown name is
    a clear error, not an empty run."""
    everything = catalogue()
    ids, categories = list(ids), list(categories)
    unknown = [i for i in ids if i not in CATALOGUE] + [c for c in categories if c not in CATEGORY_WEIGHTS]
    if unknown:
        listed = ", ".join(c.id for c in everything)  # catalogue order, not the modules' import order
        raise ConfigError(
            f"unknown check or category: {', '.join(unknown)}; checks: {listed}; "
            f"categories: {', '.join(CATEGORY_WEIGHTS)}"
        )
    if not ids and not categories:
        return everything
    return [c for c in everything if c.id in ids or c.category in categories]


async def _run_one(check: Check, ctx: CheckContext, deadline_s: float) -> CheckResult:
    started = time.perf_counter()
    try:
        outcome = await asyncio.wait_for(check.measure(ctx), deadline_s)
    except TimeoutError:
        return CheckResult(
            check,
            "error",
            f"could not run: no result within {deadline_s:g}s",
            (),
            time.perf_counter() - started,
        )
    except Exception as exc:  # a check that cannot run counts as failed and says why
        reason = ctx.scrubber.text(describe_error(exc, ctx.timeout_s) if not str(exc) else str(exc))
        return CheckResult(check, "error", f"could not run: {reason}", (), time.perf_counter() - started)
    seconds = time.perf_counter() - started
    findings = tuple(type(f)(f.subject, ctx.scrubber.text(f.detail)) for f in outcome.findings)
    evidence = ctx.scrubber.text(outcome.evidence)
    if not outcome.applicable:
        return CheckResult(check, "not_applicable", evidence, (), seconds)
    return CheckResult(check, "failed" if findings else "passed", evidence, findings, seconds)


LATENCY_JUDGED = ("vextrus_nb.checks.services", "vextrus_nb.checks.performance")
"""Modules whose checks read the services' answers and their latency: only a selection with
one of them sweeps first (a run of the file checks alone reaches no server at all)."""


async def _sweep_first(ctx: CheckContext) -> None:
    """Every component's health probes, before the checks start: what the checks read of them
    (latency above all) is then the platform's answer to a sweep, not the platform's answer
    while the checklist's own protocol clients (boto3, librdkafka, pika threads) hold this
    process's interpreter. The checks read these results from the probe cache."""
    probes.preload_clients({c.probe for c in ctx.components()})
    # The datastores and brokers first (their probes are the ones that use threads), then the
    # services' HTTP health, each wave on its own.
    for wave in (
        [c for c in ctx.components() if c.kind != "service"],
        [c for c in ctx.components() if c.kind == "service"],
    ):
        wanted = []
        for component in wave:
            for check in component.health_paths or {"health": ""}:
                try:
                    wanted.append(ctx.probe(component.name, check))
                except Exception:  # no address for it: the check that asks will say so
                    continue
        await asyncio.gather(*wanted, return_exceptions=True)
    await ctx.remeasure_slow_alone()


async def run_checks_async(
    checks: list[Check],
    env: Environment,
    inventory: Inventory,
    timeout_s: float,
    concurrency: int,
    latency_budget_ms: float,
    outputs_dir: Path,
    scrubber: scrub.Scrubber,
    one_at_a_time: bool = False,
) -> list[CheckResult]:
    async with http_client(concurrency) as client:
        ctx = CheckContext.open(
            env,
            inventory,
            client,
            1 if one_at_a_time else concurrency,
            timeout_s,
            latency_budget_ms,
            outputs_dir,
            scrubber,
        )
        deadline = timeout_s + DEADLINE_SLACK_S
        if not one_at_a_time and any(c.measure.__module__ in LATENCY_JUDGED for c in checks):
            await _sweep_first(ctx)
        if one_at_a_time:
            # The baseline the benchmark compares with: one check, one probe, after another.
            return [await _run_one(c, ctx, deadline * 40) for c in checks]
        return list(await asyncio.gather(*(_run_one(c, ctx, deadline) for c in checks)))


def run_checklist(
    env: Environment,
    inventory: Inventory,
    checks: list[Check] | None = None,
    timeout_s: float | None = None,
    concurrency: int | None = None,
    latency_budget_ms: float | None = None,
    outputs_dir: Path | None = None,
    scrubber: scrub.Scrubber | None = None,
    one_at_a_time: bool = False,
) -> ChecklistResult:
    """Run the checks (all of them by default) against the live environment. Read-only."""
    settings = env.probe
    budget = settings.latency_budget_ms if latency_budget_ms is None else latency_budget_ms
    started = time.perf_counter()
    results = run_sync(
        run_checks_async(
            checks if checks is not None else catalogue(),
            env,
            inventory,
            settings.timeout_s if timeout_s is None else timeout_s,
            max(settings.concurrency, MIN_POOL) if concurrency is None else concurrency,
            budget,
            outputs_dir or paths.outputs_dir(),
            scrubber if scrubber is not None else scrub.Scrubber(),
            one_at_a_time,
        )
    )
    return ChecklistResult(results, time.perf_counter() - started, env.name, budget)
