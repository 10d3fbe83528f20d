"""The auditor's view: every output notebook rendered to standalone HTML, and an
index page listing every run with the ledger's verdict, filters and charts.

Everything works offline from file://: plotly.js is written once into the
report folder, and each page loads it from there, never from a CDN.
"""

from __future__ import annotations

import html
import json
import os
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from vextrus_nb import paths
from vextrus_nb.evidence import declared, ledger
from vextrus_nb.evidence.declared import Declarations, Figure, Plot, Trend

PLOTLY_MIME = "application/vnd.plotly.v1+json"
PLOTLY_FILE = "plotly.min.js"
_NBCONVERT_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "nbconvert"


@dataclass(frozen=True)
class Report:
    index: Path
    runs: int
    rendered: int
    verdict: ledger.LedgerVerdict


def _record_markdown(entry: dict[str, Any]) -> str:
    rows = [
        ("Runbook", entry.get("runbook")),
        ("Status", str(entry.get("status", "")).upper()),
        ("Environment", entry.get("env")),
        ("Operator", entry.get("operator")),
        ("Host", entry.get("host")),
        ("Version (git commit)", entry.get("git_commit")),
        ("Package", entry.get("package_version")),
        ("Started (UTC)", entry.get("started_at")),
        ("Ended (UTC)", entry.get("ended_at")),
        ("Run id", entry.get("run_id")),
        ("Executed by", entry.get("executed_by") or "-"),
        ("Parameters (redacted)", json.dumps(entry.get("parameters", {}))),
        ("Cause", entry.get("cause") or "-"),
        ("Resume from", entry.get("resume_from") or "-"),
        ("Notebook sha256", entry.get("output_sha256")),
        ("Ledger hash", entry.get("hash")),
    ]
    lines = ["# Run record", "", "| | |", "|---|---|"]
    lines += [f"| {k} | `{str(v).replace('|', '/')}` |" for k, v in rows]
    return "\n".join(lines)


DEFAULT_PLOT_HEIGHT = 450


def _plotly_html(figure: dict[str, Any], first: bool) -> str:
    div = f"plot-{uuid.uuid4().hex[:12]}"
    spec = json.dumps({"data": figure.get("data", []), "layout": figure.get("layout", {})})
    loader = f'<script src="../{PLOTLY_FILE}"></script>' if first else ""
    height = int(
        figure.get("layout", {}).get("height") or DEFAULT_PLOT_HEIGHT
    )  # the figure's own, if it says
    return (
        f'{loader}<div id="{div}" class="vextrus-plot" style="height:{height}px"></div>'
        f"<script>Plotly.newPlot({json.dumps(div)}, {spec}.data, {spec}.layout, "
        '{"responsive": true});</script>'
    )


_EXPORTERS: dict[str, Any] = {}


def _exporter(cls: Any) -> Any:
    """One exporter per process: its templates load once, not once per notebook."""
    if "html" not in _EXPORTERS:
        _EXPORTERS["html"] = cls(
            template_name="vextrus_offline", extra_template_basedirs=[str(_NBCONVERT_TEMPLATES)]
        )
    return _EXPORTERS["html"]


def render_notebook(notebook: Path, entry: dict[str, Any], target: Path) -> None:
    """One executed notebook to standalone HTML, opening with its run record."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(notebook, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(_record_markdown(entry)))
    first = True
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                data["text/html"] = _plotly_html(data.pop(PLOTLY_MIME), first)
                first = False
    body, _ = _exporter(HTMLExporter).from_notebook_node(nb)
    target.write_text(body, encoding="utf-8")


def _render_job(job: tuple[str, dict[str, Any], str]) -> str | None:
    notebook, entry, target = job
    try:
        render_notebook(Path(notebook), entry, Path(target))
    except Exception as exc:  # one unreadable notebook must not cost the auditor the others
        return f"{notebook}: {type(exc).__name__}: {exc}"
    return None


def _charts(
    entries: list[dict[str, Any]], outputs_dir: Path | None = None, evidence: Declarations | None = None
) -> list[tuple[str, str]]:
    import pandas as pd
    import plotly.express as px

    charts: list[tuple[str, str]] = []
    if not entries:
        return charts
    frame = pd.DataFrame(
        {
            "day": [e.get("started_at", "")[:10] for e in entries],
            "status": [e.get("status", "?") for e in entries],
        }
    )
    per_day = frame.value_counts(["day", "status"]).rename("runs").reset_index()
    colours = {
        "passed": "#1a7f37",
        "failed": "#cf222e",
        "error": "#8250df",
        "abandoned": "#9a6700",
        "refused": "#57606a",
    }
    fig = px.bar(per_day, x="day", y="runs", color="status", color_discrete_map=colours, title="Runs per day")
    charts.append(("runs-per-day", fig.to_html(full_html=False, include_plotlyjs=False)))
    for runbook, declared_evidence in (declared.discover() if evidence is None else evidence).items():
        for trend in declared_evidence.trends:
            charts += trend_charts(runbook, trend, entries, outputs_dir)
    return charts


# -- the runbooks' declared trend charts (evidence/declared.py) ------------------------------------


def _number(value: Any) -> float | None:
    """A summary value as a point's value, or None when it is not a number."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _points(plot: Plot, summary: dict[str, Any]) -> list[tuple[str, float]]:
    """(line, value) for each point this plot finds in one run's summary."""
    value = summary.get(plot.key)
    if plot.each:
        if not isinstance(value, dict):
            return []
        found = []
        for name, figure in value.items():
            if plot.field is not None:
                figure = figure.get(plot.field) if isinstance(figure, dict) else None
            number = _number(figure)
            if number is not None:
                found.append((str(name), number))
        return found
    number = _number(value)
    if number is None:
        return []
    line = str(summary.get(plot.line_from)) if plot.line_from else plot.label or plot.key
    return [(line, number)]


def trend_series(
    runbook: str, trend: Trend, entries: list[dict[str, Any]], outputs_dir: Path | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Per environment ("" for a chart of every environment), the points of every run of the
    runbook that the trend draws, in the order given: one row per point, its `line`, `value`,
    whether it is on the `lower` axis, and the run's `hover` figures. A run is drawn when a plot
    that is `enough` found a point in it, and, as declared, its summary says it ran live and its
    notebook still verifies (`ledger.is_sealed`)."""
    series: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        summary = entry.get("summary")
        summary = summary if isinstance(summary, dict) else {}
        if entry.get("runbook") != runbook or (trend.live_only and summary.get("dry_run") is not False):
            continue
        found = [(plot, point) for plot in trend.plots for point in _points(plot, summary)]
        if not any(plot.enough for plot, _ in found):
            continue
        if trend.sealed_only and not ledger.is_sealed(entry, outputs_dir):
            continue
        hover = {
            f.key: f.missing
            if summary.get(f.key) in (None, "") and f.missing is not None
            else summary.get(f.key)
            for f in trend.hover
        }
        series.setdefault(str(entry.get("env")) if trend.per_environment else "", []).extend(
            {
                "started_at": entry.get("started_at"),
                "run_id": entry.get("run_id"),
                "status": entry.get("status"),
                "line": line,
                "value": value,
                "lower": plot.lower,
                "hover": hover,
            }
            for plot, (line, value) in found
        )
    return dict(sorted(series.items()))


def trend_charts(
    runbook: str, trend: Trend, entries: list[dict[str, Any]], outputs_dir: Path | None = None
) -> list[tuple[str, str]]:
    """The charts of `trend_series`: one per environment named `<runbook>:<env>` (or one named
    `<runbook>`), or one line of text naming what is missing when no run is drawn."""
    series = trend_series(runbook, trend, entries, outputs_dir)
    if not series:
        which = ("sealed " if trend.sealed_only else "") + ("live " if trend.live_only else "")
        text = f"{trend.empty or trend.title}: no {which}{runbook} runs yet."
        return [(runbook, f"<p class='empty'>{html.escape(text)}</p>")]
    return [
        (
            f"{runbook}:{env}" if trend.per_environment else runbook,
            _trend_figure(trend, rows, env).to_html(full_html=False, include_plotlyjs=False),
        )
        for env, rows in series.items()
    ]


def _trend_figure(trend: Trend, rows: list[dict[str, Any]], env: str) -> Any:
    import plotly.graph_objects as go

    two_axes = any(p.lower for p in trend.plots)
    if two_axes:
        from plotly.subplots import make_subplots

        fig = make_subplots(
            rows=2,
            cols=1,
            shared_xaxes=True,
            row_heights=[0.7, 0.3],
            vertical_spacing=0.08,
            subplot_titles=(trend.upper_title, trend.lower_title),
        )
    else:
        fig = go.Figure()
    shown = "".join(
        f"<br>{f.name} %{{customdata[{i + 1}]}}" + (f" {f.unit}" if f.unit else "")
        for i, f in enumerate(trend.hover)
    )
    unit = f" {trend.unit}" if trend.unit else ""
    run = len(trend.hover) + 1
    for name, lower in dict.fromkeys((r["line"], r["lower"]) for r in rows):
        drawn = [r for r in rows if r["line"] == name and r["lower"] == lower]
        trace = go.Scatter(
            x=[r["started_at"] for r in drawn],
            y=[r["value"] for r in drawn],
            name=name,
            mode="lines+markers",
            customdata=[[r["status"], *r["hover"].values(), r["run_id"]] for r in drawn],
            hovertemplate=f"%{{y}}{unit}<br>%{{customdata[0]}}{shown}<br>run %{{customdata[{run}]}}"
            f"<extra>{html.escape(name)}</extra>",
        )
        if two_axes:
            fig.add_trace(trace, row=2 if lower else 1, col=1)
        else:
            fig.add_trace(trace)
    if two_axes:
        fig.update_yaxes(title_text=trend.upper_axis, row=1, col=1)
        fig.update_yaxes(title_text=trend.lower_axis, rangemode="tozero", row=2, col=1)
    else:
        fig.update_layout(
            xaxis_title="started_at", yaxis_title=trend.value_title, legend_title_text=trend.line_title
        )
    fig.update_layout(title=trend.title.replace("{env}", env))
    if trend.height:
        fig.update_layout(height=trend.height)
    return fig


# -- the index's rows -------------------------------------------------------------


def _started(entry: dict[str, Any]) -> datetime:
    """When the run started, for ordering; an entry without a readable time sorts oldest."""
    try:
        moment = datetime.fromisoformat(str(entry.get("started_at") or ""))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def sorted_by_start(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest start first; runs that started at the same moment keep the ledger's later-first order."""
    ordered = sorted(enumerate(entries), key=lambda pair: (_started(pair[1]), pair[0]), reverse=True)
    return [entry for _, entry in ordered]


MODES = ("dry run", "live", "read-only", "wrote", "unknown")


def run_mode(entry: dict[str, Any]) -> str:
    """ "dry run" or "live" from the effective `dry_run` parameter of a destructive runbook;
    "read-only" for a runbook that changes nothing whatever dry_run says (the record's
    `destructive` is false); "wrote" for either of those whose summary lists what it wrote
    (`writes`); "unknown" when the entry records neither (older entries)."""
    summary = entry.get("summary")
    # A run that wrote something (a backup set, scratch databases) is never a plain dry run or
    # read-only, whatever dry_run said: its record lists what it wrote.
    wrote = bool(isinstance(summary, dict) and summary.get("writes"))
    if entry.get("destructive") is False:
        return "wrote" if wrote else "read-only"
    parameters = entry.get("parameters")
    value = parameters.get("dry_run") if isinstance(parameters, dict) else None
    if isinstance(value, str):
        value = {"true": True, "false": False}.get(value.strip().lower())
    if value is True:
        return "wrote" if wrote else "dry run"
    if value is False:
        return "live"
    return "unknown"


VIAS = ("headless", "interactive", "notebook")
_VIA = {"vextrus-nb run": "headless", "vextrus-nb open": "interactive", "notebook": "notebook"}


def run_via(entry: dict[str, Any]) -> str:
    """How the run was executed: headless (`vextrus-nb run`), interactive (`vextrus-nb open`,
    JupyterLab), notebook (a kernel with no runner around it), or "" when not recorded."""
    return _VIA.get(str(entry.get("executed_by") or ""), "")


MAX_FIGURES = 5
MAX_FIGURE_CHARS = 40


def _figure(value: Any, count_lists: bool) -> str | None:
    """A value short enough for the index, or None: no dicts, no long text, lists only counted."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(round(value, 2)) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return value if 0 < len(value) <= MAX_FIGURE_CHARS and "\n" not in value else None
    if isinstance(value, list | tuple) and count_lists:
        return str(len(value))
    return None


def key_figures(
    summary: Any, figures: tuple[Figure, ...] = (), limit: int = MAX_FIGURES
) -> list[tuple[str, str]]:
    """A few scalar figures from a run's summary: the runbook's declared key figures first (in
    its order; a list among them is shown as its length), then the others in the summary's own
    order; never a dict or a list dumped whole."""
    if not isinstance(summary, dict):
        return []
    declared_keys = [f.key for f in figures]
    shown_figures: list[tuple[str, str]] = []
    known = [k for k in declared_keys if k in summary]
    others = [k for k in summary if k not in declared_keys]
    for key in [*known, *others]:
        shown = _figure(summary[key], count_lists=key in declared_keys)
        if shown is not None:
            shown_figures.append((str(key), shown))
        if len(shown_figures) >= limit:
            break
    return shown_figures


def figure_titles(figures: tuple[Figure, ...]) -> dict[str, str]:
    """What each declared key figure is, for the index's tooltip: "RTO (s)"."""
    return {f.key: f"{f.name} ({f.unit})" if f.unit else f.name for f in figures if f.label or f.unit}


MAX_CAUSE_CHARS = 300


def run_cause(entry: dict[str, Any]) -> str:
    """Why a run did not pass: its cause (already scrubbed), else its failures; "" for a pass."""
    if entry.get("status") == "passed":
        return ""
    cause = str(entry.get("cause") or "").strip()
    failures = [str(f) for f in entry.get("failures") or [] if str(f).strip()]
    if not cause:
        return "; ".join(failures)
    extra = [f for f in failures if f not in cause]
    return "; ".join([cause, *extra])


def _row(entry: dict[str, Any], link: str | None, evidence: Declarations) -> dict[str, Any]:
    cause = run_cause(entry)
    declared_figures = evidence.get(str(entry.get("runbook", "")), declared.Evidence()).figures
    figures = key_figures(entry.get("summary"), declared_figures)
    return {
        "time": entry.get("started_at", ""),
        "runbook": entry.get("runbook", ""),
        "env": entry.get("env", ""),
        "operator": entry.get("operator", ""),
        "status": entry.get("status", ""),
        "run_id": entry.get("run_id", ""),
        "mode": run_mode(entry),
        "via": run_via(entry),
        "executed_by": entry.get("executed_by") or "",
        "cause": cause if len(cause) <= MAX_CAUSE_CHARS else cause[: MAX_CAUSE_CHARS - 1] + "…",
        "cause_full": cause,
        "figures": figures,
        "figures_text": ", ".join(f"{k}={v}" for k, v in figures),
        "figure_titles": figure_titles(declared_figures),
        "link": link,
    }


def build(
    out_dir: Path | None = None,
    env: str | None = None,
    since: date | None = None,
    outputs_dir: Path | None = None,
    workers: int = 2,
    evidence: Declarations | None = None,
) -> Report:
    """Render every selected run and write index.html; returns where and what it found.

    evidence: the runbooks' declarations (key figures, trend charts); None reads every runbook's
    own (`declared.discover()`)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    outputs_dir = outputs_dir or paths.outputs_dir()
    out_dir = out_dir or outputs_dir / "report"
    runs_dir = out_dir / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    import plotly.offline

    (out_dir / PLOTLY_FILE).write_text(plotly.offline.get_plotlyjs(), encoding="utf-8")

    verdict = ledger.verify_ledger(outputs_dir)
    entries = [
        e
        for e in ledger.read_entries(outputs_dir)
        if (env is None or e.get("env") == env)
        and (since is None or e.get("started_at", "") >= since.isoformat())
    ]
    newest_first = sorted_by_start(entries)
    jobs, links = [], {}
    for entry in entries:
        notebook = outputs_dir / entry["output"] if entry.get("output") else None
        if notebook and notebook.exists() and entry.get("status") != "abandoned":
            target = runs_dir / f"{entry['run_id']}.html"
            links[entry["run_id"]] = f"runs/{target.name}"
            jobs.append((str(notebook), entry, str(target)))
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(jobs) > 4:
        import nbconvert  # noqa: F401 - imported once here; forked workers inherit it

        with ProcessPoolExecutor(max_workers=workers) as pool:
            problems = [p for p in pool.map(_render_job, jobs, chunksize=8) if p]
    else:
        problems = [p for p in map(_render_job, jobs) if p]

    template = Environment(
        loader=PackageLoader("vextrus_nb", "templates"), autoescape=select_autoescape()
    ).get_template("report_index.html.j2")
    evidence = declared.discover() if evidence is None else evidence
    rows = [_row(e, links.get(e.get("run_id", "")), evidence) for e in newest_first]
    index = out_dir / "index.html"
    index.write_text(
        template.render(
            rows=rows,
            verdict=verdict,
            charts=_charts(newest_first[::-1], outputs_dir, evidence),
            problems=problems,
            plotly_file=PLOTLY_FILE,
            runbooks=sorted({r["runbook"] for r in rows}),
            envs=sorted({r["env"] for r in rows}),
            statuses=sorted({r["status"] for r in rows}),
            modes=[m for m in MODES if any(r["mode"] == m for r in rows)],
            vias=[v for v in VIAS if any(r["via"] == v for r in rows)],
        ),
        encoding="utf-8",
    )
    return Report(index, len(entries), len(jobs) - len(problems), verdict)
