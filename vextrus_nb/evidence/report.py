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
from datetime import date
from pathlib import Path
from typing import Any

from vextrus_nb import paths
from vextrus_nb.evidence import ledger

PLOTLY_MIME = "application/vnd.plotly.v1+json"
PLOTLY_FILE = "plotly.min.js"
_NBCONVERT_TEMPLATES = Path(__file__).resolve().parent / "templates" / "nbconvert"


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


def _charts(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
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
    colours = {"passed": "#1a7f37", "failed": "#cf222e", "error": "#8250df"}
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
    return charts


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
    jobs, links = [], {}
    for entry in entries:
        notebook = outputs_dir / entry["output"] if entry.get("output") else None
        if notebook and notebook.exists():
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
    rows = [
        {
            "time": e.get("started_at", ""),
            "runbook": e.get("runbook", ""),
            "env": e.get("env", ""),
            "operator": e.get("operator", ""),
            "status": e.get("status", ""),
            "run_id": e.get("run_id", ""),
            "figures": ", ".join(f"{k}={v}" for k, v in (e.get("summary") or {}).items()),
            "link": links.get(e.get("run_id", "")),
        }
        for e in reversed(entries)
    ]
    index = out_dir / "index.html"
    index.write_text(
        template.render(
            rows=rows,
            verdict=verdict,
            charts=_charts(entries),
            problems=problems,
            plotly_file=PLOTLY_FILE,
            runbooks=sorted({r["runbook"] for r in rows}),
            envs=sorted({r["env"] for r in rows}),
            statuses=sorted({r["status"] for r in rows}),
        ),
        encoding="utf-8",
    )
    return Report(index, len(entries), len(jobs) - len(problems), verdict)
