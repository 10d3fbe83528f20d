"""Figures written as plotly JSON without plotly: valid to plotly itself, and drawn as
plotly.express draws the same chart."""

from __future__ import annotations

import pytest

from vextrus_nb.display import show_figure
from vextrus_nb.figures import PLOTLY_MIMETYPE, bars
from vextrus_nb.probes import ProbeResult
from vextrus_nb.smoke_sweep import STATUS_COLOURS, SmokeResult

ROWS = [
    {"component": "postgres", "latency_ms": 12.5, "status": "up", "check": "health", "detail": "ok"},
    {"component": "auth", "latency_ms": 730.0, "status": "degraded", "check": "ready", "detail": "slow"},
    {"component": "hr", "latency_ms": 2001.0, "status": "down", "check": "ready", "detail": "no answer"},
    {"component": "crm", "latency_ms": 4.0, "status": "up", "check": "ready", "detail": "ok"},
    {"component": "odd", "latency_ms": 1.0, "status": "unknown", "check": "ready", "detail": "?"},
]


def _chart() -> dict:
    return bars(
        ROWS, "component", "latency_ms", "status", STATUS_COLOURS, hover=["check", "detail"], title="T"
    ).to_dict()


def test_the_json_is_a_figure_plotly_accepts() -> None:
    import plotly.graph_objects as go

    go.Figure(_chart())  # plotly validates every property and raises on one it does not know


def test_a_figure_plotly_would_refuse_is_caught_by_that_check() -> None:
    import plotly.graph_objects as go

    broken = _chart()
    broken["data"][0]["colour"] = "red"
    with pytest.raises(ValueError, match="colour"):
        go.Figure(broken)


def test_traces_and_hover_match_plotly_express() -> None:
    import pandas as pd
    import plotly.express as px

    expected = px.bar(
        pd.DataFrame(ROWS),
        x="component",
        y="latency_ms",
        color="status",
        color_discrete_map=STATUS_COLOURS,
        hover_data=["check", "detail"],
    ).data
    ours = {t["name"]: t for t in _chart()["data"]}
    assert set(ours) == {t.name for t in expected}
    for theirs in expected:
        mine = ours[theirs.name]
        assert mine["x"] == list(theirs.x)
        assert mine["y"] == [float(v) for v in theirs.y]
        assert mine["customdata"] == [list(c) for c in theirs.customdata]
        assert mine["hovertemplate"] == theirs.hovertemplate
        if theirs.name in STATUS_COLOURS:
            assert mine["marker"]["color"] == theirs.marker.color


def test_groups_follow_the_colour_order_then_first_seen_and_skip_empty_ones() -> None:
    assert [t["name"] for t in _chart()["data"]] == ["up", "degraded", "down", "unknown"]
    only_up = bars(ROWS[:1], "component", "latency_ms", "status", STATUS_COLOURS).to_dict()
    assert [t["name"] for t in only_up["data"]] == ["up"]


def test_a_notebook_gets_the_plotly_mimetype_and_a_text_form() -> None:
    bundle = bars(
        ROWS, "component", "latency_ms", "status", STATUS_COLOURS, title="Health"
    )._repr_mimebundle_()
    assert set(bundle[PLOTLY_MIMETYPE]) == {"data", "layout", "config"}
    assert bundle["text/plain"] == "[figure: Health]"


def test_outside_a_kernel_the_figure_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    result = SmokeResult(
        [ProbeResult("auth", "health", "http", "http://x/health", "up", 3.2, "HTTP 200")], 0.1
    )
    show_figure(result.figure())
    assert capsys.readouterr().out.strip() == "[figure: Component health and probe latency]"
