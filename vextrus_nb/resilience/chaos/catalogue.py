"""The fault catalogue: how each kind of fault is injected and undone, per driver.

- kill-service: local, driver.stop (the sandbox's down); compose, SIGKILL of the container
  (Docker SDK); kube, driver.stop (scaled to 0). The undo: driver.start.
- stop-dependency: driver.stop and driver.start, every driver.
- latency, cut-connection: local, the fault proxy's link in front of the dependency; compose and
  kube: not supported (no proxy in their path, and no netem).
- fill-disk: Redis filled with ballast up to a storage limit, over its protocol (any driver).
- memory-limit: compose only: Redis grown past its container's limit (exit 137, OOMKilled).

Every undo is idempotent and needs only what the journal holds (`state`), so the next run can
undo what a killed run left injected.

fill-disk, and why Redis: no size-limited filesystem can be had unprivileged here (a tmpfs or a
loop mount needs CAP_SYS_ADMIN; /dev/shm is shared with PostgreSQL's dynamic shared memory, and
filling / would fill everyone's disk). Redis's storage is bounded by its own `maxmemory` with
`noeviction` (the sandbox's configuration), and a full Redis refuses writes with an OOM error,
which is what a client of a full datastore sees: the fault lowers the limit to what Redis holds
plus `headroom_mb`, fills that headroom with ballast until a write is refused (then pins the
limit just under what it holds, so no write squeezes in), and the undo
deletes the ballast and puts the limit back. Bounded by headroom_mb (at most 64 MB).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vextrus_nb.errors import FaultError
from vextrus_nb.resilience.chaos.context import ChaosContext
from vextrus_nb.resilience.chaos.experiment import Fault

SUPPORT: dict[str, dict[str, str]] = {
    # driver -> "" when supported, else why not
    "kill-service": {"local": "", "compose": "", "kube": ""},
    "stop-dependency": {"local": "", "compose": "", "kube": ""},
    "latency": {
        "local": "",
        "compose": "no fault proxy is in the path of the compose stack's containers (and no netem)",
        "kube": "needs a network fault injector in the cluster (no netem, no proxy here)",
    },
    "cut-connection": {
        "local": "",
        "compose": "no fault proxy is in the path of the compose stack's containers (and no netem)",
        "kube": "needs a network fault injector in the cluster (no netem, no proxy here)",
    },
    "fill-disk": {"local": "", "compose": "", "kube": ""},
    "memory-limit": {
        "local": "the sandbox's processes run without a memory limit (compose only)",
        "compose": "",
        "kube": "not supported by the kube driver yet (compose only)",
    },
}
FILLABLE = ("redis",)  # the datastores with a storage limit the fault can set and fill
GROWABLE = ("redis",)  # the containers whose workload the fault can grow through their protocol
BALLAST_PREFIX = "vextrus:chaos:ballast:"
BALLAST_CHUNK = 1024 * 1024
FULL_SLACK = 2 * 1024 * 1024
OOM_KEY = "vextrus:chaos:oom"
OOM_OVERSHOOT = 32 * 1024 * 1024  # beyond the limit, so the kernel cannot reclaim its way out
OOM_SEEN_WITHIN_S = 60.0
REDIS_RANGE_MAX = 512 * 1024 * 1024  # SETRANGE's largest offset (proto-max-bulk-len)


@dataclass
class Injected:
    """One fault in effect: what the journal holds to undo it, and what was seen injecting it."""

    id: str
    kind: str
    target: str
    state: dict[str, Any] = field(default_factory=dict)
    detail: str = ""
    injected_at: float = 0.0  # time.monotonic() when it took effect


def unsupported(kind: str, driver: str) -> str | None:
    """Why this fault kind cannot run on this driver, or None when it can."""
    reason = SUPPORT.get(kind, {}).get(driver)
    if reason is None:
        return f"no fault '{kind}' for the {driver} driver"
    return reason or None


def target_problem(fault: Fault, ctx: ChaosContext) -> str | None:
    """A target the fault cannot take, before anything runs."""
    names = ctx.inventory.components
    if fault.fault == "kill-service":
        if fault.target != "random" and (fault.target not in names or names[fault.target].kind != "service"):
            return f"kill-service: '{fault.target}' is not a service (or 'random')"
        return None
    if fault.target not in names:
        return f"{fault.fault}: no component '{fault.target}' in the inventory"
    if (
        fault.fault in ("stop-dependency", "latency", "cut-connection")
        and names[fault.target].kind == "service"
    ):
        return f"{fault.fault}: '{fault.target}' is a service, not a datastore or broker"
    if fault.fault == "fill-disk" and fault.target not in FILLABLE:
        return f"fill-disk: only {', '.join(FILLABLE)} has a storage limit the fault can fill here"
    if fault.fault == "memory-limit" and fault.target not in GROWABLE:
        return f"memory-limit: only {', '.join(GROWABLE)} can be grown past its limit through its protocol"
    return None


def choose_target(fault: Fault, ctx: ChaosContext, rng: random.Random) -> str:
    if fault.fault == "kill-service" and fault.target == "random":
        return rng.choice(sorted(ctx.service_names()))
    return fault.target


def inject(
    fault: Fault, target: str, ctx: ChaosContext, fault_id: str, note: Callable[[Injected], None]
) -> Injected:
    """Put the fault in effect. `note` is called with the undo's state before the platform is
    touched (and again as it grows), so a run killed half-way leaves what undoes it on disk."""
    reason = unsupported(fault.fault, ctx.env.driver)
    if reason:
        raise FaultError(f"{fault.fault} on {ctx.env.driver}: {reason}")
    injected = Injected(fault_id, fault.fault, target)
    note(injected)
    if fault.fault == "kill-service" and ctx.env.driver == "compose":
        _container(ctx, target).kill()  # SIGKILL: no graceful shutdown
        injected.detail = f"{target}'s container killed (SIGKILL)"
    elif fault.fault in ("kill-service", "stop-dependency"):
        ctx.driver.stop([target])
        injected.detail = f"{target} stopped through the {ctx.env.driver} driver"
    elif fault.fault in ("latency", "cut-connection"):
        link = _link(ctx, target)
        latency = float(getattr(fault, "latency_ms", 0.0))
        link.set_link("latency" if fault.fault == "latency" else "cut", latency)
        injected.detail = (
            f"every chunk to and from {target} delayed {latency:g} ms"
            if fault.fault == "latency"
            else f"connections to {target} reset"
        )
    elif fault.fault == "fill-disk":
        _fill(ctx, injected, int(getattr(fault, "headroom_mb", 8)), note)
    elif fault.fault == "memory-limit":
        _exceed_memory(ctx, injected, note)
    injected.injected_at = time.monotonic()
    note(injected)
    return injected


def undo(kind: str, target: str, state: dict[str, Any], ctx: ChaosContext) -> str:
    """Take the fault back; returns what was done. Raises when it could not be."""
    if kind in ("kill-service", "stop-dependency", "memory-limit"):
        ctx.driver.start([target])
        return f"{target} started through the {ctx.env.driver} driver"
    if kind in ("latency", "cut-connection"):
        link = ctx.link(target)
        if link is None:  # a link of the run's own process went with it
            return f"no link in front of {target} any more: nothing to restore"
        link.set_link("pass")
        return f"the link to {target} passes again"
    if kind == "fill-disk":
        return _drain(ctx, state)
    raise FaultError(f"no undo for a fault '{kind}'")


# -- network ------------------------------------------------------------------------
def _link(ctx: ChaosContext, target: str) -> Any:
    link = ctx.link(target)
    if link is None:
        raise FaultError(
            f"no fault proxy in front of {target}: the {ctx.env.driver} driver offers no link to it "
            "(see resilience/chaos/context.py, LinkFaults)"
        )
    return link


# -- fill-disk: Redis up to a storage limit --------------------------------------------
def _fill(ctx: ChaosContext, injected: Injected, headroom_mb: int, note: Callable[[Injected], None]) -> None:
    import redis

    from vextrus_nb.resilience.chaos.hypothesis import redis_client

    client: Any = redis_client(ctx)
    try:
        original = int(client.config_get("maxmemory")["maxmemory"])
        used = int(client.info("memory")["used_memory"])
        limit = used + headroom_mb * 1024 * 1024
        injected.state = {"original_maxmemory": original, "prefix": BALLAST_PREFIX, "limit": limit}
        note(injected)  # before the limit changes: a killed run still knows the original
        client.config_set("maxmemory", limit)
        chunks = 0
        ballast = b"\0" * BALLAST_CHUNK
        for chunks in range(1, 2 * headroom_mb + 2):  # a bound of its own, whatever Redis reports
            try:
                client.set(f"{BALLAST_PREFIX}{chunks}", ballast)
            except redis.exceptions.ResponseError as exc:  # OutOfMemoryError is one
                if "maxmemory" not in str(exc):
                    raise
                break
            injected.state["chunks"] = chunks
        else:
            raise FaultError(f"redis accepted {chunks} MB of ballast without reaching its limit")
        # Full, then pinned: a refused write counted its own query buffer, so up to a chunk may be
        # free once it is gone, and clients connecting and leaving move used memory by kilobytes.
        # The limit goes a slack below what the ballast left used: every write is refused.
        limit = max(1, int(client.info("memory")["used_memory"]) - FULL_SLACK)
        client.config_set("maxmemory", limit)
        injected.state["limit"] = limit
        note(injected)
        injected.detail = (
            f"redis filled to its limit ({limit / 2**20:.0f} MB, headroom {headroom_mb} MB): "
            f"{injected.state.get('chunks', 0)} ballast keys, then writes refused (OOM)"
        )
    finally:
        client.close()


def _drain(ctx: ChaosContext, state: dict[str, Any]) -> str:
    from vextrus_nb.resilience.chaos.hypothesis import redis_client

    client: Any = redis_client(ctx)
    try:
        deleted = 0
        for keys in _batches(client.scan_iter(match=f"{state.get('prefix', BALLAST_PREFIX)}*", count=500)):
            deleted += int(client.delete(*keys))
        if "original_maxmemory" in state:
            client.config_set("maxmemory", int(state["original_maxmemory"]))
        return f"{deleted} ballast keys deleted, maxmemory {state.get('original_maxmemory')} restored"
    finally:
        client.close()


def _batches(keys: Any, size: int = 500) -> Any:
    batch: list[Any] = []
    for key in keys:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- memory-limit: a container's workload past its limit (compose) ---------------------
def _container(ctx: ChaosContext, target: str) -> Any:
    containers = getattr(ctx.driver, "containers", None)
    found = containers().get(target) if containers else None
    if found is None:
        raise FaultError(f"no container for {target} in the compose project")
    return found


def _exceed_memory(ctx: ChaosContext, injected: Injected, note: Callable[[Injected], None]) -> None:
    from vextrus_nb.resilience.chaos.hypothesis import redis_client

    container = _container(ctx, injected.target)
    limit = int(container.attrs["HostConfig"].get("Memory") or 0)
    if not limit:
        raise FaultError(f"{injected.target}'s container has no memory limit to exceed")
    if limit + OOM_OVERSHOOT > REDIS_RANGE_MAX:
        raise FaultError(
            f"{injected.target}'s limit ({limit / 2**20:.0f} MB) is beyond what one value can fill"
        )
    since = datetime.now(UTC)
    injected.state = {"container": container.id, "limit_bytes": limit}
    note(injected)
    client: Any = redis_client(ctx)
    try:
        # One value past the limit: Redis zero-fills it, so every page is touched and counted.
        client.setrange(OOM_KEY, limit + OOM_OVERSHOOT, "x")
    except Exception:  # the server dies under the command: that is the fault taking effect
        pass
    finally:
        client.close()
    exit_code, oom_killed = _wait_for_oom(ctx, container, since)
    injected.state.update({"exit_code": exit_code, "oom_killed": oom_killed})
    injected.detail = (
        f"{injected.target} grew past its {limit / 2**20:.0f} MB limit: "
        f"exit {exit_code}, OOMKilled {oom_killed}"
    )


def _wait_for_oom(ctx: ChaosContext, container: Any, since: datetime) -> tuple[int | None, bool]:
    """The kernel's verdict through the Docker SDK: the container's `oom` and `die` events (a
    restart policy may start it again before its State can be read) and its State."""
    client = container.client
    deadline = time.monotonic() + OOM_SEEN_WITHIN_S
    exit_code, oom_killed = None, False
    while time.monotonic() < deadline:
        for event in client.events(
            since=since, until=datetime.now(UTC), decode=True, filters={"container": container.id}
        ):
            action = str(event.get("Action", ""))
            oom_killed = oom_killed or action == "oom"
            if action == "die":
                exit_code = int(event.get("Actor", {}).get("Attributes", {}).get("exitCode", -1))
        container.reload()
        run = container.attrs["State"]
        if not run.get("Running") and run.get("OOMKilled"):
            oom_killed, exit_code = True, int(run.get("ExitCode", exit_code or -1))
        if exit_code is not None and oom_killed:
            return exit_code, oom_killed
        time.sleep(0.2)
    raise FaultError(
        f"{container.name} was not OOM-killed within {OOM_SEEN_WITHIN_S:g} s "
        f"(exit {exit_code}, OOMKilled {oom_killed})"
    )
