"""From symptoms to a ranked diagnosis, following the dependency graph.

1. Signals of one symptom on one component become one finding; a symptom the
   rule table folds into another (`merge_into`) joins that finding, and a finding
   that stands for others of its component (`absorbs`: a dead primary's `down`)
   takes their evidence.
2. A component is failing when it has a finding of severity high or critical.
3. Components are visited dependencies first. A finding is a consequence when
   a failing component it depends on (in the inventory, or named by its
   readiness indicators) explains it, unless the rule says the symptom is the
   component's own fault (a datastore's internal state). Otherwise it is a
   root cause.
4. Root causes rank first: by severity, then by how many components they take
   down with them, then by the component's criticality. Consequences follow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from vextrus_nb.config import Inventory
from vextrus_nb.triage.model import Finding, Signal
from vextrus_nb.triage.rules import INCIDENT_SEVERITIES, SEVERITY_WEIGHTS, RuleTable

CRITICALITY_WEIGHTS = {"critical": 4, "high": 3, "medium": 2, "low": 1, "none": 0}


@dataclass
class _Group:
    component: str
    symptom: str
    signals: list[Signal] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    explained_by: frozenset[str] = frozenset()
    affected: set[str] = field(default_factory=set)

    @property
    def subject(self) -> str:
        return "; ".join(dict.fromkeys(s.subject for s in self.signals if s.subject))

    @property
    def implicates(self) -> set[str]:
        return {c for s in self.signals for c in s.implicates}

    @property
    def magnitude(self) -> float:
        return max((s.magnitude for s in self.signals), default=0.0)


def diagnose(
    signals: list[Signal],
    inventory: Inventory,
    rules: RuleTable,
    driver: str,
    template_values: dict[str, dict[str, str]] | None = None,
    log_lines: dict[str, list[str]] | None = None,
) -> list[Finding]:
    """Ranked findings; `template_values[component]` fills the rule's placeholders (ports, paths)."""
    groups = _group(signals, rules)
    severity = {id(g): rules.get(g.symptom).severity for g in groups}
    failing = {g.component for g in groups if severity[id(g)] in INCIDENT_SEVERITIES}

    @cache
    def upstream(name: str) -> frozenset[str]:
        component = inventory.components.get(name)
        deps = component.depends_on if component else ()
        return frozenset(deps).union(*(upstream(d) for d in deps)) if deps else frozenset()

    order = {name: i for i, name in enumerate(inventory.start_order)}
    # Components failing for a reason of their own: what explains the failures downstream of them.
    # (A component with only a minor finding of its own, a restart say, explains nothing.)
    root_failures: set[str] = set()
    for group in sorted(groups, key=lambda g: order.get(g.component, len(order))):
        causes = (upstream(group.component) | group.implicates) & failing - {group.component}
        if causes and not rules.get(group.symptom).own_fault:
            group.explained_by = (causes & root_failures) or causes
        elif severity[id(group)] in INCIDENT_SEVERITIES:
            root_failures.add(group.component)
    for group in groups:
        group.affected = {c for s in group.signals for c in s.affected}
        if not group.explained_by:
            group.affected |= {g.component for g in groups if group.component in g.explained_by}
        group.affected.discard(group.component)

    def rank_key(group: _Group) -> tuple:
        component = inventory.components.get(group.component)
        return (
            bool(group.explained_by),
            -SEVERITY_WEIGHTS[severity[id(group)]],
            -len(group.affected),
            -CRITICALITY_WEIGHTS[component.criticality if component else "none"],
            -group.magnitude,
            order.get(group.component, len(order)),
        )

    findings = []
    for rank, group in enumerate(sorted(groups, key=rank_key), start=1):
        rule = rules.get(group.symptom)
        values = {
            **(template_values or {}).get(group.component, {}),
            "component": group.component,
            "subject": group.subject or group.component,
            "implicates": ", ".join(sorted(group.implicates)) or "a dependency",
            "affected": ", ".join(sorted(group.affected)) or "no other component yet",
        }
        findings.append(
            Finding(
                rank=rank,
                component=group.component,
                symptom=group.symptom,
                severity=rule.severity,
                title=rule.text("title", **values),
                likely_cause=rule.text("likely_cause", **values),
                first_action=rule.text("first_action", **values),
                evidence=list(dict.fromkeys(group.evidence)),
                root_cause=not group.explained_by,
                explained_by=sorted(group.explained_by),
                affected=sorted(group.affected),
                commands=rule.commands_for(driver, **values),
                log_lines=(log_lines or {}).get(group.component, []),
                magnitude=group.magnitude,
            )
        )
    return findings


def _group(signals: list[Signal], rules: RuleTable) -> list[_Group]:
    groups: dict[tuple[str, str], _Group] = {}
    for signal in signals:
        group = groups.setdefault(
            (signal.component, signal.symptom), _Group(signal.component, signal.symptom)
        )
        group.signals.append(signal)
        group.evidence.append(signal.evidence)
    merged: dict[tuple[str, str], _Group] = {}
    for key, group in groups.items():
        target = rules.get(group.symptom).merge_into
        if target and (group.component, target) in groups:
            into = groups[(group.component, target)]
            into.evidence += group.evidence
            continue
        merged[key] = group
    for component, symptom in list(merged):
        if (kept := merged.get((component, symptom))) is None:
            continue  # itself absorbed by an earlier finding
        for absorbed in rules.get(symptom).absorbs:
            if (taken := merged.pop((component, absorbed), None)) is not None:
                kept.evidence += taken.evidence
    return list(merged.values())
