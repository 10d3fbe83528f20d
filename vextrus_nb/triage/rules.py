"""The rule table (parameters/triage_rules.yaml): symptom -> likely cause, first action."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from vextrus_nb import paths
from vextrus_nb.config import Severity, read_yaml, validation_message
from vextrus_nb.errors import ConfigError

SEVERITY_WEIGHTS: dict[str, int] = {"critical": 4, "high": 3, "medium": 2, "low": 1}
# Findings at these severities mean an incident is on: the triage run fails.
INCIDENT_SEVERITIES = ("critical", "high")
DRIVERS = ("local", "compose", "kube")


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    symptom: str
    severity: Severity
    title: str
    likely_cause: str
    first_action: str
    own_fault: bool = False
    merge_into: str | None = None
    # Symptoms of the same component this finding stands for: a dead primary's `down` (health)
    # and `not_running` (driver) are its evidence, not rows of their own.
    absorbs: tuple[str, ...] = ()
    commands: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_drivers(self) -> Rule:
        unknown = set(self.commands) - set(DRIVERS)
        if unknown:
            raise ValueError(f"commands for unknown driver(s): {', '.join(sorted(unknown))}")
        return self

    def commands_for(self, driver: str, **values: str) -> list[str]:
        return [_fill(c, values) for c in self.commands.get(driver, ())]

    def text(self, field_name: str, **values: str) -> str:
        return _fill(getattr(self, field_name), values)


class RuleTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[int, Field(ge=1)] = 1
    rules: tuple[Rule, ...]

    @model_validator(mode="after")
    def _one_rule_per_symptom(self) -> RuleTable:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.symptom in seen:
                raise ValueError(f"two rules for symptom '{rule.symptom}'")
            seen.add(rule.symptom)
        for rule in self.rules:
            if rule.merge_into and rule.merge_into not in seen:
                raise ValueError(f"rule '{rule.symptom}' merges into unknown symptom '{rule.merge_into}'")
            if unknown := set(rule.absorbs) - seen:
                raise ValueError(
                    f"rule '{rule.symptom}' absorbs unknown symptom(s) {', '.join(sorted(unknown))}"
                )
        return self

    def get(self, symptom: str) -> Rule:
        for rule in self.rules:
            if rule.symptom == symptom:
                return rule
        raise ConfigError(f"no triage rule for symptom '{symptom}'; add one to triage_rules.yaml")


def _fill(template: str, values: dict[str, str]) -> str:
    try:
        return template.format(**values)
    except (KeyError, IndexError, ValueError):
        return template  # a placeholder we do not know is shown as written, not a crash mid-incident


def rules_path() -> Path:
    return paths.parameters_dir() / "triage_rules.yaml"


@cache
def _load(path: Path, mtime: float) -> RuleTable:
    try:
        return RuleTable.model_validate(read_yaml(path))
    except ValidationError as exc:
        raise ConfigError(validation_message(path, exc)) from None


def load_rules(path: Path | None = None) -> RuleTable:
    path = path or rules_path()
    if not path.is_file():
        raise ConfigError(f"triage rule table not found: {path}")
    return _load(path, path.stat().st_mtime)
