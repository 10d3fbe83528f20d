"""The 8 deployment phases as data (`parameters/phases.yaml` plus the inventory's `phase:`),
and the plan of one phase: what starts, in which order, what is already up.

Order inside a phase is by waves: a component starts in the wave after the
last of its dependencies in the same phase (ZooKeeper, then Kafka; auth, then
the other core services). Components of one wave start together.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vextrus_nb import paths
from vextrus_nb.config import Component, Environment, Inventory, read_yaml, validation_message
from vextrus_nb.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from vextrus_nb.drivers import Driver, HealthState

Task = Literal["kafka_topics"]


class ReferenceStep(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    start: tuple[str, ...]
    sleep_s: Annotated[float, Field(ge=0)]


class PhaseSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    number: int = 0
    title: str
    notebook: str
    checks: tuple[str, ...] = ()
    tasks: tuple[Task, ...] = ()
    reference: tuple[ReferenceStep, ...] = ()

    @property
    def runbook(self) -> str:
        return f"deploy/{self.notebook}"


class PhaseTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    version: int = 1
    phases: dict[Annotated[int, Field(ge=1, le=8)], PhaseSpec]

    @model_validator(mode="after")
    def _all_eight(self) -> PhaseTable:
        missing = sorted(set(range(1, 9)) - set(self.phases))
        if missing:
            raise ValueError(f"phases missing: {', '.join(map(str, missing))}")
        for number, spec in self.phases.items():
            object.__setattr__(spec, "number", number)
        return self


@cache
def _load(path: Path) -> PhaseTable:
    from vextrus_nb.checks.execution import catalogue

    data = read_yaml(path)
    try:
        table = PhaseTable.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(path, exc)) from None
    known = {c.id for c in catalogue()}
    for spec in table.phases.values():
        unknown = sorted(set(spec.checks) - known)
        if unknown:
            raise ConfigError(
                f"invalid {path}: phase {spec.number} names unknown check(s) {', '.join(unknown)}"
            )
    return table


def load_phases() -> dict[int, PhaseSpec]:
    return dict(_load(paths.parameters_dir() / "phases.yaml").phases)


def phase_spec(phase: int) -> PhaseSpec:
    phases = load_phases()
    if phase not in phases:
        raise ConfigError(f"unknown phase {phase}; phases are 1 to 8")
    return phases[phase]


def phase_components(env: Environment, inventory: Inventory, phase: int) -> list[Component]:
    """The phase's components this environment runs (dev tools and excluded ones left out)."""
    return [c for c in inventory.phase(phase) if c.kind != "dev_tool" and c.name not in env.exclude]


def waves(components: list[Component]) -> list[list[str]]:
    """Start order inside a phase: each component one wave after its latest in-phase dependency."""
    names = {c.name for c in components}
    wave: dict[str, int] = {}
    for component in components:  # the inventory's start order: dependencies come first
        inside = [wave[d] for d in component.depends_on if d in names]
        wave[component.name] = 1 + max(inside) if inside else 0
    grouped: list[list[str]] = [[] for _ in range(max(wave.values(), default=-1) + 1)]
    for component in components:
        grouped[wave[component.name]].append(component.name)
    return grouped


@dataclass(frozen=True)
class PlannedComponent:
    component: str
    wave: int
    depends_on: tuple[str, ...]
    health: str  # what the driver says before anything is done
    action: str  # start | none (already healthy)


@dataclass
class PhasePlan:
    spec: PhaseSpec
    waves: list[list[str]]
    components: list[PlannedComponent]
    earlier: list[str]  # the earlier phases' components, which must be healthy first

    @property
    def to_start(self) -> list[str]:
        return [c.component for c in self.components if c.action == "start"]

    def table(self) -> pd.DataFrame:
        import pandas as pd

        rows = [
            {
                "order": c.wave + 1,
                "component": c.component,
                "depends on": ", ".join(c.depends_on) or "-",
                "health now": c.health,
                "action": "start, wait until healthy" if c.action == "start" else "none: already healthy",
            }
            for c in self.components
        ]
        rows += [
            {
                "order": len(self.waves) + 1,
                "component": f"task: {t}",
                "depends on": "the phase above",
                "health now": "-",
                "action": _TASK_TEXT[t],
            }
            for t in self.spec.tasks
        ]
        return pd.DataFrame(rows, columns=["order", "component", "depends on", "health now", "action"])


_TASK_TEXT = {"kafka_topics": "create the domain-event topics that are missing"}


def plan_phase(
    env: Environment, inventory: Inventory, phase: int, health: dict[str, HealthState]
) -> PhasePlan:
    spec = phase_spec(phase)
    components = phase_components(env, inventory, phase)
    order = waves(components)
    wave_of = {name: i for i, group in enumerate(order) for name in group}
    planned = [
        PlannedComponent(
            component=c.name,
            wave=wave_of[c.name],
            depends_on=c.depends_on,
            health=health[c.name].health if c.name in health else "unknown",
            action="none" if c.name in health and health[c.name].health == "healthy" else "start",
        )
        for c in components
    ]
    earlier = [c.name for p in range(1, phase) for c in phase_components(env, inventory, p)]
    return PhasePlan(spec, order, planned, earlier)


def current_health(driver: Driver, names: list[str]) -> dict[str, HealthState]:
    return driver.health(names) if names else {}
