"""What a runbook declares of its own evidence, for the report and the metrics to read.

A steps module (`runbooks/<family>/<name>.py`) ends with `EVIDENCE = Evidence(...)`: its key
figures (the summary keys an auditor looks for first in the report's index), its trend charts
(which summary values make the points, how they split into lines, which runs count) and its
evidence kinds (the Prometheus gauges of its newest sealed run). `report.py` and `metrics.py`
read these declarations and name no runbook, so a new runbook needs no edit in evidence/.

How they are found: the runbooks are the notebooks (`paths.notebooks_dir()`), each one's steps
module is the one `run/steps.py` names (the one map from a runbook to its module, `STEPS_MODULE`
honoured), and the declaration is read from that module's source without importing it: it is
data, calls of the types below with literal arguments, evaluated with nothing else in scope
(the types under the names the module imports them by: `from vextrus_nb.evidence import
declared`, then `declared.Evidence(...)`).
Importing every steps module would load the client libraries they use at load (psycopg, redis,
httpx: 0.4-0.5 s) into `vextrus-nb report` and into the process serving the metrics. A
declaration that is not plain data (it uses a name of its module) is read by importing the module
instead; tests/test_report.py holds every committed one to being plain data.

Callers may also pass their own declarations (`report.build(evidence=...)`,
`metrics.exposition(evidence=...)`); `discover()` is the default.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

from vextrus_nb import paths
from vextrus_nb.steps_location import module_name

ATTRIBUTE = "EVIDENCE"


@dataclass(frozen=True)
class Figure:
    """A summary key worth showing: in the index's key figures, or on a chart's hover.

    label and unit say what it is (`label` defaults to the key); `missing` is what a hover shows
    for a run whose summary lacks it (a run recorded before the key existed)."""

    key: str
    label: str = ""
    unit: str = ""
    missing: str | None = None

    @property
    def name(self) -> str:
        return self.label or self.key


@dataclass(frozen=True)
class Plot:
    """Where a trend chart's points come from in one run's summary.

    - `Plot("rto_s")`: `summary["rto_s"]`, one point on the line named `rto_s` (or `label`).
    - `Plot("rto_by_datastore", each=True)`: a mapping, one point per entry on the line named by
      its key; with `field`, each entry is itself a mapping and `field` holds the number.
    - `Plot("time_to_recover_s", line_from="experiment")`: one point, on the line the summary's
      `experiment` names.

    `lower`: drawn on the chart's second axis, below (another quantity than the first's).
    `enough`: whether this plot's points alone make a run drawn (False: they only accompany the
    others, e.g. an RPO beside an RTO that was not measured)."""

    key: str
    each: bool = False
    field: str | None = None
    line_from: str | None = None
    label: str = ""
    lower: bool = False
    enough: bool = True


@dataclass(frozen=True)
class Trend:
    """A chart of the runbook's runs over time.

    `title` may hold `{env}` (with `per_environment`, one chart per environment, named
    `<runbook>:<env>`; else one chart named `<runbook>`). Only sealed runs are drawn when
    `sealed_only` (an edited notebook is no longer evidence), and only runs whose summary says
    `dry_run: false` when `live_only`. With no run to draw the chart is a line of text,
    "`<empty>`: no [sealed ][live ]<runbook> runs yet." (`empty` defaults to the title).
    `value_title` and `line_title` name the y axis and the legend, `unit` is the values' (on
    hover); with a `lower` plot,
    `upper_title`/`lower_title` are the two axes' subtitles and `upper_axis`/`lower_axis` their
    y titles. `hover`: summary figures shown on each point besides its status and run id."""

    title: str
    plots: tuple[Plot, ...]
    empty: str = ""
    per_environment: bool = True
    sealed_only: bool = True
    live_only: bool = False
    value_title: str = "value"
    unit: str = ""
    line_title: str = ""
    hover: tuple[Figure, ...] = ()
    upper_title: str = ""
    lower_title: str = ""
    upper_axis: str = ""
    lower_axis: str = ""
    height: int | None = None


@dataclass(frozen=True)
class Gauge:
    """A Prometheus gauge of an evidence kind's newest run, labelled with the environment.

    value: `ended_at` (when it ended, seconds since the epoch), `passed` (1 or 0), or `figure`
    (the kind's summary figure)."""

    name: str
    documentation: str
    value: Literal["ended_at", "passed", "figure"]


@dataclass(frozen=True)
class Kind:
    """The runbook's sealed runs as one kind of evidence: `vextrus_evidence_present{kind=...}`
    and its gauges. `passed_only`: a run that did not pass is no evidence (a failed backup is no
    backup). `figure`: a summary key a run must hold as a number to count (a checklist that died
    before scoring says nothing about readiness); the `figure` gauges export it."""

    kind: str
    gauges: tuple[Gauge, ...] = ()
    passed_only: bool = False
    figure: str | None = None


@dataclass(frozen=True)
class Evidence:
    """Everything a runbook declares of its evidence (the value of `EVIDENCE` in its module)."""

    figures: tuple[Figure, ...] = ()
    trends: tuple[Trend, ...] = ()
    kinds: tuple[Kind, ...] = ()


Declarations = Mapping[str, Evidence]
"""Runbook name (`dr/platform-drill`) -> what it declares."""

_TYPES = {t.__name__: t for t in (Evidence, Figure, Plot, Trend, Gauge, Kind)}


def runbooks(notebooks_dir: Path | None = None) -> list[str]:
    """Every runbook: every notebook under notebooks/, as `<family>/<name>`."""
    root = notebooks_dir or paths.notebooks_dir()
    return sorted(
        str(p.relative_to(root).with_suffix(""))
        for p in root.rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.parts
    )


def discover(notebooks_dir: Path | None = None) -> dict[str, Evidence]:
    """The declarations of every runbook that makes one, by runbook name, sorted."""
    found: dict[str, Evidence] = {}
    for runbook in runbooks(notebooks_dir):
        module = module_name(runbook)
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:  # a family with no package: a test's own notebook
            spec = None
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        stat = origin.stat()
        declared = _declaration(module, str(origin), stat.st_mtime_ns, stat.st_size)
        if declared is not None:
            found[runbook] = declared
    return found


@functools.lru_cache(maxsize=256)
def _declaration(module: str, origin: str, mtime_ns: int, size: int) -> Evidence | None:
    """One module's declaration, read once per version of its file (the metrics are scraped
    every few seconds by a process that lives for days)."""
    try:
        declared = _from_source(Path(origin))
    except NameError:  # not plain data: the module itself says what it is
        declared = getattr(importlib.import_module(module), ATTRIBUTE)
    if declared is not None and not isinstance(declared, Evidence):
        raise TypeError(f"{module}.{ATTRIBUTE} is {type(declared).__name__}, not an Evidence declaration")
    return declared


def _from_source(origin: Path) -> object:
    """The value of the module's top-level `EVIDENCE = ...`, evaluated with only the declaration
    types in scope, under the names the module imports them by (NameError when it needs anything
    else), or None when it declares nothing."""
    tree = ast.parse(origin.read_bytes(), str(origin))
    names: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == __name__:
            names.update({a.asname or a.name: _TYPES[a.name] for a in node.names if a.name in _TYPES})
        elif isinstance(node, ast.ImportFrom) and f"{node.module}.declared" == __name__:
            types = SimpleNamespace(**_TYPES)
            names.update({a.asname or a.name: types for a in node.names if a.name == "declared"})
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == ATTRIBUTE for t in node.targets
        ):
            code = compile(ast.Expression(node.value), str(origin), "eval")
            return eval(code, {"__builtins__": {}}, names)
    return None


def read_without_import(module: str) -> object:
    """The module's declaration read from its source only, with no import fallback (a test holds
    every committed declaration to being plain data with it)."""
    spec = importlib.util.find_spec(module)
    return None if spec is None or spec.origin is None else _from_source(Path(spec.origin))
