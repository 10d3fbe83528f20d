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
from vextrus_nb.evidence import ledger

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


def _charts(entries: list[dict[str, Any]], outputs_dir: Path | None = None) -> list[tuple[str, str]]:
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
    for runbook, figures, title in (
        ("dr/drill", ("rto_s", "rpo_s"), "DR drill: RTO and RPO (seconds)"),
        ("verify/checklist", ("score",), "Production readiness score"),
    ):
        rows = [
            {"started_at": e["started_at"], **{f: (e.get("summary") or {}).get(f) for f in figures}}
            for e in entries
            if e.get("runbook") == runbook
        ]
        if rows:
            series = pd.DataFrame(rows).melt(id_vars="started_at", var_name="figure", value_name="value")
            fig = px.line(series, x="started_at", y="value", color="figure", markers=True, title=title)
            charts.append((runbook, fig.to_html(full_html=False, include_plotlyjs=False)))
        else:
            charts.append((runbook, f"<p class='empty'>{html.escape(title)}: no {runbook} runs yet.</p>"))
    return (
        charts
        + platform_drill_charts(entries, outputs_dir)
        + load_p95_charts(entries, outputs_dir)
        + recovery_time_charts(entries, outputs_dir)
    )


PLATFORM_DRILL_RUNBOOK = "dr/platform-drill"


def platform_drill_series(
    entries: list[dict[str, Any]], outputs_dir: Path | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Per environment, the seconds from each sealed live platform drill's start to each datastore
    proven and to the smoke sweep passing ("all": the RTO), and, for a drill that recovered
    PostgreSQL with pgBackRest, its RPO measured in the restored cluster ("rpo"), in the order
    given: a dry run timed nothing, and an edited notebook is no longer evidence."""
    series: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        summary = entry.get("summary") or {}
        figures = summary.get("rto_by_datastore")
        if entry.get("runbook") != PLATFORM_DRILL_RUNBOOK or summary.get("dry_run") is not False:
            continue
        if not isinstance(figures, dict) or not figures or not ledger.is_sealed(entry, outputs_dir):
            continue
        rpo = summary.get("rpo_s")
        if isinstance(rpo, int | float):
            figures = {**figures, "rpo": rpo}
        series.setdefault(str(entry.get("env")), []).extend(
            {
                "started_at": entry.get("started_at"),
                "run_id": entry.get("run_id"),
                "datastore": datastore,
                "seconds": float(seconds),
                "set_id": summary.get("set_id"),
                "postgres_from": summary.get("postgres_from") or "dumps",
                "status": entry.get("status"),
            }
            for datastore, seconds in figures.items()
            if isinstance(seconds, int | float)
        )
    return dict(sorted(series.items()))


def platform_drill_charts(
    entries: list[dict[str, Any]], outputs_dir: Path | None = None
) -> list[tuple[str, str]]:
    """One chart per environment of `platform_drill_series`, named `dr/platform-drill:<env>`: the
    RTO per datastore above, and the RPO (another quantity: how far behind the drill's start the
    restored cluster's newest heartbeat is) below it on its own axis."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    series = platform_drill_series(entries, outputs_dir)
    if not series:
        return [
            (
                PLATFORM_DRILL_RUNBOOK,
                f"<p class='empty'>Platform drill RTO: no sealed live {PLATFORM_DRILL_RUNBOOK} runs yet.</p>",
            )
        ]
    charts = []
    for env, rows in series.items():
        fig = make_subplots(
            rows=2,
            cols=1,
            shared_xaxes=True,
            row_heights=[0.7, 0.3],
            vertical_spacing=0.08,
            subplot_titles=(
                "RTO per datastore: seconds from the drill's start to its proof ('all': smoke sweep passing)",
                "RPO: seconds the restored cluster's newest heartbeat is behind the drill's start",
            ),
        )
        for name in dict.fromkeys(r["datastore"] for r in rows):
            drawn = [r for r in rows if r["datastore"] == name]
            fig.add_trace(
                go.Scatter(
                    x=[r["started_at"] for r in drawn],
                    y=[r["seconds"] for r in drawn],
                    name="RPO" if name == "rpo" else name,
                    mode="lines+markers",
                    customdata=[[r["status"], r["postgres_from"], r["set_id"], r["run_id"]] for r in drawn],
                    hovertemplate="%{y} s<br>%{customdata[0]}, postgres from %{customdata[1]}<br>"
                    "set %{customdata[2]}, run %{customdata[3]}<extra>" + name + "</extra>",
                ),
                row=2 if name == "rpo" else 1,
                col=1,
            )
        fig.update_yaxes(title_text="RTO (s)", row=1, col=1)
        fig.update_yaxes(title_text="RPO (s)", rangemode="tozero", row=2, col=1)
        fig.update_layout(title=f"Platform drill: RTO per datastore, and RPO: {env}", height=560)
        chart = fig.to_html(full_html=False, include_plotlyjs=False)
        charts.append((f"{PLATFORM_DRILL_RUNBOOK}:{env}", chart))
    return charts


def load_p95_series(
    entries: list[dict[str, Any]], outputs_dir: Path | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Per environment, p95 per endpoint of every sealed load run, in the order given: a run whose
    notebook no longer verifies, or that measured nothing (a dry run), is not evidence."""
    from vextrus_nb.resilience.baseline import endpoint_p95, sealed_load_runs

    series: dict[str, list[dict[str, Any]]] = {}
    for entry in sealed_load_runs(outputs_dir, entries):
        series.setdefault(str(entry.get("env")), []).extend(
            {
                "started_at": entry.get("started_at"),
                "run_id": entry.get("run_id"),
                "endpoint": endpoint,
                "p95_ms": p95,
                "status": entry.get("status"),
            }
            for endpoint, p95 in endpoint_p95(entry).items()
        )
    return dict(sorted(series.items()))


def load_p95_charts(entries: list[dict[str, Any]], outputs_dir: Path | None = None) -> list[tuple[str, str]]:
    """One chart per environment of `load_p95_series`, named `resilience/load:<env>`."""
    import pandas as pd
    import plotly.express as px

    from vextrus_nb.resilience.baseline import LOAD_RUNBOOK

    series = load_p95_series(entries, outputs_dir)
    if not series:
        return [(LOAD_RUNBOOK, f"<p class='empty'>Load p95: no sealed {LOAD_RUNBOOK} runs yet.</p>")]
    charts = []
    for env, rows in series.items():
        fig = px.line(
            pd.DataFrame(rows),
            x="started_at",
            y="p95_ms",
            color="endpoint",
            markers=True,
            hover_data=["status", "run_id"],
            title=f"Load p95 per endpoint (ms): {env}",
        )
        charts.append((f"{LOAD_RUNBOOK}:{env}", fig.to_html(full_html=False, include_plotlyjs=False)))
    return charts


CHAOS_RUNBOOK = "resilience/chaos"


def recovery_time_series(
    entries: list[dict[str, Any]], outputs_dir: Path | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Per environment, the time to recover of every sealed live chaos run that measured one, in
    the order given: a dry run injected nothing, and an edited notebook is no longer evidence."""
    series: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        summary = entry.get("summary") or {}
        seconds = summary.get("time_to_recover_s")
        if entry.get("runbook") != CHAOS_RUNBOOK or not isinstance(seconds, int | float):
            continue
        if not ledger.is_sealed(entry, outputs_dir):
            continue
        series.setdefault(str(entry.get("env")), []).append(
            {
                "started_at": entry.get("started_at"),
                "run_id": entry.get("run_id"),
                "experiment": summary.get("experiment"),
                "time_to_recover_s": float(seconds),
                "resilience_score": summary.get("resilience_score"),
                "status": entry.get("status"),
            }
        )
    return dict(sorted(series.items()))


def recovery_time_charts(
    entries: list[dict[str, Any]], outputs_dir: Path | None = None
) -> list[tuple[str, str]]:
    """One chart per environment of `recovery_time_series`, named `resilience/chaos:<env>`."""
    import pandas as pd
    import plotly.express as px

    series = recovery_time_series(entries, outputs_dir)
    if not series:
        return [(CHAOS_RUNBOOK, f"<p class='empty'>Time to recover: no sealed {CHAOS_RUNBOOK} runs yet.</p>")]
    charts = []
    for env, rows in series.items():
        fig = px.line(
            pd.DataFrame(rows),
            x="started_at",
            y="time_to_recover_s",
            color="experiment",
            markers=True,
            hover_data=["status", "resilience_score", "run_id"],
            title=f"Chaos: time to recover per experiment (s): {env}",
        )
        charts.append((f"{CHAOS_RUNBOOK}:{env}", fig.to_html(full_html=False, include_plotlyjs=False)))
    return charts


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


# Figures an auditor looks for first, in this order; lists among them are shown as their length.
KEY_FIGURES = (
    "score",
    "rto_s",
    "rpo_s",
    "failed_checks",
    "critical_failed",
    "critical_down",
    "databases_verified",
    "databases",
    "down",
    "degraded",
    "up",
    "phase",
    "healthy",
    "not_healthy",
    "checks_passed",
    "findings",
    "top_finding_component",
    "top_severity",
    "verified",
)
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


def key_figures(summary: Any, limit: int = MAX_FIGURES) -> list[tuple[str, str]]:
    """A few scalar figures from a run's summary: the well-known ones first, then the others in
    the summary's own order; never a dict or a list dumped whole."""
    if not isinstance(summary, dict):
        return []
    figures: list[tuple[str, str]] = []
    known = [k for k in KEY_FIGURES if k in summary]
    others = [k for k in summary if k not in KEY_FIGURES]
    for key in [*known, *others]:
        shown = _figure(summary[key], count_lists=key in KEY_FIGURES)
        if shown is not None:
            figures.append((str(key), shown))
        if len(figures) >= limit:
            break
    return figures


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


def _row(entry: dict[str, Any], link: str | None) -> dict[str, Any]:
    cause = run_cause(entry)
    figures = key_figures(entry.get("summary"))
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
        "link": link,
    }


def build(
    out_dir: Path | None = None,
    env: str | None = None,
    since: date | None = None,
    outputs_dir: Path | None = None,
    workers: int = 2,
) -> Report:
    """Render every selected run and write index.html; returns where and what it found."""
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
    rows = [_row(e, links.get(e.get("run_id", ""))) for e in newest_first]
    index = out_dir / "index.html"
    index.write_text(
        template.render(
            rows=rows,
            verdict=verdict,
            charts=_charts(newest_first[::-1], outputs_dir),
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
