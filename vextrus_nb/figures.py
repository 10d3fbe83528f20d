"""Plotly figures written as the JSON a notebook keeps (`application/vnd.plotly.v1+json`).

JupyterLab and the evidence report draw that JSON with plotly.js; nothing in between needs plotly
itself. Building a 33-bar chart through plotly.express cost the smoke run 1.3 s of its 4 s
(importing plotly.express and pandas' plotting glue, then validating every trace property), for
a figure this module writes in a millisecond. The charts here follow plotly.express's
conventions (one trace per colour group, the same hover text) and plotly's default look, so they
read like the plotly.express figures beside them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"

# Plotly's default template ("plotly") as it shows on a 2-D chart.
_AXIS_LOOK: dict[str, Any] = {
    "automargin": True,
    "gridcolor": "white",
    "linecolor": "white",
    "ticks": "",
    "zerolinecolor": "white",
    "zerolinewidth": 2,
}
_LOOK: dict[str, Any] = {
    "font": {"color": "#2a3f5f"},
    "paper_bgcolor": "white",
    "plot_bgcolor": "#E5ECF6",
    "hovermode": "closest",
    "hoverlabel": {"align": "left"},
}


@dataclass
class Figure:
    """A chart as plotly.js reads it; a notebook displays it through `_repr_mimebundle_`."""

    data: list[dict[str, Any]]
    layout: dict[str, Any]

    @property
    def title(self) -> str:
        return str(self.layout.get("title", {}).get("text", ""))

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "layout": self.layout}

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {
            PLOTLY_MIMETYPE: {**self.to_dict(), "config": {}},
            "text/plain": f"[figure: {self.title or 'untitled'}]",
        }


def bars(
    rows: Sequence[Mapping[str, Any]],
    x: str,
    y: str,
    colour: str,
    colours: Mapping[str, str],
    hover: Sequence[str] = (),
    title: str = "",
    y_title: str = "",
    height: int = 450,
    tick_angle: int = 0,
) -> Figure:
    """One bar per row, one trace per value of `colour` (the order of `colours`, then any other in
    the order first seen), each row's `hover` fields in its tooltip: plotly.express's `bar`."""
    groups: dict[Any, list[Mapping[str, Any]]] = {value: [] for value in colours}
    for row in rows:
        groups.setdefault(row[colour], []).append(row)
    shared_hover = [f"{x}=%{{x}}", f"{y}=%{{y}}"]
    shared_hover += [f"{name}=%{{customdata[{i}]}}" for i, name in enumerate(hover)]
    data = []
    for value, members in groups.items():
        if not members:
            continue
        trace: dict[str, Any] = {
            "type": "bar",
            "name": str(value),
            "legendgroup": str(value),
            "showlegend": True,
            "orientation": "v",
            "x": [row[x] for row in members],
            "y": [row[y] for row in members],
            "customdata": [[row[name] for name in hover] for row in members],
            "hovertemplate": "<br>".join([f"{colour}={value}", *shared_hover]) + "<extra></extra>",
            "xaxis": "x",
            "yaxis": "y",
        }
        if value in colours:
            trace["marker"] = {"color": colours[value]}
        data.append(trace)
    layout = {
        **_LOOK,
        "barmode": "relative",
        "height": height,
        "legend": {"title": {"text": colour}, "tracegroupgap": 0},
        "title": {"text": title, "x": 0.05},
        "xaxis": {**_AXIS_LOOK, "tickangle": tick_angle, "title": {"text": x, "standoff": 15}},
        "yaxis": {**_AXIS_LOOK, "title": {"text": y_title or y, "standoff": 15}},
    }
    return Figure(data, layout)
