"""The steps of notebooks/resilience/chaos.ipynb: one experiment of parameters/chaos/ run
against the environment (the steady state before, the method, during, the rollbacks, after),
with its journal, time to detect, time to recover and resilience score on record.

Destructive: a dry run lists the hypothesis, the method (a random target resolved with the seed)
and the rollbacks and injects nothing; a live run holds the environment's lock and, first of all,
undoes what a killed earlier run's journal says is still injected; production needs confirm.
"""

from __future__ import annotations

import random
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vextrus_nb.errors import ExperimentError, RunRefused
from vextrus_nb.resilience.chaos import catalogue, journal
from vextrus_nb.resilience.chaos.context import ChaosContext, LinkFaults
from vextrus_nb.resilience.chaos.engine import ExperimentRun, Rollback, recover_stale, run_experiment
from vextrus_nb.resilience.chaos.experiment import (
    MAX_DURATION_S,
    MAX_RECOVERY_S,
    Experiment,
    load_experiment,
)

if TYPE_CHECKING:
    from vextrus_nb.config import Environment
    from vextrus_nb.run.session import Runbook

NETWORK_FAULTS = ("latency", "cut-connection")


def validate(env: Environment, parameters: dict[str, Any]) -> None:
    """Refuse, before a kernel starts: an unknown or malformed experiment, a fault the driver
    cannot take or a target the fault cannot, a duration or deadline over the run's bounds."""
    from vextrus_nb.config import load_inventory

    try:
        experiment = load_experiment(str(parameters.get("experiment", "")))
    except ExperimentError as exc:
        raise RunRefused(str(exc)) from None
    problems = []
    seed = parameters.get("seed", -1)
    if not isinstance(seed, int) or seed < -1:
        problems.append(f"seed must be an integer >= 0 (or -1: a fresh one, recorded), not {seed!r}")
    max_duration = float(parameters.get("max_duration_s", 60))
    max_recovery = float(parameters.get("max_recovery_s", 120))
    if not 0 < max_duration <= MAX_DURATION_S:
        problems.append(f"max_duration_s must be in (0, {MAX_DURATION_S:g}], not {max_duration:g}")
    if not 0 < max_recovery <= MAX_RECOVERY_S:
        problems.append(f"max_recovery_s must be in (0, {MAX_RECOVERY_S:g}], not {max_recovery:g}")
    if experiment.recovery_deadline_s > max_recovery:
        problems.append(
            f"the experiment's recovery_deadline_s ({experiment.recovery_deadline_s:g}) is over "
            f"max_recovery_s ({max_recovery:g})"
        )
    ctx = ChaosContext(env, load_inventory(), {}, lambda: _driver(env))
    for fault in experiment.method:
        if fault.duration_s > max_duration:
            problems.append(
                f"{fault.fault} lasts {fault.duration_s:g} s, over max_duration_s ({max_duration:g})"
            )
        if reason := catalogue.unsupported(fault.fault, env.driver):
            problems.append(f"{fault.fault} on the {env.driver} driver: {reason}")
        elif problem := (
            catalogue.target_problem(fault, ctx)
            or (_link_problem(fault.fault, fault.target, ctx) if fault.fault in NETWORK_FAULTS else None)
        ):
            problems.append(problem)
    for rollback in experiment.rollbacks:
        unknown = [c for c in rollback.components if c not in ctx.inventory.components]
        if unknown:
            problems.append(f"rollback start: no component {', '.join(unknown)} in the inventory")
    if problems:
        raise RunRefused("; ".join(problems))


def _link_problem(fault: str, target: str, ctx: ChaosContext) -> str | None:
    """A network fault needs a fault proxy in the platform's path to its target."""
    driver = ctx.driver
    if not isinstance(driver, LinkFaults):
        return (
            f"{fault} {target}: the {ctx.env.driver} driver puts no fault proxy in the platform's "
            "path to it (the LinkFaults capability)"
        )
    try:
        link = driver.link(target)
    except Exception as exc:  # the platform cannot be asked: say so, not a traceback
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"{fault} {target}: the {ctx.env.driver} driver could not list its links ({reason})"
    if link is None:
        return f"{fault} {target}: the {ctx.env.driver} driver has no fault proxy in the path to it"
    return None


def _driver(env: Environment) -> Any:
    from vextrus_nb import drivers

    return drivers.for_environment(env)


def context(rb: Runbook) -> ChaosContext:
    return ChaosContext.for_environment(rb.env, rb.inventory, remember_secret=lambda v: rb.scrubber.add([v]))


@dataclass
class Plan:
    experiment: Experiment
    seed: int
    targets: list[str]  # each fault's target, a random one resolved with the seed
    journal_path: Path

    def table(self) -> Any:
        import pandas as pd

        rows: list[dict[str, object]] = [
            {
                "part": "hypothesis",
                "what": p.probe,
                "name / target": p.name,
                "tolerance": _tolerance(p),
                "during the fault": p.during.replace("_", " "),
                "weight": p.weight,
            }
            for p in self.experiment.hypothesis
        ]
        rows += [
            {
                "part": "method",
                "what": f.fault,
                "name / target": target if target == f.target else f"{target} (random, seed {self.seed})",
                "tolerance": f"held {f.duration_s:g} s",
                "during the fault": "",
                "weight": None,
            }
            for f, target in zip(self.experiment.method, self.targets, strict=True)
        ]
        rows += [
            {
                "part": "rollback",
                "what": f"undo {f.fault}",
                "name / target": t,
                "tolerance": "",
                "during the fault": "",
            }
            for f, t in reversed(list(zip(self.experiment.method, self.targets, strict=True)))
        ]
        rows += [
            {"part": "rollback", "what": "start", "name / target": ", ".join(r.components), "tolerance": ""}
            for r in self.experiment.rollbacks
        ]
        rows.append(
            {
                "part": "after",
                "what": "hypothesis again",
                "name / target": "every probe",
                "tolerance": f"within {self.experiment.recovery_deadline_s:g} s of the rollbacks",
            }
        )
        return pd.DataFrame(rows).fillna("")


def _tolerance(probe: Any) -> str:
    if probe.probe == "health":
        return f"up: {', '.join(probe.components)}"
    if probe.probe == "latency":
        return f"{probe.requests} GETs {probe.component}{probe.path}, p95 < {probe.p95_ms:g} ms, all 2xx"
    return "commits" + (f" within {probe.max_ms:g} ms" if probe.max_ms else "")


def plan(rb: Runbook) -> Plan:
    """The experiment, its seed (a fresh one when -1, recorded) and each fault's target."""
    experiment = load_experiment(str(rb.parameters["experiment"]))
    seed = int(rb.parameters.get("seed", -1))
    if seed < 0:
        seed = secrets.randbelow(2**31)
    rng = random.Random(seed)
    ctx = context(rb)
    targets = [catalogue.choose_target(f, ctx, rng) for f in experiment.method]
    rb.summary.update({"experiment": experiment.name, "seed": seed, "targets": targets})
    return Plan(experiment, seed, targets, journal.active_path(rb.env.name))


@dataclass
class Recovery:
    """What an earlier, killed run had left injected and this run undid first."""

    stale: list[dict[str, Any]] = field(default_factory=list)
    undone: list[Rollback] = field(default_factory=list)
    skipped: str = ""

    def table(self) -> Any:
        import pandas as pd

        from vextrus_nb.display import note

        if self.skipped:
            return note(self.skipped)
        if not self.stale:
            return note("No stale journal: no earlier run left a fault injected.")
        return pd.DataFrame([r.__dict__ for r in self.undone])


def recover(rb: Runbook, chaos_plan: Plan) -> Recovery:
    """LIVE: undo what a killed earlier run's journal says is still injected, before anything
    else. A dry run only says what it would undo. An undo that fails fails the run here."""
    stale_journal = journal.Journal.load(chaos_plan.journal_path)
    stale = stale_journal.still_injected() if stale_journal and stale_journal.data.get("open") else []
    if rb.dry_run:
        what = ", ".join(f"{f['kind']} {f['target']}" for f in stale) or "nothing"
        return Recovery(stale, skipped=f"dry run: a live run would first undo {what}")
    undone = recover_stale(chaos_plan.journal_path, context(rb), rb.run_id)
    failed = [r for r in undone if not r.done]
    rb.summary["recovered_stale"] = [f"{r.action} {r.target}" for r in undone]
    if failed:
        raise RuntimeError(
            "could not undo what an earlier run left injected: "
            + "; ".join(f"{r.action} {r.target}: {r.detail}" for r in failed)
        )
    return Recovery(stale, undone)


@dataclass
class ChaosResult:
    plan: Plan
    run: ExperimentRun | None = None
    skipped: str = ""
    journal_artifact: Path | None = None

    def samples_table(self) -> Any:
        import pandas as pd

        from vextrus_nb.display import note

        if self.run is None:
            return note(self.skipped)
        return pd.DataFrame(
            [
                {
                    "phase": s.phase,
                    "fault": s.fault or "",
                    "at (s)": s.at_s,
                    "probe": c.probe,
                    "held": c.held,
                    "detail": c.detail,
                }
                for s in self.run.samples
                for c in s.checks
            ]
        )

    def rollbacks_table(self) -> Any:
        import pandas as pd

        from vextrus_nb.display import note

        if self.run is None:
            return note(self.skipped)
        if not self.run.rollbacks:
            return note("Nothing was injected: no rollback to run.")
        return pd.DataFrame([r.__dict__ for r in self.run.rollbacks])

    def figure(self) -> Any:
        """Each probe held (1) or not (0) over the run, the faults' injections and the rollbacks marked."""
        import pandas as pd
        import plotly.express as px

        rows = [
            {"second": s.at_s, "probe": c.probe, "held": int(c.held), "phase": s.phase}
            for s in (self.run.samples if self.run else [])
            for c in s.checks
        ]
        fig = px.line(
            pd.DataFrame(rows, columns=["second", "probe", "held", "phase"]),
            x="second",
            y="held",
            color="probe",
            line_shape="hv",
            markers=True,
            hover_data=["phase"],
            title="Steady state over the experiment: each probe held (1) or not (0)",
        )
        if self.run is not None:
            after = self.run.phase("after")
            during = self.run.phase("during")
            if during:
                fig.add_vline(x=during[0].at_s, line_dash="dot", annotation_text="fault injected")
            if after:
                fig.add_vline(x=after[0].at_s, line_dash="dash", annotation_text="rolled back")
        fig.update_layout(xaxis_title="seconds into the experiment", yaxis_title="held", height=400)
        return fig

    def verdict_table(self) -> Any:
        import pandas as pd

        from vextrus_nb.display import note

        if self.run is None:
            return note(self.skipped)
        r = self.run
        rows = [
            {"figure": "status", "value": r.status},
            *({"figure": f"time to detect {k} (s)", "value": v} for k, v in r.time_to_detect_s.items()),
            {"figure": "time to recover (s)", "value": r.time_to_recover_s},
            {"figure": "resilience score (%)", "value": r.score},
            *({"figure": "deviation", "value": d} for d in r.deviations),
        ]
        return pd.DataFrame(rows).astype({"value": str})


def run(rb: Runbook, chaos_plan: Plan) -> ChaosResult:
    """LIVE: the experiment: before, the method, during, the rollbacks (always), after. A dry run
    injects nothing."""
    if rb.dry_run:
        return ChaosResult(chaos_plan, skipped="dry run: nothing was injected (pass dry_run=False to run it)")
    done = run_experiment(
        chaos_plan.experiment, context(rb), chaos_plan.journal_path, chaos_plan.seed, rb.run_id
    )
    result = ChaosResult(chaos_plan, done)
    artifact = rb.artifact_path(".chaos-journal.json")
    artifact.parent.mkdir(parents=True, exist_ok=True)
    source = done.journal_path or chaos_plan.journal_path
    artifact.write_text(rb.scrubber.text(source.read_text(encoding="utf-8")), encoding="utf-8")
    rb.add_artifact(artifact)
    result.journal_artifact = artifact
    if all(r.done for r in done.rollbacks):
        source.unlink(missing_ok=True)  # closed and copied into the record: no longer active
    return result


def judge(rb: Runbook, result: ChaosResult) -> Path | None:
    """Record the figures and the journal, write the metric textfile, fail on every deviation."""
    if result.run is None:
        rb.summary.update({"injected": False, "skipped": result.skipped})
        return None
    rb.summary.update(result.run.summary())
    rb.summary["journal"] = result.plan.journal_path.name
    path = write_chaos_metrics(rb, result.run)
    rb.add_artifact(path)
    if result.run.status == "aborted":
        rb.fail("the steady state did not hold before the method: nothing was injected")
    for deviation in result.run.deviations:
        rb.fail(deviation)
    return path


def write_chaos_metrics(rb: Runbook, done: ExperimentRun) -> Path:
    """A Prometheus textfile (node_exporter's textfile collector): the last experiment's figures."""

    from prometheus_client import CollectorRegistry, Gauge

    from vextrus_nb.evidence import metrics

    registry = CollectorRegistry()
    labels = {"env": rb.env.name, "experiment": done.experiment.name}
    for name, doc, value in (
        ("vextrus_chaos_resilience_score", "weighted probe success of the last experiment (%)", done.score),
        ("vextrus_chaos_passed", "1 if the last experiment passed", done.status == "passed"),
        ("vextrus_chaos_rollbacks_failed", "rollbacks that failed", sum(not r.done for r in done.rollbacks)),
        ("vextrus_chaos_timestamp_seconds", "when the last experiment ended", time.time()),
    ):
        Gauge(name, doc, list(labels), registry=registry).labels(**labels).set(float(value))
    if done.time_to_recover_s is not None:
        Gauge(
            "vextrus_chaos_time_to_recover_seconds",
            "from the last rollback done to the hypothesis holding again",
            list(labels),
            registry=registry,
        ).labels(**labels).set(done.time_to_recover_s)
    detect = Gauge(
        "vextrus_chaos_time_to_detect_seconds",
        "from the fault injected to the first failing probe",
        [*labels, "fault"],
        registry=registry,
    )
    for fault, seconds in done.time_to_detect_s.items():
        if seconds is not None:
            detect.labels(**labels, fault=fault).set(seconds)
    return metrics.write_textfile(registry, f"vextrus_chaos_{rb.env.name}")


# -- Evidence: what the report and the metrics read of this runbook's runs ---------------------
# Plain data (evidence/declared.py): read from this source without importing the module, so it
# names only the declaration types (as declared.X) and literals.
from vextrus_nb.evidence import declared  # noqa: E402

EVIDENCE = declared.Evidence(
    trends=(
        declared.Trend(
            "Chaos: time to recover per experiment (s): {env}",
            plots=(declared.Plot("time_to_recover_s", line_from="experiment"),),
            empty="Time to recover",
            value_title="time_to_recover_s",
            line_title="experiment",
            unit="s",
            hover=(declared.Figure("resilience_score", "resilience score"),),
        ),
    ),
)
