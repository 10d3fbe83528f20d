"""The steps of notebooks/resilience/load.ipynb: a k6 load test generated from the parameters
(open model), its percentiles per endpoint, a comparison with the environment's load baseline
(the newest sealed, passed load run in the ledger), and a verdict from k6's thresholds.

Load is disruptive, so the runbook is declared destructive: a dry run only shows the plan, a
live run holds the environment's lock, and production needs confirm.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vextrus_nb.errors import LoadError, RunRefused
from vextrus_nb.probe_targets import endpoints
from vextrus_nb.resilience import k6
from vextrus_nb.resilience.baseline import Comparison, compare, newest_baseline
from vextrus_nb.resilience.results import LoadResult, read_result

if TYPE_CHECKING:
    from vextrus_nb.config import Environment
    from vextrus_nb.run.session import Runbook

TARGET_NAMES = ("graphql", "auth")
PASSWORD_VAR = "VEXTRUS_LOAD_PASSWORD"  # how the login password reaches k6 (its __ENV), never a file


def chosen_targets(parameters: dict[str, Any]) -> list[str]:
    return [t.strip() for t in str(parameters.get("targets", "")).split(",") if t.strip()]


def validate(env: Environment, parameters: dict[str, Any]) -> None:
    """Refuse malformed or over-ceiling parameters, and in the sandbox any URL off loopback,
    before a kernel starts (and so long before k6 does)."""
    problems = []
    unknown = [t for t in chosen_targets(parameters) if t not in TARGET_NAMES]
    if unknown or not chosen_targets(parameters):
        problems.append(
            f"targets must name some of {', '.join(TARGET_NAMES)}, not {parameters.get('targets')!r}"
        )
    problems += _arrival(parameters).problems() + _thresholds(parameters).problems()
    if not 0 <= float(parameters.get("regression_margin", 0.2)) <= 10:
        problems.append(
            f"regression_margin must be 0..10 (a fraction), not {parameters.get('regression_margin')}"
        )
    if float(parameters.get("regression_floor_ms", 0.0)) < 0:
        problems.append(f"regression_floor_ms must be >= 0, not {parameters.get('regression_floor_ms')}")
    for name in ("gateway_url", "auth_url"):
        url = parameters.get(name)
        if url is not None and (problem := k6.url_problem(name, str(url), env.sandbox)) is not None:
            problems.append(problem)
    login_ref = str(parameters.get("login_ref") or "")
    if login_ref and login_ref not in env.secrets:
        problems.append(f"login_ref: environment '{env.name}' declares no secret '{login_ref}'")
    if problems:
        raise RunRefused("; ".join(problems))


def _arrival(parameters: dict[str, Any]) -> k6.Arrival:
    pre_allocated = int(parameters.get("pre_allocated_vus", 10))
    return k6.Arrival(
        rate=int(parameters.get("rate", 20)),
        duration_s=int(parameters.get("duration_s", 30)),
        pre_allocated_vus=pre_allocated,
        max_vus=int(parameters.get("max_vus") or pre_allocated),
    )


def _thresholds(parameters: dict[str, Any]) -> k6.Thresholds:
    return k6.Thresholds(
        p95_ms=float(parameters.get("p95_ms", 300.0)), error_rate=float(parameters.get("error_rate", 0.01))
    )


def plan(rb: Runbook) -> k6.LoadPlan:
    """The targets where the environment serves them (or the URLs given), bounded and checked."""
    p = rb.parameters
    where = endpoints(rb.env, rb.inventory)

    def base(component: str) -> str:
        host, port = where[component]
        return f"http://{host}:{port}"

    auth = str(p.get("auth_url") or base("auth")).rstrip("/")
    chosen = chosen_targets(p)
    targets: list[k6.Target] = []
    if "graphql" in chosen:
        targets.append(k6.GraphqlQuery(str(p.get("gateway_url") or f"{base('api-gateway')}/graphql")))
    if "auth" in chosen:
        targets.append(
            k6.LoginProfile(
                login_url=auth + str(p.get("login_path", "/auth/login")),
                profile_url=auth + str(p.get("profile_path", "/auth/profile")),
                username=str(p.get("login_user", "")),
                password_var=PASSWORD_VAR if p.get("login_ref") else None,
            )
        )
    load_plan = k6.LoadPlan(tuple(targets), _arrival(p), _thresholds(p), loopback_only=rb.env.sandbox)
    load_plan.check()
    return load_plan


def plan_table(load_plan: k6.LoadPlan) -> Any:
    import pandas as pd

    a, t = load_plan.arrival, load_plan.thresholds
    rows = [
        {
            "scenario": target.name,
            "endpoint": endpoint,
            "url": url,
            "executor": "constant-arrival-rate",
            "rate (it/s)": a.rate,
            "duration (s)": a.duration_s,
            "VUs (pre-allocated / max)": f"{a.pre_allocated_vus} / {a.max_vus}",
            "thresholds": f"p95 < {t.p95_ms:g} ms, errors < {t.error_rate:.1%}",
        }
        for target in load_plan.targets
        for endpoint, url in zip(target.endpoints, target.urls, strict=True)
    ]
    return pd.DataFrame(rows)


def plan_script(load_plan: k6.LoadPlan) -> Any:
    from vextrus_nb.display import preformatted

    return preformatted(load_plan.script())


@dataclass
class LoadRun:
    """What the run step left: the result, or why there is none (a dry run, k6 failing)."""

    plan: k6.LoadPlan
    result: LoadResult | None = None
    skipped: str = ""
    seconds: float = 0.0
    summary_artifact: Path | None = None
    comparison: Comparison = field(default_factory=lambda: Comparison(None))

    def table(self) -> Any:
        import pandas as pd

        from vextrus_nb.display import note

        if self.result is None:
            return note(self.skipped)
        rows = [
            {
                "endpoint": e.endpoint,
                "requests": e.requests,
                "req/s": round(e.requests_per_s, 1),
                "failed requests": e.failed_requests,
                "failed checks": e.failed_checks,
                **{f"p{p} (ms)": round(e.k6_ms[p], 2) for p in (50, 90, 95, 99)},
                "p95, ours (ms)": round(e.ours_ms[95], 2),
                "k6 and ours agree": e.agree,
                "thresholds crossed": ", ".join(e.crossed) or "-",
            }
            for e in self.result.endpoints
        ]
        return pd.DataFrame(rows)

    def figure(self) -> Any:
        import pandas as pd
        import plotly.express as px

        series = pd.DataFrame(
            self.result.per_second() if self.result else [],
            columns=["second", "endpoint", "p50_ms", "p95_ms", "requests"],
        )
        fig = px.line(
            series,
            x="second",
            y="p95_ms",
            color="endpoint",
            markers=True,
            hover_data=["p50_ms", "requests"],
            title="Latency over time: p95 per endpoint per second",
        )
        if self.result is not None and self.result.endpoints:
            fig.add_hline(y=self.plan.thresholds.p95_ms, line_dash="dash", annotation_text="p95 threshold")
        fig.update_layout(xaxis_title="seconds into the run", yaxis_title="p95 (ms)", height=450)
        return fig

    def comparison_table(self) -> Any:
        import pandas as pd

        from vextrus_nb.display import note

        c = self.comparison
        if c.baseline_run_id is None:
            return note("No baseline: no sealed, passed load run of this environment in the ledger yet.")
        rows = [
            {
                "endpoint": ch.endpoint,
                "baseline p95 (ms)": round(ch.baseline_p95_ms, 2),
                "p95 now (ms)": round(ch.p95_ms, 2),
                "change": f"{ch.change:+.0%}",
                "allowed growth (ms)": round(ch.allowed_ms, 2),
                "regressed": ch.regressed,
            }
            for ch in c.changes
        ]
        return pd.DataFrame(rows).assign(baseline_run=c.baseline_run_id)

    def summary(self) -> dict[str, Any]:
        if self.result is None:
            return {"measured": False, "skipped": self.skipped}
        r, c = self.result, self.comparison
        return {
            "p95_ms": round(max((e.p95_ms for e in r.endpoints), default=0.0), 3),
            "requests_per_s": round(sum(e.requests_per_s for e in r.endpoints), 2),
            "dropped_iterations": r.dropped_iterations,
            "thresholds_crossed": sorted(r.crossed),
            "percentiles_agree": r.percentiles_agree,
            "endpoints": {e.endpoint: e.record() for e in r.endpoints},
            "baseline_run_id": c.baseline_run_id,
            "regressions": [ch.endpoint for ch in c.regressions],
            "k6_seconds": round(self.seconds, 2),
        }


def run_load(rb: Runbook, load_plan: k6.LoadPlan) -> LoadRun:
    """LIVE: k6 loads the targets at the planned rate for the planned time. A dry run loads nothing."""
    if rb.dry_run:
        return LoadRun(load_plan, skipped="dry run: nothing was loaded (pass dry_run=False to run k6)")
    secrets = {}
    if login_ref := rb.parameters.get("login_ref"):
        secrets[PASSWORD_VAR] = rb.secret(str(login_ref))  # scrubbed wherever it could surface
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vextrus-k6-") as scratch:
        try:
            done = k6.run_k6(load_plan, Path(scratch), secrets)
        except LoadError as exc:
            raise LoadError(rb.scrubber.text(str(exc))) from None
        result = read_result(load_plan, done)
        artifact = rb.artifact_path(".k6-summary.json")
        artifact.parent.mkdir(parents=True, exist_ok=True)
        artifact.write_text(rb.scrubber.text(json.dumps(done.summary, indent=2)), encoding="utf-8")
    rb.add_artifact(artifact)
    return LoadRun(load_plan, result=result, seconds=time.perf_counter() - started, summary_artifact=artifact)


def compare_to_baseline(rb: Runbook, run: LoadRun) -> LoadRun:
    """The newest sealed, passed load run of this environment is the baseline; a p95 that grew
    beyond the margin (and the noise floor) fails the run, naming the endpoint."""
    if run.result is None:
        return run
    current = {e.endpoint: e.p95_ms for e in run.result.endpoints}
    run.comparison = compare(
        current,
        newest_baseline(rb.env.name),
        margin=float(rb.parameters.get("regression_margin", 0.2)),
        floor_ms=float(rb.parameters.get("regression_floor_ms", 25.0)),
    )
    for change in run.comparison.regressions:
        rb.fail(
            f"p95 regression on {change.endpoint}: {change.p95_ms:.1f} ms against the baseline's "
            f"{change.baseline_p95_ms:.1f} ms (run {run.comparison.baseline_run_id}), more than "
            f"{change.allowed_ms:.1f} ms allowed"
        )
    return run


def judge(rb: Runbook, run: LoadRun) -> Path | None:
    """Record the figures, write the metric textfile, and fail on every crossed threshold by name."""
    rb.summary.update(run.summary())
    if run.result is None:
        return None
    path = write_load_metrics(rb, run.result)
    rb.add_artifact(path)
    for endpoint, crossed in run.result.crossed.items():
        figures = run.result.endpoint(endpoint)
        rb.fail(
            f"k6 threshold crossed on {endpoint}: {', '.join(crossed)} "
            f"(p95 {figures.p95_ms:.1f} ms, {figures.failed_requests} failed requests, "
            f"{figures.failed_checks} failed checks)"
        )
    if run.result.thresholds_crossed and not run.result.crossed:
        rb.fail("k6 reported a crossed threshold that names no endpoint (exit 99)")
    if not run.result.percentiles_agree:
        rb.fail("k6's percentiles and those of its own time series disagree: the figures are not trustworthy")
    return path


def write_load_metrics(rb: Runbook, result: LoadResult) -> Path:
    """A Prometheus textfile (node_exporter's textfile collector): the last load run's figures."""

    from prometheus_client import CollectorRegistry, Gauge

    from vextrus_nb.evidence import metrics

    registry = CollectorRegistry()
    per_endpoint = {
        "vextrus_load_p95_seconds": ("p95 latency of the last load run", lambda e: e.p95_ms / 1000),
        "vextrus_load_p99_seconds": ("p99 latency of the last load run", lambda e: e.k6_ms[99] / 1000),
        "vextrus_load_requests_per_second": ("achieved request rate", lambda e: e.requests_per_s),
        "vextrus_load_failed_requests": ("failed requests", lambda e: e.failed_requests),
        "vextrus_load_threshold_crossed": ("1 if a k6 threshold was crossed", lambda e: bool(e.crossed)),
    }
    for name, (doc, value_of) in per_endpoint.items():
        gauge = Gauge(name, doc, ["env", "endpoint"], registry=registry)
        for figures in result.endpoints:
            gauge.labels(env=rb.env.name, endpoint=figures.endpoint).set(float(value_of(figures)))
    for name, doc, value in (
        (
            "vextrus_load_dropped_iterations",
            "iterations k6 could not start on time",
            result.dropped_iterations,
        ),
        ("vextrus_load_timestamp_seconds", "when the last load run ended", time.time()),
    ):
        Gauge(name, doc, ["env"], registry=registry).labels(env=rb.env.name).set(float(value))
    return metrics.write_textfile(registry, f"vextrus_load_{rb.env.name}")


# -- Evidence: what the report and the metrics read of this runbook's runs ---------------------
# Plain data (evidence/declared.py): read from this source without importing the module, so it
# names only the declaration types (as declared.X) and literals.
from vextrus_nb.evidence import declared  # noqa: E402

EVIDENCE = declared.Evidence(
    figures=(
        declared.Figure("p95_ms", "p95 of the slowest endpoint", "ms"),
        declared.Figure("requests_per_s", "requests", "/s"),
    ),
    trends=(
        declared.Trend(
            "Load p95 per endpoint (ms): {env}",
            plots=(declared.Plot("endpoints", each=True, field="p95_ms"),),
            empty="Load p95",
            value_title="p95_ms",
            line_title="endpoint",
            unit="ms",
        ),
    ),
)
