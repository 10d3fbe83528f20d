"""The run of one experiment (Chaos Toolkit's order, with the fixes its users ask for):

1. the steady-state hypothesis before: one failing probe aborts the run, nothing injected;
2. the method: each fault injected (journalled first), then held for its duration while the
   hypothesis is polled: the first failing probe after injection is the time to detect;
   a `must_hold` probe failing is a deviation;
3. the rollbacks, always (also when the method or a probe raised): the undo of every injected
   fault, newest first, then the declared ones; a rollback that fails fails the experiment;
4. the hypothesis after, polled until it holds or the recovery deadline passes: from the last
   rollback done to the hypothesis holding again is the time to recover.

The resilience score is LitmusChaos's: each probe's success percentage (its checks that passed,
of those judged) weighted by the probe's weight.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vextrus_nb.probes import describe_error
from vextrus_nb.resilience.chaos import catalogue
from vextrus_nb.resilience.chaos.catalogue import Injected
from vextrus_nb.resilience.chaos.context import ChaosContext
from vextrus_nb.resilience.chaos.experiment import Experiment
from vextrus_nb.resilience.chaos.hypothesis import ProbeCheck, check_all
from vextrus_nb.resilience.chaos.journal import Journal

STATUSES = ("passed", "deviated", "failed", "aborted")


@dataclass(frozen=True)
class Sample:
    """One poll of the hypothesis: which phase, which fault was last injected, how far in."""

    phase: str  # before | during | after
    fault: str | None
    at_s: float  # seconds since the experiment started
    checks: tuple[ProbeCheck, ...]

    @property
    def held(self) -> bool:
        return all(c.held for c in self.checks)


@dataclass(frozen=True)
class Rollback:
    action: str
    target: str
    done: bool
    detail: str


@dataclass
class ExperimentRun:
    experiment: Experiment
    seed: int
    status: str = "passed"
    deviations: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    injected: list[Injected] = field(default_factory=list)
    rollbacks: list[Rollback] = field(default_factory=list)
    time_to_detect_s: dict[str, float | None] = field(default_factory=dict)
    time_to_recover_s: float | None = None
    journal_path: Path | None = None

    def phase(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.phase == name]

    def probe_success(self) -> dict[str, float]:
        """Per probe, the percentage of its judged checks that held: before (one), during (every
        poll, for a must_hold probe only) and after (the last poll: whether it recovered)."""
        judged: dict[str, list[bool]] = {p.name: [] for p in self.experiment.hypothesis}
        must_hold = {p.name for p in self.experiment.hypothesis if p.during == "must_hold"}
        after = self.phase("after")
        for sample in [*self.phase("before")[:1], *self.phase("during"), *after[-1:]]:
            for c in sample.checks:
                if sample.phase != "during" or c.probe in must_hold:
                    judged[c.probe].append(c.held)
        return {name: round(100.0 * sum(v) / len(v), 1) if v else 0.0 for name, v in judged.items()}

    @property
    def score(self) -> float:
        weights = {p.name: p.weight for p in self.experiment.hypothesis}
        success = self.probe_success()
        return round(sum(weights[n] * success[n] for n in weights) / sum(weights.values()), 1)

    def summary(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment.name,
            "status": self.status,
            "seed": self.seed,
            "deviations": self.deviations,
            "faults": [
                {"id": i.id, "kind": i.kind, "target": i.target, "detail": i.detail} for i in self.injected
            ],
            "time_to_detect_s": self.time_to_detect_s,
            "time_to_recover_s": self.time_to_recover_s,
            "rollbacks": [asdict(r) for r in self.rollbacks],
            "probe_success": self.probe_success(),
            "resilience_score": self.score,
        }


def recover_stale(journal_path: Path, ctx: ChaosContext, run_id: str) -> list[Rollback]:
    """Undo what an earlier run's journal says is still injected (that run was killed), newest
    first; the journal is then archived. [] when there is no open journal. Raises nothing: an
    undo that fails is a Rollback with done=False, and the journal stays active for the next try."""
    journal = Journal.load(journal_path)
    if journal is None:
        return []
    if not journal.data.get("open"):
        journal.archive(str(journal.data.get("run_id", "ended")))
        return []
    done = _undo_all(journal, ctx, journal.still_injected(), by=run_id)
    if all(r.done for r in done):
        journal.event("recovered", by=run_id)
        journal.data["open"] = False
        journal.event("ended", status="recovered by a later run")
        journal.archive(f"{journal.data.get('run_id', 'stale')}.recovered")
    return done


def _undo_all(
    journal: Journal, ctx: ChaosContext, entries: list[dict[str, Any]], by: str | None = None
) -> list[Rollback]:
    done = []
    for entry in entries:
        try:
            detail = catalogue.undo(entry["kind"], entry["target"], entry.get("state") or {}, ctx)
        except Exception as exc:
            detail = describe_error(exc)
            journal.event("rollback failed", fault=entry["id"], detail=detail, **({"by": by} if by else {}))
            done.append(Rollback(f"undo {entry['kind']}", entry["target"], False, detail))
            continue
        journal.rolled_back(entry["id"], detail)
        done.append(Rollback(f"undo {entry['kind']}", entry["target"], True, detail))
    return done


def run_experiment(
    experiment: Experiment, ctx: ChaosContext, journal_path: Path, seed: int, run_id: str
) -> ExperimentRun:
    """Run it through (see the module's docstring); never leaves a fault it injected in effect
    unless its undo itself failed (then the status is failed and the journal stays open)."""
    run = ExperimentRun(experiment, seed, journal_path=journal_path)
    journal = Journal.start(
        journal_path, experiment=experiment.name, env=ctx.env.name, run_id=run_id, seed=seed
    )
    started = time.monotonic()
    for fault in experiment.method:
        if fault.fault in ("latency", "cut-connection"):
            ctx.route_probes_through_link(fault.target)

    def poll(phase: str, fault: str | None) -> Sample:
        sample = Sample(
            phase, fault, round(time.monotonic() - started, 3), tuple(check_all(experiment.hypothesis, ctx))
        )
        run.samples.append(sample)
        return sample

    before = poll("before", None)
    if not before.held:
        run.status = "aborted"
        run.deviations = [
            f"steady state before the method: {c.probe}: {c.detail}" for c in before.checks if not c.held
        ]
        journal.close("aborted")
        return run

    rng = random.Random(seed)
    must_hold = {p.name for p in experiment.hypothesis if p.during == "must_hold"}
    failed = False
    try:
        for number, fault in enumerate(experiment.method, 1):
            fault_id = f"f{number}"
            target = catalogue.choose_target(fault, ctx, rng)
            if target != fault.target:
                journal.event("target chosen", fault=fault_id, target=target, seed=seed)
            injected = catalogue.inject(fault, target, ctx, fault_id, journal.note_fault)
            run.injected.append(injected)
            journal.event("injected", fault=fault_id, kind=fault.fault, target=target, detail=injected.detail)
            run.time_to_detect_s[fault_id] = None
            hold_until = injected.injected_at + fault.duration_s
            while True:
                sample = poll("during", fault_id)
                if not sample.held and run.time_to_detect_s[fault_id] is None:
                    run.time_to_detect_s[fault_id] = round(time.monotonic() - injected.injected_at, 3)
                    journal.event(
                        "detected", fault=fault_id, probes=[c.probe for c in sample.checks if not c.held]
                    )
                for c in sample.checks:
                    deviation = f"during {fault_id} ({fault.fault} {target}): {c.probe} must hold"
                    if (
                        c.probe in must_hold
                        and not c.held
                        and not any(d.startswith(deviation) for d in run.deviations)
                    ):
                        run.deviations.append(f"{deviation}: {c.detail}")
                if time.monotonic() >= hold_until:
                    break
                time.sleep(min(experiment.poll_s, max(0.0, hold_until - time.monotonic())))
    except Exception as exc:
        failed = True
        run.deviations.append(f"the method stopped: {describe_error(exc)}")
        journal.event("method failed", detail=describe_error(exc))
    finally:
        run.rollbacks = _undo_all(journal, ctx, journal.still_injected())
        for action in experiment.rollbacks:
            try:
                ctx.driver.start(action.components)
                run.rollbacks.append(Rollback("start", ",".join(action.components), True, "started"))
                journal.event("rolled back", action="start", components=action.components)
            except Exception as exc:
                detail = describe_error(exc)
                run.rollbacks.append(Rollback("start", ",".join(action.components), False, detail))
                journal.event("rollback failed", action="start", components=action.components, detail=detail)
    rolled_back_at = time.monotonic()
    for rollback in run.rollbacks:
        if not rollback.done:
            failed = True
            run.deviations.append(f"rollback failed: {rollback.action} {rollback.target}: {rollback.detail}")

    deadline = rolled_back_at + experiment.recovery_deadline_s
    while True:
        sample = poll("after", None)
        if sample.held:
            run.time_to_recover_s = round(time.monotonic() - rolled_back_at, 3)
            journal.event("recovered", seconds=run.time_to_recover_s)
            break
        if time.monotonic() >= deadline:
            run.deviations += [
                f"did not recover within {experiment.recovery_deadline_s:g} s: {c.probe}: {c.detail}"
                for c in sample.checks
                if not c.held
            ]
            journal.event("not recovered", deadline_s=experiment.recovery_deadline_s)
            break
        time.sleep(min(experiment.poll_s, max(0.0, deadline - time.monotonic())))

    run.status = "failed" if failed else "deviated" if run.deviations else "passed"
    if all(r.done for r in run.rollbacks):
        journal.close(run.status)
    else:  # an undo failed: the journal stays the environment's active one, for the next run
        journal.event("left open", reason="a rollback failed")
    return run
