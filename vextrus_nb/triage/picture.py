"""The dependency picture: every component placed by deployment phase, its
dependencies drawn as edges, coloured by what triage found, the root causes
marked, and the edges along which a root cause takes others down in red."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from vextrus_nb.config import Component
from vextrus_nb.triage.model import Finding

COLOURS = {
    "root cause": "#cf222e",
    "caused by another": "#fb8500",
    "minor finding": "#bf8700",
    "depends on a root cause": "#f4d35e",
    "healthy": "#1a7f37",
}


def component_roles(components: list[Component], findings: list[Finding]) -> dict[str, str]:
    by_component: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_component[finding.component].append(finding)
    roots = {f.component for f in findings if f.root_cause and f.severity in ("critical", "high")}
    downstream = {c for f in findings if f.component in roots for c in f.affected}
    roles = {}
    for component in components:
        own = by_component.get(component.name, [])
        if component.name in roots:
            roles[component.name] = "root cause"
        elif any(not f.root_cause for f in own):
            roles[component.name] = "caused by another"
        elif own:
            roles[component.name] = "minor finding"
        elif component.name in downstream or roots & set(component.depends_on):
            roles[component.name] = "depends on a root cause"
        else:
            roles[component.name] = "healthy"
    return roles


def _positions(components: list[Component]) -> dict[str, tuple[float, float]]:
    by_phase: dict[int, list[str]] = defaultdict(list)
    for component in components:
        by_phase[component.phase or 9].append(component.name)
    return {
        name: (phase, (len(names) - 1) / 2 - i)
        for phase, names in by_phase.items()
        for i, name in enumerate(names)
    }


def dependency_figure(components: list[Component], findings: list[Finding]) -> Any:
    import plotly.graph_objects as go

    roles = component_roles(components, findings)
    where = _positions(components)
    titles: dict[str, list[str]] = defaultdict(list)
    for finding in findings:
        titles[finding.component].append(f"#{finding.rank} {finding.title}")
    roots = {n for n, r in roles.items() if r == "root cause"}
    fig = go.Figure()
    for broken in (False, True):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for component in components:
            for dep in component.depends_on:
                if dep not in where:
                    continue
                if broken != (dep in roots and roles[component.name] != "healthy"):
                    continue
                (x0, y0), (x1, y1) = where[dep], where[component.name]
                xs += [x0, x1, None]
                ys += [y0, y1, None]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"color": "#cf222e" if broken else "#d0d7de", "width": 2.5 if broken else 1},
                hoverinfo="skip",
                name="takes down" if broken else "depends on",
                showlegend=broken,
            )
        )
    for role, colour in COLOURS.items():
        names = [c.name for c in components if roles[c.name] == role]
        if not names:
            continue
        fig.add_trace(
            go.Scatter(
                x=[where[n][0] for n in names],
                y=[where[n][1] for n in names],
                mode="markers+text",
                text=names,
                textposition="middle right",
                marker={
                    "size": 22 if role == "root cause" else 13,
                    "color": colour,
                    "symbol": "x" if role == "root cause" else "circle",
                    "line": {"width": 1, "color": "#24292f"},
                },
                hovertext=["<br>".join([n, *titles.get(n, ["no finding"])]) for n in names],
                hoverinfo="text",
                name=role,
            )
        )
    tallest = max((sum(1 for c in components if c.phase == p) for p in range(1, 10)), default=1)
    fig.update_layout(
        title="What is down, and what it takes down with it (left to right: deployment phases 1-8)",
        xaxis={"title": "deployment phase", "tickvals": list(range(1, 9)), "range": [0.5, 9.2]},
        yaxis={"visible": False},
        height=max(450, 38 * tallest + 200),  # room for the busiest phase's column
        legend={"orientation": "h", "y": -0.12},
        plot_bgcolor="white",
    )
    return fig
