"""Execute a runbook with papermill and seal the evidence.

`run()` refuses bad input before a kernel starts (exit 2), executes the
notebook into a private scratch file, scrubs every secret the run could have
touched, stamps the run record into `metadata.vextrus`, writes
`outputs/<env>/<date>/<runbook>-<utc time>-<run id>.ipynb` (also when the run
fails: the partial notebook is the evidence) and appends the ledger.
Exit codes: 0 passed, 1 failed or errored, 2 refused before running.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from vextrus_nb import paths
from vextrus_nb.clock import now_utc
from vextrus_nb.config import Environment, load_environment, load_inventory
from vextrus_nb.errors import ConfigError, ControlStoreUnavailable, RunRefused
from vextrus_nb.evidence import identity
from vextrus_nb.exit_codes import EXIT_FAILED, EXIT_PASSED, EXIT_REFUSED
from vextrus_nb.run import locks, parameters, steps
from vextrus_nb.run.kernel import booted_kernel
from vextrus_nb.run.naming import (
    OUTPUT_PATH_VAR,
    RECORD_PATH_VAR,
    RUN_ID_VAR,
    SPILL_PATH_VAR,
    new_run_id,
    output_path_for,
)

__all__ = ["EXIT_FAILED", "EXIT_PASSED", "EXIT_REFUSED"]
DEFAULT_CELL_TIMEOUT_S = 900
KERNEL_START_TIMEOUT_S = 60


RunStatus = Literal["passed", "failed", "error", "refused"]
# The kernel's error that ended a run, by name: a verdict, or a refusal inside the kernel.
_STATUS_OF_ERROR: dict[str, RunStatus] = {"RunbookFailed": "failed", "RunRefused": "refused"}


@dataclass(frozen=True)
class RunOutcome:
    exit_code: int
    status: RunStatus
    message: str
    output_path: Path | None = None
    run_id: str | None = None
    record: dict[str, Any] | None = None


def list_runbooks(notebooks_dir: Path | None = None) -> list[str]:
    root = notebooks_dir or paths.notebooks_dir()
    return sorted(
        str(p.relative_to(root).with_suffix(""))
        for p in root.rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.parts
    )


def resolve_notebook(runbook: str, notebooks_dir: Path | None = None) -> Path:
    root = (notebooks_dir or paths.notebooks_dir()).resolve()
    candidate = (root / f"{runbook.removesuffix('.ipynb')}.ipynb").resolve()
    if root not in candidate.parents or not candidate.is_file():
        known = ", ".join(list_runbooks(root)) or "(none)"
        raise RunRefused(f"unknown runbook '{runbook}'; known: {known}")
    return candidate


def _notebook_metadata(notebook: Path) -> dict[str, Any]:
    return json.loads(notebook.read_text()).get("metadata", {}).get("vextrus", {})


@dataclass(frozen=True)
class Plan:
    notebook: Path
    runbook: str
    env: Environment
    parameters: dict[str, Any]
    metadata: dict[str, Any]
    submitted: dict[str, Any] | None = None


def prepare(
    runbook: str,
    env: str,
    given: dict[str, Any] | None = None,
    parameters_file: Path | None = None,
    notebooks_dir: Path | None = None,
    submitted: dict[str, Any] | None = None,
    approvals_awaited: bool = False,
) -> Plan:
    """Everything that can refuse a run, checked before anything runs. `submitted`: a
    submitted run's provenance, whose approvals (checked by its workflow) may let it through;
    `approvals_awaited`: being submitted, it will wait for them (vextrus_nb/service/)."""
    notebook = resolve_notebook(runbook, notebooks_dir)
    try:
        environment = load_environment(env, load_inventory())
    except ConfigError as exc:
        raise RunRefused(str(exc)) from None
    merged: dict[str, Any] = {}
    # Per-environment defaults for this runbook, then an explicit file, then -p.
    defaults = paths.parameters_dir() / "runbooks" / runbook / f"{env}.yaml"
    if defaults.is_file():
        merged |= parameters.load_file(defaults)
    if parameters_file is not None:
        merged |= parameters.load_file(parameters_file)
    merged |= given or {}
    if merged.get("env", env) != env:
        raise RunRefused(f"parameter env={merged['env']!r} contradicts --env {env}")
    merged["env"] = env
    declared = parameters.declared_parameters(notebook)
    values = parameters.effective_values(declared, parameters.validate(declared, merged))
    metadata = _notebook_metadata(notebook)
    live = not values.get("dry_run", True)
    if metadata.get("destructive") and live and environment.production and values.get("confirm") != env:
        raise RunRefused(
            f"'{runbook}' changes '{env}', which is production: pass -p confirm={env} to proceed"
        )
    if metadata.get("destructive") and live:
        try:
            held = locks.holder(env)
        except ControlStoreUnavailable as exc:
            raise RunRefused(
                f"'{runbook}' would change '{env}' live, and no lock can be taken: {exc}"
            ) from None
        if held is not None:
            raise locks.refusal(env, held)
    if not approvals_awaited:
        destructive = bool(metadata.get("destructive"))
        _check_approvals(runbook.removesuffix(".ipynb"), environment, destructive, live, submitted)
    # The runbook's own checks come after the guards, so a refusal names the guard first.
    steps.validate(runbook, environment, values)
    return Plan(notebook, runbook.removesuffix(".ipynb"), environment, values, metadata)


def _check_approvals(
    runbook: str, env: Environment, destructive: bool, live: bool, submitted: dict[str, Any] | None
) -> None:
    """A run the environment wants approved runs only as a submitted run its approvers approved
    (the workflow checked each signature; the ledger keeps them for `ledger verify`)."""
    policy = env.approvals
    if policy is None or not policy.needs(runbook, destructive, live):
        return
    if len((submitted or {}).get("approvals") or []) >= policy.required:
        return
    approvers = ", ".join(sorted(policy.approvers))
    raise RunRefused(
        f"'{runbook}' on '{env.name}' needs {policy.required} approvals of {approvers}: submit it "
        f"(`vextrus-nb submit {runbook} --env {env.name} ...`) and have them `vextrus-nb approve` it"
    )


def _verify_approvals(plan: Plan, run_id: str) -> None:
    """Where the run executes, each recorded approval is checked again, against this host's own
    copy of the approvers' keys: a request can carry anything, so counting is not enough."""
    policy = plan.env.approvals
    live = not plan.parameters.get("dry_run", True)
    if policy is None or not policy.needs(plan.runbook, bool(plan.metadata.get("destructive")), live):
        return
    from vextrus_nb.evidence import approvals

    submitted = plan.submitted or {}
    approvals.verify_decisions(
        policy, run_id, plan.runbook, plan.env.name, plan.parameters, submitted.get("by"),
        submitted.get("approvals") or [],
    )  # fmt: skip


@contextlib.contextmanager
def _kernel_environment(variables: dict[str, str]) -> Iterator[None]:
    """The kernel inherits our environment; set the run's variables for its lifetime only."""
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run(
    runbook: str,
    env: str,
    given: dict[str, Any] | None = None,
    parameters_file: Path | None = None,
    notebooks_dir: Path | None = None,
    outputs_dir: Path | None = None,
    cell_timeout_s: int = DEFAULT_CELL_TIMEOUT_S,
    run_id: str | None = None,
    submitted: dict[str, Any] | None = None,
) -> RunOutcome:
    """`run_id`: the id a submitted run was given (a Temporal workflow's), else a new one;
    `submitted`: who submitted it, from where and when, for the record."""
    run_id = run_id or new_run_id()
    try:
        plan = prepare(runbook, env, given, parameters_file, notebooks_dir, submitted)
        if submitted:
            plan = dataclasses.replace(plan, submitted=submitted)
        _verify_approvals(plan, run_id)
        lease = _take_shared_lease(plan, run_id)
    except (RunRefused, ConfigError) as exc:
        return RunOutcome(EXIT_REFUSED, "refused", str(exc))
    try:
        return _execute(plan, outputs_dir or paths.outputs_dir(), cell_timeout_s, run_id, lease)
    finally:
        if lease is not None:
            lease.release()


def _take_shared_lease(plan: Plan, run_id: str) -> Any:
    """With a shared control store, a live destructive run's lease is taken here, before a kernel
    starts, so of N hosts starting at once all but one are refused before anything runs; it is
    renewed here while the kernel works and handed to the kernel to fence its steps."""
    from vextrus_nb.control import settings

    live = not plan.parameters.get("dry_run", True)
    control = settings.load()
    if not (plan.metadata.get("destructive") and live and control.is_shared):
        return None
    from vextrus_nb.control import leases

    try:
        lease = leases.acquire(control, plan.env.name, run_id, plan.runbook)
    except ControlStoreUnavailable as exc:
        raise RunRefused(
            f"'{plan.runbook}' would change '{plan.env.name}' live, and no lock can be taken: {exc}"
        ) from None
    lease.keep_renewed()
    return lease


def _execute(plan: Plan, outputs_dir: Path, cell_timeout_s: int, run_id: str, lease: Any) -> RunOutcome:
    started = datetime.now(UTC)
    output = output_path_for(outputs_dir, plan.env.name, plan.runbook, run_id, started)
    output.parent.mkdir(parents=True, exist_ok=True)
    # Unscrubbed work in progress lives in private files, never at the final path.
    scratch = output.with_name(f".{output.stem}.partial.ipynb")
    record_file = output.with_name(f".{output.stem}.record.json")
    spill_file = output.with_name(f".{output.stem}.seen")
    for private in (scratch, record_file, spill_file):
        private.touch(mode=0o600)
    kernel_vars = {
        RUN_ID_VAR: run_id,
        RECORD_PATH_VAR: str(record_file),
        SPILL_PATH_VAR: str(spill_file),
        OUTPUT_PATH_VAR: str(output),
        "VEXTRUS_HOME": str(paths.project_root()),
        "VEXTRUS_OUTPUTS_DIR": str(outputs_dir),
        "VEXTRUS_SANDBOX_DIR": str(paths.sandbox_dir()),
        "VEXTRUS_PARAMETERS_DIR": str(paths.parameters_dir()),
        locks.LEASE_VAR: json.dumps(lease.handover()) if lease is not None else "",
    }
    status: RunStatus = "passed"
    cause = ""
    try:
        # The kernel first: it boots on the other core while papermill is imported (run/kernel.py).
        with _kernel_environment(kernel_vars), booted_kernel(plan.notebook.parent) as kernel:
            import papermill

            papermill.execute_notebook(
                str(plan.notebook),
                str(scratch),
                parameters=plan.parameters,
                kernel_name="python3",
                km=kernel,
                start_timeout=KERNEL_START_TIMEOUT_S,
                execution_timeout=cell_timeout_s,
                progress_bar=False,
                log_output=False,
                cwd=str(plan.notebook.parent),
            )
    except Exception as exc:  # a dead kernel, a start timeout: still leave the record (papermill #125, #478)
        from papermill.exceptions import PapermillExecutionError

        if isinstance(exc, PapermillExecutionError):
            status = _STATUS_OF_ERROR.get(exc.ename, "error")
            cause = f"{exc.ename}: {exc.evalue}"
        else:
            status, cause = "error", f"{type(exc).__name__}: {exc}"

    from vextrus_nb.evidence import seal  # here: a refusal needs none of sealing's imports

    scrubber = seal.scrubber_for(plan.env, plan.parameters, spill_file)
    spill_file.unlink(missing_ok=True)
    record = scrubber.tree(_final_record(plan, run_id, started, status, cause, record_file))
    record_file.unlink(missing_ok=True)
    if status == "refused":
        scratch.unlink(missing_ok=True)
        return RunOutcome(EXIT_REFUSED, "refused", record["cause"], None, run_id, record)

    import nbformat

    if scratch.stat().st_size:
        nb = nbformat.read(scratch, as_version=4)
    else:  # the kernel never got far enough for papermill to write anything
        nb = nbformat.read(plan.notebook, as_version=4)
    entry = seal.seal(nb, output, record, plan.metadata, scrubber, outputs_dir, "vextrus-nb run")
    scratch.unlink(missing_ok=True)
    exit_code = EXIT_PASSED if status == "passed" else EXIT_FAILED
    message = "passed" if status == "passed" else record["cause"] or status
    return RunOutcome(exit_code, status, message, output, run_id, entry)


def _final_record(
    plan: Plan, run_id: str, started: datetime, status: RunStatus, cause: str, record_file: Path
) -> dict[str, Any]:
    """The kernel's own record when it wrote one, completed with what only the runner knows."""
    from_kernel: dict[str, Any] = {}
    if record_file.exists() and record_file.stat().st_size:
        with contextlib.suppress(json.JSONDecodeError):
            from_kernel = json.loads(record_file.read_text())
    record = {
        **identity.run_identity(run_id, plan.runbook, plan.env.name, plan.parameters),
        "destructive": bool(plan.metadata.get("destructive")),
        "summary": {},
        "failures": [],
        "steps": [],
        "resume_from": None,
        **{k: v for k, v in from_kernel.items() if k not in ("parameters", "run_id")},
        "started_at": started.isoformat(timespec="seconds"),
        "ended_at": now_utc(),
        "status": status,
        "cause": cause,
        **({"submitted": plan.submitted} if plan.submitted else {}),
    }
    return record
