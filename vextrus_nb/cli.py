"""`vextrus-nb`: run runbooks, inspect the ledger, drive the sandbox.

Heavy modules (papermill, pandas) are imported inside the commands that need
them, so `vextrus-nb list` or `ledger verify` answer at once.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from vextrus_nb.errors import ConfigError, VextrusError
from vextrus_nb.exit_codes import EXIT_FAILED, EXIT_REFUSED, EXIT_WAIT_TIMEOUT
from vextrus_nb.import_speed import skip_slow_unused_imports

skip_slow_unused_imports()

P = ParamSpec("P")
T = TypeVar("T")

app = typer.Typer(
    help="Operational runbooks for the Vextrus ERP platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
ledger_app = typer.Typer(help="The tamper-evident record of every run.", no_args_is_help=True)
control_app = typer.Typer(help="The control store: ledger, leases, evidence.", no_args_is_help=True)
sandbox_app = typer.Typer(help="The embedded sandbox environment.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(control_app, name="control")
app.add_typer(sandbox_app, name="sandbox")


# What `run` and `open` both take: the same runbook, environment and parameters, validated alike.
RunbookName = Annotated[str, typer.Argument(help="e.g. verify/smoke (see `vextrus-nb list`)")]
EnvName = Annotated[str, typer.Option("--env", "-e", help="environment name")]
Assignments = Annotated[list[str] | None, typer.Option("--parameter", "-p", help="key=value, repeatable")]
ParametersFile = Annotated[
    Path | None, typer.Option("--parameters-file", "-f", help="YAML file of parameters (lists, dicts)")
]


def _temporal_command(command: Callable[P, None]) -> Callable[P, None]:
    """A command that talks to Temporal ends the process without the interpreter's teardown:
    the SDK's Rust runtime threads can abort a finalizing interpreter (SIGABRT after a correct
    result; temporalio/sdk-python#300), which would turn exit 0 or 2 into -6."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        code = 0
        try:
            command(*args, **kwargs)
        except typer.Exit as exc:
            code = exc.exit_code
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)

    return run


def _err(message: str) -> None:
    typer.echo(f"vextrus-nb: {message}", err=True)


@app.command()
def run(
    runbook: RunbookName,
    env: EnvName,
    parameter: Assignments = None,
    parameters_file: ParametersFile = None,
    cell_timeout: Annotated[int, typer.Option(help="seconds one cell may run")] = 900,
) -> None:
    """Execute a runbook; prints the output notebook path last. Exit 0 passed, 1 failed, 2 refused."""
    from vextrus_nb.errors import RunRefused
    from vextrus_nb.run import parameters, runner

    try:
        given = parameters.parse_assignments(parameter or [])
    except RunRefused as exc:
        _err(f"refused: {exc}")
        raise typer.Exit(EXIT_REFUSED) from None
    from vextrus_nb.run import interactive

    interactive.reap_abandoned()  # the next run is one of the places that notices abandoned runs
    outcome = runner.run(runbook, env, given, parameters_file, cell_timeout_s=cell_timeout)
    if outcome.status == "refused":
        _err(f"refused: {outcome.message}")
    elif outcome.status != "passed":
        _err(f"{outcome.status}: {outcome.message}")
    if outcome.output_path:
        typer.echo(str(outcome.output_path))
    raise typer.Exit(outcome.exit_code)


@app.command()
@_temporal_command
def submit(
    runbook: RunbookName,
    env: EnvName,
    parameter: Assignments = None,
    parameters_file: ParametersFile = None,
    wait: Annotated[bool, typer.Option("--wait", help="follow the run; exit as `run` would")] = False,
    timeout: Annotated[float, typer.Option(help="seconds --wait follows before giving up (exit 3)")] = 1800,
    resume: Annotated[
        str | None, typer.Option(help="deploy/all: the failed pipeline run to go on from (its failed phase)")
    ] = None,
) -> None:
    """Submit a runbook to the team's workers (Temporal); prints the run id. Validated exactly as
    `run`: exit 2 with nothing submitted. With --wait: exit 0 passed, 1 failed, 2 refused,
    3 still running when the timeout ran out (the run goes on)."""
    from vextrus_nb.control import settings
    from vextrus_nb.run import parameters
    from vextrus_nb.service import client

    try:
        given = parameters.parse_assignments(parameter or [])
        if parameters_file is not None:
            given = {**parameters.load_file(parameters_file), **given}
        control = settings.load()
        submitted = client.run_async(client.submit(control, runbook, env, given, resume))
    except VextrusError as exc:
        _err(f"refused: {exc}")
        raise typer.Exit(EXIT_REFUSED) from None
    typer.echo(
        f"submitted run {submitted.run_id} to {submitted.queue} ({len(submitted.workers)} workers polling)",
        err=True,
    )
    typer.echo(submitted.run_id)
    if not wait:
        return
    result = client.run_async(client.wait(control, submitted.run_id, timeout))
    if result is None:
        _err(f"run {submitted.run_id} still running after {timeout:g} s; follow it with `vextrus-nb runs`")
        raise typer.Exit(EXIT_WAIT_TIMEOUT)
    if result["status"] != "passed":
        _err(f"{result['status']}: {result.get('message', '')}")
    for phase in result.get("phases", []):
        resumed = " (finished in the resumed run)" if phase.get("resumed") else ""
        typer.echo(f"{phase['runbook']}: {phase['status']}, run {phase['run_id']}{resumed}", err=True)
    if result.get("output"):
        typer.echo(result["output"])
    raise typer.Exit(result["exit_code"])


@app.command()
@_temporal_command
def approve(
    run_id: Annotated[str, typer.Argument(help="the submitted run's id")],
    name: Annotated[str, typer.Option("--as", help="your name, as the environment's approvers list it")],
    key: Annotated[Path, typer.Option(help="your Ed25519 private key (PEM)")],
    reject: Annotated[
        bool, typer.Option("--reject", help="reject the run instead: it ends, nothing runs")
    ] = False,
    reason: Annotated[str, typer.Option(help="why (required with --reject)")] = "",
) -> None:
    """Sign a submitted run that waits for approval: its id, runbook, environment and the hash of
    its parameters. Exit 2 when the decision does not count, saying why."""
    from vextrus_nb.control import settings
    from vextrus_nb.evidence import approvals
    from vextrus_nb.service import client

    if reject and not reason:
        _err("refused: --reject needs --reason")
        raise typer.Exit(EXIT_REFUSED)
    try:
        control = settings.load()
        request = client.run_async(client.pending_request(control, run_id))
        if not request.get("params_hash"):
            raise ConfigError(f"run {run_id} needs no approval")
        typer.echo(
            f"run {run_id}: {request['runbook']} on {request['env']}, parameters {request['parameters']}, "
            f"asked by {request['submitted']['by']}; "
            f"approved by {', '.join(request['approved_by']) or 'nobody yet'}",
            err=True,
        )
        # The run's own id, which the workflow and the worker check (a run an alert started has a
        # workflow id of its own).
        signed = approvals.message(
            request["run_id"], request["runbook"], request["env"], request["params_hash"]
        )
        decision = {
            "name": name,
            "params_hash": request["params_hash"],
            "signature": approvals.sign(key.read_bytes(), signed),
            "reject": reject,
            "reason": reason,
        }
        typer.echo(client.run_async(client.decide(control, run_id, decision)))
    except (VextrusError, OSError) as exc:
        _err(f"refused: {exc}")
        raise typer.Exit(EXIT_REFUSED) from None


@app.command("alert-receiver")
@_temporal_command
def alert_receiver(
    port: Annotated[int, typer.Option(help="the loopback port Alertmanager's webhook posts to")] = 9095,
    routes: Annotated[
        Path | None, typer.Option(help="the routes file (default parameters/alert-routes.yaml)")
    ] = None,
) -> None:
    """Serve Alertmanager's webhook: firing alerts start the runbooks their routes name, one run
    per firing (docs/service.md). Until SIGTERM."""
    import asyncio
    import signal

    from vextrus_nb.control import settings
    from vextrus_nb.service import alerts, client, receiver

    control = _guard(settings.load)
    table = _guard(lambda: alerts.load_routes(routes))

    async def serve() -> None:
        connected = await client.connect(control)
        server = receiver.application(connected, table).listen(port, address="127.0.0.1")
        typer.echo(f"alert receiver on http://127.0.0.1:{port}/ ({len(table.routes)} routes)", err=True)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()

    _guard(lambda: asyncio.run(serve()))


@app.command()
@_temporal_command
def worker(
    env: Annotated[
        list[str], typer.Option("--env", "-e", help="environment whose queue to serve, repeatable")
    ],
) -> None:
    """Serve the environments' task queues (vextrus-runbooks-<env>) until SIGTERM."""
    import asyncio

    from vextrus_nb.config import load_environment, load_inventory
    from vextrus_nb.control import settings
    from vextrus_nb.service import worker as service_worker

    inventory = _guard(load_inventory)
    for name in env:
        _guard(functools.partial(load_environment, name, inventory))  # an unknown name, before serving
    control = _guard(settings.load)
    _guard(lambda: asyncio.run(service_worker.serve(control, env, lambda line: typer.echo(line, err=True))))


@app.command("open")
@_temporal_command
def open_(
    runbook: RunbookName,
    env: EnvName,
    parameter: Assignments = None,
    parameters_file: ParametersFile = None,
) -> None:
    """Write the run's working copy into outputs/ for JupyterLab; prints its URL or path. Exit 2: refused."""
    from vextrus_nb.run import interactive, parameters

    try:
        opened = interactive.open_run(
            runbook, env, parameters.parse_assignments(parameter or []), parameters_file
        )
        gated = opened.plan.env.approvals is not None and _request_approval(opened)
    except VextrusError as exc:
        _err(f"refused: {exc}")
        raise typer.Exit(EXIT_REFUSED) from None
    if gated:
        typer.echo(
            f"run {opened.run_id} needs approvals before its start cell takes the lease: "
            f"`vextrus-nb approve {opened.run_id} --as NAME --key FILE`",
            err=True,
        )
    url = None
    try:
        from vextrus_nb.run.lab import running_server_url

        url = running_server_url(opened.notebook)
    except ImportError:  # JupyterLab is not installed (the `lab` extra)
        pass
    typer.echo(f"run {opened.run_id}: working copy {opened.notebook}", err=True)
    if url is None:
        typer.echo("no JupyterLab is running over this project: start one with `vextrus-nb lab`", err=True)
    typer.echo(url or str(opened.notebook))


def _request_approval(opened: Any) -> bool:
    """Ask for the working copy's approvals when its environment gates it (a workflow that only
    gathers them; the kernel's start cell checks them before it takes the lease)."""
    from vextrus_nb.control import settings
    from vextrus_nb.service import client

    return bool(client.run_async(client.request_approval(settings.load(), opened.plan, opened.run_id)))


@app.command()
def seal(
    run_id: Annotated[
        str, typer.Argument(help="the run id `vextrus-nb open` printed (see `vextrus-nb runs`)")
    ],
) -> None:
    """Seal a finished interactive run from its saved working copy (the save hook does this in Lab)."""
    from vextrus_nb.run import interactive

    entry = _guard(lambda: interactive.seal_run(run_id))
    typer.echo(
        f"sealed run {run_id}: {entry['status']}, {entry['output']} (sha256 {entry['output_sha256'][:12]})"
    )


@app.command()
@_temporal_command
def runs() -> None:
    """Interactive runs and their state (a run whose kernel went away unfinished is recorded
    abandoned); with a Temporal in the control settings, submitted runs across hosts too."""
    from rich.console import Console
    from rich.table import Table

    from vextrus_nb.run import interactive

    reaped = interactive.reap_abandoned()
    table = Table(title="interactive runs (vextrus-nb open)")
    for column in ("run", "runbook", "env", "state", "opened", "working copy"):
        table.add_column(column)
    for entry in interactive.list_entries():
        table.add_row(
            entry["run_id"],
            entry.get("runbook", ""),
            entry.get("env", ""),
            entry.get("state", "") + (f" ({entry['status']})" if entry.get("status") else ""),
            entry.get("opened_at", ""),
            entry.get("output", ""),
        )
    Console().print(table)
    if reaped:
        typer.echo(f"recorded as abandoned: {', '.join(reaped)}")
    _submitted_runs()


def _submitted_runs() -> None:
    """Submitted and scheduled runs across hosts, when the control settings name a Temporal."""
    from rich.console import Console
    from rich.table import Table

    from vextrus_nb.control import settings

    control = _guard(settings.load)
    if control.shared is None or control.shared.temporal is None:
        return
    from vextrus_nb.service import client

    rows = _guard(lambda: client.run_async(client.list_runs(control)))
    table = Table(title=f"submitted runs (Temporal {control.shared.temporal.address})")
    for column in ("run", "runbook", "env", "state", "started", "on"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["run_id"], row["runbook"], row["env"], row["state"], row["started"], row["where"])
    Console().print(table)


@app.command()
def locks() -> None:
    """Who holds each environment's lock (a destructive live run), if anyone."""
    from vextrus_nb.config import available_environments
    from vextrus_nb.run import locks as environment_locks

    for env in available_environments():
        held = _guard(functools.partial(environment_locks.holder, env))
        if held is None:
            typer.echo(f"{env}: free")
        else:
            where = f"host {held['host']}, operator {held.get('operator', '?')}" if "host" in held else ""
            typer.echo(
                f"{env}: locked by run {held.get('run_id', '?')} ({held.get('runbook', '?')}, "
                f"{where or 'pid ' + str(held.get('pid', '?'))}, since {held.get('started_at', '?')})"
            )


@app.command()
def lab(
    port: Annotated[int | None, typer.Option(help="port on 127.0.0.1 (default: Jupyter's choice)")] = None,
    token: Annotated[str | None, typer.Option(help="the server's token (default: a random one)")] = None,
    browser: Annotated[bool, typer.Option(help="open a browser")] = False,
) -> None:
    """JupyterLab over the project: templates read-only, working copies sealed when saved finished."""
    import os
    import sys

    from vextrus_nb.run.lab import lab_arguments

    arguments = [sys.executable, "-m", "jupyterlab", *lab_arguments(port, token, browser)]
    os.execv(sys.executable, arguments)


class LedgerFormat(StrEnum):
    jsonl = "jsonl"
    json = "json"
    csv = "csv"


class ScheduleEngine(StrEnum):
    crontab = "crontab"
    temporal = "temporal"


SCHEDULE_ACTIONS = ("list", "pause", "unpause", "delete")


@app.command()
@_temporal_command
def schedule(
    runbook: Annotated[
        str, typer.Argument(help="e.g. dr/drill; or list, pause NAME, unpause NAME, delete NAME (temporal)")
    ],
    name: Annotated[str | None, typer.Argument(help="the schedule, for pause/unpause/delete")] = None,
    env: Annotated[str | None, typer.Option("--env", "-e", help="environment name")] = None,
    cron: Annotated[str, typer.Option(help='cron expression, e.g. "0 2 * * *"')] = "0 2 * * *",
    parameter: Annotated[
        list[str] | None, typer.Option("--parameter", "-p", help="key=value, passed to the run")
    ] = None,
    engine: Annotated[
        ScheduleEngine, typer.Option(help="crontab (this host) or temporal (the team's workers)")
    ] = ScheduleEngine.crontab,
    jitter: Annotated[float, typer.Option(help="temporal: seconds of random delay per firing")] = 0.0,
    catchup: Annotated[
        float, typer.Option(help="temporal: seconds within which a missed run still runs")
    ] = 3600,
    note: Annotated[str, typer.Option(help="why it is paused or unpaused")] = "",
    install: Annotated[bool, typer.Option("--install", help="put the line into your crontab")] = False,
    remove: Annotated[
        bool, typer.Option("--remove", help="take this runbook's line out of your crontab")
    ] = False,
) -> None:
    """Schedule RUNBOOK: a crontab line on this host (printed, or installed), or a Temporal
    Schedule for the team's workers (--engine temporal: overlap skipped, missed runs caught up).
    `schedule list|pause|unpause|delete` manage the Temporal ones. Exit 2 on bad input."""
    if runbook in SCHEDULE_ACTIONS:
        _temporal_schedule_action(runbook, name, note)
        return
    if env is None:
        _err("refused: --env is required")
        raise typer.Exit(EXIT_REFUSED)
    if engine is ScheduleEngine.temporal:
        _temporal_schedule(runbook, env, cron, parameter or [], jitter, catchup)
        return
    from vextrus_nb import schedule as scheduling
    from vextrus_nb.config import load_environment
    from vextrus_nb.errors import RunRefused
    from vextrus_nb.run.runner import resolve_notebook

    try:
        resolve_notebook(runbook)
        load_environment(env)
        if remove:
            removed = scheduling.remove(runbook, env)
            typer.echo("removed" if removed else "nothing to remove")
            return
        line = scheduling.crontab_line(runbook, env, cron, parameter or [])
        if install:
            scheduling.install(line, runbook, env)
            typer.echo("installed:")
        typer.echo(line)
    except (RunRefused, VextrusError) as exc:
        _err(f"refused: {exc}")
        raise typer.Exit(EXIT_REFUSED) from None


def _temporal_schedule(
    runbook: str, env: str, cron: str, assignments: list[str], jitter: float, catchup: float
) -> None:
    from datetime import timedelta

    from vextrus_nb.control import settings
    from vextrus_nb.run import parameters
    from vextrus_nb.service import client, schedules

    try:
        given = parameters.parse_assignments(assignments)
        control = settings.load()
        done = client.run_async(
            schedules.upsert(
                control, runbook, env, cron, given, timedelta(seconds=jitter), timedelta(seconds=catchup)
            )
        )
    except VextrusError as exc:
        _err(f"refused: {exc}")
        raise typer.Exit(EXIT_REFUSED) from None
    typer.echo(f"{'created' if done.created else 'updated'} schedule {done.name}: {cron}")


def _temporal_schedule_action(action: str, name: str | None, note: str) -> None:
    from vextrus_nb.control import settings
    from vextrus_nb.service import client, schedules

    control = _guard(settings.load)
    if action == "list":
        for row in _guard(lambda: client.run_async(schedules.listing(control))):
            state = f"PAUSED ({row['note']})" if row["paused"] else "active"
            recent = ", ".join(f"{r['at']} {r['status']}" for r in row["recent"]) or "none yet"
            typer.echo(
                f"{row['name']}: {row['cron']}, {state}; next {', '.join(row['next']) or '-'}; "
                f"runs {row['runs']}, skipped (overlap) {row['skipped_overlap']}; recent: {recent}"
            )
        return
    if not name:
        _err(f"refused: `schedule {action}` needs the schedule's name (`schedule list`)")
        raise typer.Exit(EXIT_REFUSED)
    if action in ("pause", "unpause") and not note:
        _err(f"refused: `schedule {action}` needs --note saying why")
        raise typer.Exit(EXIT_REFUSED)
    act = {"pause": schedules.pause, "unpause": schedules.unpause}.get(action)
    if act is not None:
        _guard(lambda: client.run_async(act(control, name, note)))
    else:
        _guard(lambda: client.run_async(schedules.delete(control, name)))
    typer.echo(f"{action}d {name}" if action != "delete" else f"deleted {name}")


@app.command("list")
def list_runbooks() -> None:
    """The runbooks and the environments they can run against."""
    from vextrus_nb.config import available_environments
    from vextrus_nb.run.runner import list_runbooks as runbooks

    typer.echo("runbooks:     " + ", ".join(runbooks()))
    typer.echo("environments: " + ", ".join(available_environments()))


@ledger_app.command("verify")
def ledger_verify(
    file: Annotated[
        Path | None, typer.Option("--file", help="a JSONL ledger `ledger export` wrote, checked offline")
    ] = None,
    notebooks: Annotated[
        Path | None, typer.Option(help="where that file's notebooks are (default: beside it)")
    ] = None,
) -> None:
    """Exit 0 if every entry and output notebook is intact, else 1 naming the first broken entry."""
    from vextrus_nb.evidence.ledger import verify_file, verify_ledger

    verdict = verify_file(file, notebooks or file.parent) if file is not None else _guard(verify_ledger)
    if verdict.ok:
        typer.echo(verdict.message())
        return
    _err(verdict.message())
    raise typer.Exit(EXIT_FAILED)


@ledger_app.command("export")
def ledger_export(
    fmt: Annotated[
        LedgerFormat, typer.Option("--format", help="jsonl (verifiable offline), json or csv")
    ] = LedgerFormat.json,
    out: Annotated[Path | None, typer.Option("--out", help="file to write; stdout when omitted")] = None,
    notebooks: Annotated[
        Path | None,
        typer.Option(help="also copy each sealed notebook here, by its outputs path (for `verify --file`)"),
    ] = None,
) -> None:
    """The ledger for auditors: JSONL exactly as chained (`ledger verify --file` checks it offline),
    or JSON / CSV for their own tools (CSV flattens the key figures into columns)."""
    from vextrus_nb.evidence.export import export
    from vextrus_nb.evidence.ledger import read_entries

    entries = _guard(read_entries)
    if notebooks is not None:
        from vextrus_nb.evidence.ledger import copy_notebooks

        _guard(lambda: copy_notebooks(entries, notebooks))
    text = export(entries, fmt.value)
    if out:
        out.write_text(text)
        typer.echo(str(out))
    else:
        typer.echo(text, nl=False)


@ledger_app.command("import")
def ledger_import(
    file: Annotated[Path, typer.Argument(help="a host's ledger.jsonl")],
    notebooks: Annotated[
        Path | None, typer.Option(help="that host's outputs directory (default: beside the file)")
    ] = None,
) -> None:
    """Move a file ledger into the shared store: verified first, every entry kept, in order."""
    from vextrus_nb.control import ledger_import, settings, shared_store

    control = _guard(settings.load)
    if not control.is_shared:
        _err("no shared control store is configured ($VEXTRUS_CONTROL or parameters/control.yaml)")
        raise typer.Exit(EXIT_REFUSED)
    store = shared_store.SharedStore(control)
    result = _guard(lambda: ledger_import.import_file_ledger(store, file, notebooks or file.parent))
    typer.echo(f"imported {result.imported} entries, {result.already_there} already in {store.describe()}")


@ledger_app.command("sync")
def ledger_sync() -> None:
    """Append the runs this host sealed while the shared store was unreachable (marked late)."""
    from vextrus_nb import paths
    from vextrus_nb.control import settings, shared_store

    control = _guard(settings.load)
    if not control.is_shared:
        typer.echo("the embedded ledger needs no sync: every run is appended where it ran")
        return
    result = _guard(lambda: shared_store.SharedStore(control).sync(paths.outputs_dir()))
    typer.echo(f"appended late: {', '.join(result.appended) or 'nothing'}; still waiting: {result.waiting}")
    if result.problem:
        _err(result.problem)
        raise typer.Exit(EXIT_FAILED)


@control_app.command("status")
def control_status() -> None:
    """Which control store is in use, whether it answers, and who holds each environment's lease.
    Exit 0 when it answers, 1 when the shared store cannot be reached."""
    from vextrus_nb import paths
    from vextrus_nb.control import settings

    control = _guard(settings.load)
    typer.echo(f"control store: {control.describe()} (from {control.source})")
    if (shared := control.shared) is None:  # a local store: nothing more to ask
        return
    from vextrus_nb.control import evidence_bucket, leases, shared_ledger, shared_store
    from vextrus_nb.errors import ControlStoreUnavailable

    waiting = shared_store.pending_path(paths.outputs_dir())
    if waiting.exists():
        count = len([line for line in waiting.read_text().splitlines() if line.strip()])
        typer.echo(f"waiting on this host for `ledger sync`: {count} runs")
    try:
        held = leases.holders(control)
        typer.echo(f"ledger: answers, {len(shared_ledger.run_ids(control))} entries")
        evidence_bucket.client(control).head_bucket(Bucket=shared.s3.bucket)
        typer.echo("bucket: answers")
    except ControlStoreUnavailable as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_FAILED) from None
    except Exception as exc:  # botocore's own errors: the bucket does not answer
        from vextrus_nb.errors import first_line

        _err(f"{evidence_bucket.where(control)} cannot be reached: {first_line(exc)}")
        raise typer.Exit(EXIT_FAILED) from None
    for env, lease in held.items():
        typer.echo(
            f"lease {env}: run {lease['run_id']} ({lease['runbook']}), host {lease['host']}, operator "
            f"{lease['operator']}, since {lease['started_at']}, expires {lease['expires_at']}, "
            f"token {lease['token']}"
        )
    if not held:
        typer.echo("leases: none held")


@ledger_app.command("keygen")
def ledger_keygen(
    path: Annotated[Path, typer.Argument(help="where to write the Ed25519 private key")],
) -> None:
    """Create a signing key; set VEXTRUS_SIGNING_KEY to its path to sign every new entry."""
    from vextrus_nb.evidence import signing

    try:
        fingerprint = signing.generate(path)
    except FileExistsError:
        _err(f"{path} exists; refusing to overwrite a key")
        raise typer.Exit(EXIT_REFUSED) from None
    typer.echo(f"wrote {path} (public key fingerprint {fingerprint}); export VEXTRUS_SIGNING_KEY={path}")


@app.command()
def report(
    env: Annotated[str | None, typer.Option("--env", "-e", help="only this environment")] = None,
    since: Annotated[str | None, typer.Option(help="only runs on or after this date (YYYY-MM-DD)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="report folder (default outputs/report)")] = None,
) -> None:
    """Render every run to HTML and write an index an auditor can open from file://; prints its path."""
    from datetime import date

    from vextrus_nb.evidence import report as reporting

    try:
        since_date = date.fromisoformat(since) if since else None
    except ValueError:
        _err(f"--since {since!r} is not a date (YYYY-MM-DD)")
        raise typer.Exit(EXIT_REFUSED) from None
    result = _guard(lambda: reporting.build(out, env, since_date))
    typer.echo(f"{result.runs} runs, {result.rendered} notebooks rendered; {result.verdict.message()}")
    typer.echo(str(result.index))
    if not result.verdict.ok:
        raise typer.Exit(EXIT_FAILED)


@sandbox_app.command("up")
def sandbox_up(
    scale: Annotated[float, typer.Option(help="data set size: 1 is a few MB of rows, 100 about 1 GiB")] = 1.0,
    deployment: Annotated[
        str | None,
        typer.Option(help="deployment files to ship: planted (the default, with findings) or hardened"),
    ] = None,
    control: Annotated[
        bool,
        typer.Option(
            "--control", help="also start the sandbox's control store (a team's shared ledger and leases)"
        ),
    ] = False,
) -> None:
    """Start the sandbox in the background (idempotent)."""
    from vextrus_nb.sandbox import control_store, manager

    state = _guard(lambda: manager.up(scale=scale, deployment=deployment, control=control))
    typer.echo(
        f"sandbox up at {state.root}: PostgreSQL :{state.ports['postgres']}, Redis :{state.ports['redis']}, "
        f"and {len(state.ports) - 2} more components and entrypoints (control :{state.control_port}; "
        "`vextrus-nb sandbox status` says which are real servers), "
        f"deployment files: {manager.deployment_variant(state.root)}"
    )
    if control:
        settings = state.root / "control.yaml"
        store = control_store.of_sandbox(state.root)
        assert store is not None
        typer.echo(
            f"control store: PostgreSQL :{store.postgres.port}, bucket {store.bucket_endpoint}; "
            f"a host is any shell with VEXTRUS_CONTROL={settings} and its own VEXTRUS_OUTPUTS_DIR"
        )


@sandbox_app.command("deployment")
def sandbox_deployment(
    variant: Annotated[str, typer.Argument(help="planted (realistic findings) or hardened (passes)")],
) -> None:
    """Switch the deployment files the checklist's static checks read."""
    from vextrus_nb.sandbox import manager

    target = _guard(lambda: manager.use_deployment(variant))
    typer.echo(f"deployment files: {variant} ({target})")


@sandbox_app.command("down")
def sandbox_down() -> None:
    """Stop the sandbox and delete its state."""
    from vextrus_nb.sandbox import manager

    typer.echo("sandbox stopped" if _guard(manager.down) else "no sandbox running")


@sandbox_app.command("status")
def sandbox_status() -> None:
    """Each component: port, running, injected fault, real server or simulation."""
    from rich.console import Console
    from rich.table import Table

    from vextrus_nb.sandbox import manager

    info = _guard(manager.status)
    table = Table(
        title=f"sandbox {info['root']} (started {info['started_at']}, scale {info['scale']}, "
        f"deployment files {info['deployment']})"
    )
    for column in ("component", "port", "running", "fault", "served by", "RSS MB"):
        table.add_column(column)
    for name, row in info["components"].items():
        fault = row["fault"]["mode"] if row["fault"] else ""
        served = f"real: {row['server']}" if row.get("real") else row.get("server", "simulated")
        rss = f"{row['rss_bytes'] / 2**20:.0f}" if row.get("rss_bytes") else ""
        running = "yes" if row["running"] else "[red]no[/red]"
        table.add_row(name, str(row["port"]), running, fault, served, rss)
    for name, row in info.get("ha", {}).items():  # PgBouncer, the Sentinels, the replicas
        fault = row["fault"]["mode"] if row["fault"] else ""
        running = "yes" if row["running"] else "[red]no[/red]"
        table.add_row(name, str(row["port"]), running, fault, f"real: {row['server']}", "")
    if row := info.get("control"):  # the control store: beside the platform, not part of it
        fault = row["fault"]["mode"] if row["fault"] else ""
        running = "yes" if row["running"] else "[red]no[/red]"
        table.add_row("control store", str(row["port"]), running, fault, f"real: {row['server']}", "")
    Console().print(table)
    if info.get("total_rss_bytes"):
        typer.echo(
            f"resident memory: {info['total_rss_bytes'] / 2**20:.0f} MB in all, "
            f"{info['real_rss_bytes'] / 2**20:.0f} MB of it the real servers beside PostgreSQL and Redis"
        )


@sandbox_app.command("fault")
def sandbox_fault(
    service: Annotated[
        str,
        typer.Argument(
            help="component name from the inventory, or an HA part (postgres-replica, pgbouncer, "
            "redis-replica, sentinel-1..3)"
        ),
    ],
    mode: Annotated[
        str,
        typer.Argument(
            help="down | unhealthy | slow | live-deps (services); killed (postgres, redis: kill -9); "
            "lagging (postgres-replica: replay paused); partitioned (sentinel-N: SIGSTOP)"
        ),
    ],
    delay: Annotated[float | None, typer.Option(help="seconds of delay for 'slow'")] = None,
) -> None:
    """Inject a fault into one component."""
    from vextrus_nb.sandbox import manager

    record = _guard(lambda: manager.fault(service, mode, delay_s=delay))
    typer.echo(f"{service}: {record['mode']}" + (f" ({record['delay_s']:g}s)" if "delay_s" in record else ""))


@sandbox_app.command("heal")
def sandbox_heal(
    service: Annotated[str | None, typer.Argument(help="component to heal; all when omitted")] = None,
) -> None:
    """Clear injected faults."""
    from vextrus_nb.sandbox import manager

    healed = _guard(lambda: manager.heal(service))
    typer.echo("healed: " + (", ".join(healed) if healed else "nothing was faulted"))


def _guard(action: Callable[[], T]) -> T:
    """Known errors become one clear line and exit code 2, not a traceback."""
    try:
        return action()
    except VextrusError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_REFUSED) from None


if __name__ == "__main__":
    app()
