"""The run as seen from inside the notebook: `rb = vextrus_nb.start(...)`.

The Runbook object loads the environment, enforces the guards (dry run,
production confirmation), records each step, and at the end writes the run
record and raises when the run failed, so papermill exits non-zero.

Under `vextrus-nb run` the record goes to the file the runner names
(VEXTRUS_RECORD_PATH) and the runner seals the notebook and writes the ledger.
In a working copy from `vextrus-nb open` (JupyterLab) the run is the copy's own
(run/interactive.py): steps re-run are attempts, and the record waits beside the
runs registry until the next save seals the notebook. Run any other way (plain
papermill) the record is appended to the ledger unsealed, without a notebook
hash, and never counts as evidence.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vextrus_nb.clock import now_utc
from vextrus_nb.config import Environment, Inventory, load_environment, load_inventory
from vextrus_nb.display import Shown, badge, in_notebook, key_values, note, show, table
from vextrus_nb.errors import LeaseLost, RunbookFailed, RunRefused
from vextrus_nb.evidence import identity, ledger, scrub
from vextrus_nb.run import interactive, locks, steps
from vextrus_nb.run.naming import (
    OUTPUT_PATH_VAR,
    RECORD_PATH_VAR,
    RUN_ID_VAR,
    SPILL_PATH_VAR,
    new_run_id,
    output_path_for,
)


@dataclass
class StepRecord:
    title: str
    status: str = "running"  # passed | failed | failed-allowed
    seconds: float = 0.0
    error: str = ""
    attempts: int = 1  # a step re-run inside the run (JupyterLab) is another attempt of the same step
    earlier: list[dict[str, Any]] = field(default_factory=list)  # status, seconds, error of each


@dataclass
class Runbook:
    name: str
    env: Environment
    inventory: Inventory
    parameters: dict[str, Any]
    destructive: bool = False
    # What the runbook writes whatever dry_run says (a backup set, scratch databases): its header
    # and record say so, so a run that wrote something is never labelled a plain dry run.
    writes: str = ""
    run_id: str = field(default_factory=lambda: os.environ.get(RUN_ID_VAR) or new_run_id())
    started_at: str = field(default_factory=now_utc)
    summary: dict[str, Any] = field(default_factory=dict)
    steps: list[StepRecord] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    scrubber: scrub.Scrubber = field(default_factory=lambda: scrub.Scrubber(spill=_spill_path()), repr=False)
    lock: Any = field(default=None, repr=False)  # locks.acquire(): an flock or a lease
    interactive: bool = False  # a working copy from `vextrus-nb open`, sealed when saved after finish
    submitted: dict[str, Any] | None = None  # a gated working copy: who asked, and the approvals
    finished: bool = False  # finish() ran: steps are refused until the start cell reopens the run
    # Which step registered each finding, so a re-attempt of that step withdraws its old ones.
    _finding_steps: list[str | None] = field(default_factory=list, repr=False)
    _current_step: str | None = field(default=None, repr=False)

    @property
    def dry_run(self) -> bool:
        return bool(self.parameters.get("dry_run", True))

    # -- secrets ------------------------------------------------------------
    def secret(self, name: str) -> str:
        """Resolve a secret by reference and remember it, so it is scrubbed from what we show."""
        value = self.env.resolve_secret(name)
        self.scrubber.add([value])
        return value

    # -- steps ----------------------------------------------------------------
    @contextlib.contextmanager
    def step(self, title: str, allow_failure: bool = False) -> Iterator[StepRecord]:
        """Record one step; an exception fails the run unless the step may fail."""
        if self.finished:
            raise RunRefused(
                f"run {self.run_id} is finished: re-run its start cell to go on with it (the record is "
                "written again at the next finish), or save to seal it"
            )
        record = next((s for s in self.steps if s.title == title), None)
        if record is None:
            record = StepRecord(title)
            self.steps.append(record)
        else:  # re-run in the same run: an attempt of that step, not a new one
            record.earlier.append({"status": record.status, "seconds": record.seconds, "error": record.error})
            record.attempts += 1
            record.status, record.seconds, record.error = "running", 0.0, ""
            self._withdraw_findings_of(title)
        started = time.perf_counter()
        self._current_step = title
        try:
            if self.lock is not None:  # a live destructive run: its lock must still be its own
                self.lock.check_fence()
            yield record
        except Exception as exc:
            record.seconds = round(time.perf_counter() - started, 3)
            record.error = self.scrubber.text(f"{type(exc).__name__}: {exc}")
            # A lost lease stops the run whatever the step allows (and it came before the step's
            # body ran: returning here would leave the context manager without its yield).
            if allow_failure and not isinstance(exc, LeaseLost):
                record.status = "failed-allowed"
                show(f"step '{title}' failed and is allowed to: {record.error}")
                return
            record.status = "failed"
            if self.interactive:
                show(note(self._how_to_go_on(title)))
            else:
                self._write_record("error")
            raise
        finally:
            self._current_step = None
        record.seconds = round(time.perf_counter() - started, 3)
        if record.status == "running":
            # A step that registered a finding is where the run failed: the record says so.
            record.status = "failed" if title in self._finding_steps else "passed"

    def _withdraw_findings_of(self, title: str) -> None:
        kept = [(f, s) for f, s in zip(self.failures, self._finding_steps, strict=True) if s != title]
        self.failures = [f for f, _ in kept]
        self._finding_steps = [s for _, s in kept]

    def _how_to_go_on(self, title: str) -> str:
        held = " The environment stays locked by this run." if self.lock is not None else ""
        return (
            f"Step '{title}' failed.{held} Fix the cause and re-run the step (an attempt of this run), "
            "or run the finish cell to end the run as failed and save to seal it; restarting the "
            "kernel abandons the run (recorded as abandoned)."
        )

    def artifact_path(self, suffix: str) -> Path:
        """Where a file this run exports (a JUnit report, say) goes: beside the output
        notebook, named like it, e.g. `<runbook>-<time>-<run id>.junit.xml`."""
        output = os.environ.get(OUTPUT_PATH_VAR)
        if output:
            path = Path(output)
        else:  # plain papermill or JupyterLab: the name the runner would have given
            from vextrus_nb import paths

            path = output_path_for(
                paths.outputs_dir(), self.env.name, self.name, self.run_id, datetime.now(UTC)
            )
        return path.with_name(path.name.removesuffix(".ipynb") + suffix)

    def add_artifact(self, path: Path) -> None:
        """Name an exported file in the run record (relative to the outputs directory when inside it)."""
        from vextrus_nb import paths

        with contextlib.suppress(ValueError):
            path = path.resolve().relative_to(paths.outputs_dir().resolve())
        self.artifacts.append(str(path))

    def fail(self, reason: str) -> None:
        """Register a finding that makes the run fail at finish(); it belongs to the step that
        registered it, so re-attempting that step withdraws it."""
        self.failures.append(self.scrubber.text(reason))
        self._finding_steps.append(self._current_step)

    # -- record ---------------------------------------------------------------
    def header(self) -> Shown:
        rows = {
            "runbook": self.name,
            "run id": self.run_id,
            "environment": f"{self.env.name} ({self.env.driver})"
            + ("  PRODUCTION" if self.env.production else ""),
            "operator": identity.operator(),
            "host": identity.host(),
            "started (UTC)": self.started_at,
            "mode": self.mode(),
            "version": f"vextrus-nb {identity.package_version()} @ {identity.git_commit()[:12]}",
        }
        return key_values(rows)

    def mode(self) -> str:
        """What this run may change, as its header says it."""
        also = f"; it writes {self.writes} either way" if self.writes else ""
        if not self.destructive:
            return f"not destructive: it writes {self.writes}" if self.writes else "read-only"
        if self.dry_run:
            return "dry run: destructive steps only say what they would do" + also
        return "LIVE: changes will be made" + also

    def record(self, status: str) -> dict[str, Any]:
        failed = next((s for s in self.steps if s.status == "failed"), None)
        return {
            **identity.run_identity(self.run_id, self.name, self.env.name, self.parameters),
            "started_at": self.started_at,
            "ended_at": now_utc(),
            "status": status,
            "destructive": self.destructive,
            "writes": self.writes,
            "summary": self.scrubber.tree(self.summary),
            "failures": list(self.failures),
            "steps": [asdict(s) for s in self.steps],
            "resume_from": failed.title if failed else None,
            "artifacts": list(self.artifacts),
            **({"lock": self.lock.as_record()} if self.lock is not None else {}),
            **({"submitted": self.submitted} if self.submitted else {}),
        }

    def _write_record(self, status: str) -> dict[str, Any]:
        record = self.record(status)
        target = os.environ.get(RECORD_PATH_VAR)
        if target:  # the runner seals the notebook and writes the ledger
            Path(target).write_text(json.dumps(record, indent=2, default=str))
        elif self.interactive:  # the next save seals it (vextrus_nb/run/lab.py), or `vextrus-nb seal`
            interactive.kernel_finished(self.run_id, record)
        else:  # plain papermill: on record, but unsealed, so never counted as evidence
            ledger.append_entry({**record, "executed_by": "notebook", "output": None, "output_sha256": None})
        return record

    def finish(self) -> Any:
        """Summarise, write the run record, and raise RunbookFailed if the run failed."""
        if self.interactive and (interactive.read_entry(self.run_id) or {}).get("state") == "sealed":
            show(
                note(
                    f"Run {self.run_id} is sealed: its evidence is final and this changes nothing on record."
                )
            )
            return None
        passed = not self.failures and all(s.status != "failed" for s in self.steps)
        self._write_record("passed" if passed else "failed")
        self.finished = True
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        show(table([asdict(s) for s in self.steps], ["title", "status", "seconds", "error"]))
        if self.summary:
            show(key_values(self.summary))
        verdict = "; ".join(self.failures) if self.failures else f"{len(self.steps)} steps completed"
        _show_verdict(badge(passed, verdict), self.run_id)
        if self.interactive:
            show(note("Save the notebook (Ctrl+S) to seal this run: scrubbed, hashed, one ledger entry."))
        if not passed:
            raise RunbookFailed(verdict)
        return None


def _spill_path() -> Path | None:
    spill = os.environ.get(SPILL_PATH_VAR)
    return Path(spill) if spill else None


def start(
    runbook: str,
    env: str = "sandbox",
    dry_run: bool = True,
    confirm: str = "",
    destructive: bool = False,
    writes: str = "",
    **parameters: Any,
) -> Runbook:
    """Load the environment, check the guards, show the header; see the module docstring."""
    inventory = load_inventory()
    environment = load_environment(env, inventory)
    values = {"env": env, "dry_run": dry_run, "confirm": confirm, **parameters}
    if destructive and not dry_run and environment.production and confirm != environment.name:
        raise RunRefused(
            f"'{runbook}' makes changes and '{environment.name}' is production: "
            f"pass confirm='{environment.name}' to proceed"
        )
    # The runner checked these before the kernel started; run any other way, this is the check.
    steps.validate(runbook, environment, values)
    run_id = os.environ.get(RUN_ID_VAR) or _interactive_run(runbook, env, values)
    interactive_run = bool(run_id) and not os.environ.get(RUN_ID_VAR)
    policy = environment.approvals
    approved: dict[str, Any] | None = None
    if (
        policy is not None
        and policy.needs(runbook, destructive, not dry_run)
        and not os.environ.get(RUN_ID_VAR)
    ):
        # A submitted run's runner checked its approvals; a working copy's are checked here,
        # before the lease; run any other way (plain papermill), none came.
        if not interactive_run:
            raise RunRefused(
                f"'{runbook}' on '{environment.name}' needs approvals: submit it (`vextrus-nb submit`)"
            )
        approved = _approvals_of_working_copy(str(run_id), runbook, environment, values)
    rb = _active.get(run_id or "") if interactive_run else None
    if rb is not None:  # the engineer re-runs the start cell: the same run goes on, steps kept
        rb.parameters, rb.finished = values, False
    else:
        rb = Runbook(
            name=runbook,
            env=environment,
            inventory=inventory,
            parameters=values,
            destructive=destructive,
            writes=writes,
            run_id=run_id or new_run_id(),
            interactive=interactive_run,
        )
        if interactive_run:
            rb.scrubber.spill = interactive.spill_path(rb.run_id)
            _active[rb.run_id] = rb
    if approved is not None:
        rb.submitted = approved
    if destructive and not dry_run and rb.lock is None:
        rb.lock = locks.acquire(environment.name, rb.run_id, runbook, rb.started_at)
    # A secret passed as a parameter must not come back through a summary or an error message.
    rb.scrubber.add(str(v) for k, v in rb.parameters.items() if scrub.is_secret_name(k) and v)
    show(rb.header())
    return rb


def _approvals_of_working_copy(
    run_id: str, runbook: str, environment: Environment, values: dict[str, Any]
) -> dict[str, Any]:
    """The approvals `vextrus-nb open` asked for, once they are in and check out here; the
    working copy's parameters as they were approved. RunRefused saying what is missing."""
    from vextrus_nb.asyncio_bridge import run_sync
    from vextrus_nb.control import settings
    from vextrus_nb.evidence import approvals
    from vextrus_nb.service import client

    request = run_sync(client.pending_request(settings.load(), run_id))
    approved_parameters = request.get("parameters") or {}
    changed = sorted(k for k, v in values.items() if k in approved_parameters and approved_parameters[k] != v)
    if changed:
        raise RunRefused(
            f"run {run_id}: {', '.join(changed)} changed since the run was approved; open a new run"
        )
    decisions = request.get("approvals") or []
    if len(decisions) < int(request.get("required") or 0):
        by = request.get("approved_by") or []
        others = [a for a in request.get("approvers", []) if a not in by]
        raise RunRefused(
            f"run {run_id} has {len(decisions)} of {request.get('required')} approvals "
            f"({', '.join(by) or 'none yet'}): ask {', '.join(others)} to "
            f"`vextrus-nb approve {run_id}`, then run this cell again"
        )
    submitted = request.get("submitted") or {}
    approvals.verify_decisions(
        environment.approvals, run_id, runbook, environment.name, approved_parameters, submitted.get("by"),
        decisions,
    )  # fmt: skip
    return {**submitted, "approvals": decisions}


# The interactive runs this kernel has started, by run id (one, in practice: its working copy's).
_active: dict[str, Runbook] = {}


def _interactive_run(runbook: str, env: str, values: dict[str, Any]) -> str | None:
    """Under JupyterLab: the run of this working copy, taken by this kernel. The template itself
    never runs: a working copy is made from what its parameters cell says, and named."""
    notebook = interactive.notebook_of_this_kernel()
    if notebook is None:
        return None
    if interactive.is_template(notebook):
        given = {k: v for k, v in values.items() if not scrub.is_secret_name(k)}
        opened = interactive.open_run(runbook, env, given)
        raise RunRefused(
            f"{notebook.name} is the committed template: read-only, and a run of it would leave no "
            f"evidence. Your working copy is {opened.notebook} (run {opened.run_id}): open it "
            "(File > Open from Path) and run it there"
        )
    run_id = interactive.run_of_notebook(notebook)
    if run_id is not None:
        interactive.kernel_started(run_id)
    return run_id


def _show_verdict(verdict: Any, run_id: str) -> None:
    """The verdict, marked with its run id: the sign a saved working copy is complete."""
    if in_notebook():
        from IPython.display import display

        display(verdict, metadata={"vextrus": {"verdict": run_id}})
    else:
        show(verdict)
