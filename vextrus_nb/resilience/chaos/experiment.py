"""An experiment as data: parameters/chaos/<name>.yaml, validated here before anything runs.

    title: one line
    hypothesis:            # the steady state: every probe must hold before and after the method
      - {probe: health, name: services ready, components: [services], weight: 2}
      - {probe: latency, name: gateway p95, component: api-gateway, path: /health, requests: 20, p95_ms: 300}
      - {probe: write, name: postgres write, datastore: postgres, max_ms: 500, during: must_hold}
    method:                # faults from the catalogue (catalogue.py), injected in order
      - {fault: kill-service, target: random, duration_s: 5}
    rollbacks:             # beyond the undo of every injected fault, which always runs first
      - {action: start, components: [auth]}
    recovery_deadline_s: 60

A probe's `during` says what the fault may do to it: `may_fail` (the default: the fault is expected
to show, and its first failure is the time to detect) or `must_hold` (the platform claims to ride
the fault out: a failure during the method is a deviation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vextrus_nb import paths
from vextrus_nb.errors import ExperimentError

# Bounds of the engine, whatever an experiment says: a fault is held at most this long, the
# platform gets at most this long to recover, a latency or a ballast is at most this big.
MAX_DURATION_S = 300.0
MAX_RECOVERY_S = 600.0
MAX_LATENCY_MS = 10_000.0
MAX_BALLAST_MB = 64
SERVICES = "services"  # in a health probe's components: every service of the environment


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Probe(_Strict):
    name: str
    weight: float = Field(1.0, gt=0)
    during: Literal["may_fail", "must_hold"] = "may_fail"


class HealthProbe(_Probe):
    """Each named component (or every service, `services`) answers its health check: up."""

    probe: Literal["health"]
    components: list[str] = Field(min_length=1)


class LatencyProbe(_Probe):
    """`requests` GETs of a component's path, one after the other: all 2xx, p95 under `p95_ms`."""

    probe: Literal["latency"]
    component: str
    path: str = "/health"
    requests: int = Field(20, ge=1, le=1000)
    p95_ms: float = Field(gt=0)


class WriteProbe(_Probe):
    """One write to a datastore commits (PostgreSQL: an INSERT; Redis: a SET), within `max_ms`."""

    probe: Literal["write"]
    datastore: Literal["postgres", "redis"]
    max_ms: float | None = Field(None, gt=0)


Probe = Annotated[HealthProbe | LatencyProbe | WriteProbe, Field(discriminator="probe")]


class _Fault(_Strict):
    target: str
    duration_s: float = Field(5.0, ge=0, le=MAX_DURATION_S)


class KillService(_Fault):
    """A service stops at once (sandbox: down; compose: SIGKILL of its container). `random`
    picks one of the environment's services with the run's seed, recorded in the journal."""

    fault: Literal["kill-service"]


class StopDependency(_Fault):
    """A datastore or broker is stopped through the driver; the undo starts it again."""

    fault: Literal["stop-dependency"]


class Latency(_Fault):
    """Every chunk to and from the dependency waits `latency_ms` in the fault proxy."""

    fault: Literal["latency"]
    latency_ms: float = Field(gt=0, le=MAX_LATENCY_MS)


class CutConnection(_Fault):
    """The fault proxy drops every open connection to the dependency and refuses new ones."""

    fault: Literal["cut-connection"]


class FillDisk(_Fault):
    """The datastore's storage is filled to a limit `headroom_mb` above what it holds, with
    ballast, until it refuses writes; the undo deletes the ballast and restores the limit."""

    fault: Literal["fill-disk"]
    headroom_mb: int = Field(8, ge=1, le=MAX_BALLAST_MB)


class MemoryLimit(_Fault):
    """The container's workload grows past its memory limit: the kernel's OOM killer ends it
    (exit 137, OOMKilled); compose only."""

    fault: Literal["memory-limit"]


Fault = Annotated[
    KillService | StopDependency | Latency | CutConnection | FillDisk | MemoryLimit,
    Field(discriminator="fault"),
]


class StartComponents(_Strict):
    """A declared rollback: start these components through the driver."""

    action: Literal["start"]
    components: list[str] = Field(min_length=1)


class Experiment(_Strict):
    name: str = ""
    title: str
    hypothesis: list[Probe] = Field(min_length=1)
    method: list[Fault] = Field(min_length=1)
    rollbacks: list[StartComponents] = []
    recovery_deadline_s: float = Field(60.0, gt=0, le=MAX_RECOVERY_S)
    poll_s: float = Field(0.5, gt=0, le=10)

    def fault_kinds(self) -> list[str]:
        return [f.fault for f in self.method]


def experiments_dir() -> Path:
    return paths.parameters_dir() / "chaos"


def experiment_names() -> list[str]:
    return sorted(p.stem for p in experiments_dir().glob("*.yaml"))


def load_experiment(name: str) -> Experiment:
    """parameters/chaos/<name>.yaml, validated; ExperimentError names what is wrong."""
    if not name or "/" in name or name.startswith("."):
        raise ExperimentError(f"experiment must be a name in parameters/chaos/, not {name!r}")
    path = experiments_dir() / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(experiment_names()) or "none"
        raise ExperimentError(f"no experiment '{name}' in parameters/chaos/ (experiments: {known})")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ExperimentError(f"parameters/chaos/{name}.yaml is not YAML: {exc}") from None
    if not isinstance(document, dict):
        raise ExperimentError(f"parameters/chaos/{name}.yaml must be a mapping")
    try:
        return Experiment.model_validate({**document, "name": name})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ExperimentError(f"parameters/chaos/{name}.yaml: {problems}") from None
