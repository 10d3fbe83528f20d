"""The steps of notebooks/dr/platform-drill.ipynb: the reference documents' "Scenario 2: complete
cluster failure", drilled. A second, fresh platform is started beside the environment (the
driver's: drivers.ScratchPlatforms; the sandbox's starts a second sandbox in its own directory,
on its own ports), every datastore of the newest (or a named) set is restored into it and
proven (backup.platform_restore), the smoke sweep is run against it until it passes, the checklist
against it and against the environment, and the platform is torn down, also when a step failed.

PostgreSQL comes back as in a real complete failure: the whole cluster with pgBackRest from
repository `repo` (1, or 2: the S3 one) and its archived WAL to the latest moment (or
`target_time`), into the second platform before its server first starts, with the services
taking the environment's credentials; `postgres_from="dumps"` restores the set's logical dumps
instead. The repository is verified with the set, side by side, and the backup the restore
starts from is chosen, before anything starts (a target with no backup before it starts nothing).

RTO is measured: the drill's start to the smoke sweep passing on the second platform, in all,
and for each datastore the drill's start to its proof, with every phase timed; RPO (pgBackRest,
to the latest moment) in the restored cluster: its newest heartbeat against the drill's start (a
drill to `target_time` proves it recovered to the target instead: no RPO). They go on record and
into a Prometheus textfile beside dr/drill's. Destructive (it starts a whole platform and takes
the environment's lock): a dry run verifies the set (and the repository) and shows the plan, and
starts and writes nothing."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vextrus_nb import checks
from vextrus_nb.backup import pgbackrest, pitr, platform_restore
from vextrus_nb.backup.access import (
    check_set_choice,
    find_set,
    physical_stanza,
    postgres_login,
    repo_of,
    target_time_of,
)
from vextrus_nb.backup.manifest import Manifest
from vextrus_nb.checks import ChecklistResult
from vextrus_nb.config import Environment
from vextrus_nb.drivers.base import ScratchPlatform, ScratchPlatforms
from vextrus_nb.errors import BackupError, RunRefused
from vextrus_nb.smoke_sweep import SmokeResult, sweep_environment

if TYPE_CHECKING:
    from vextrus_nb.run.session import Runbook

RUNBOOK = "dr/platform-drill"
RTO_TARGET_S = 4 * 3600.0  # the reference documents' RTO objective, "4 hours"
SMOKE_DEADLINE_S = 120.0  # restored services reconnect after their databases are swapped in
# A drill to the latest moment whose recovery point is older than this fails: the WAL archive
# is behind (the same bound as the VextrusWalArchiveBehind alert).
RPO_TARGET_S = 60.0


def postgres_from_of(parameters: dict[str, Any]) -> platform_restore.PostgresSource:
    """The `postgres_from` parameter: pgbackrest (the default) or dumps."""
    source = str(parameters.get("postgres_from", "pgbackrest") or "pgbackrest")
    if source == "dumps":
        return "dumps"
    if source == "pgbackrest":
        return "pgbackrest"
    raise RunRefused(
        f"postgres_from must be one of {', '.join(platform_restore.POSTGRES_SOURCES)}, not {source!r}"
    )


def validate(env: Environment, parameters: dict[str, Any]) -> None:
    """Refuse bad parameters before anything is touched (the runner exits 2, before a kernel)."""
    check_set_choice(env, {"set_id": parameters.get("set_id", ""), "from_store": "local"})
    for name in ("smoke_deadline_s", "rto_target_s", "rpo_target_s"):
        value = parameters.get(name)
        if value is not None and not (isinstance(value, int | float) and value > 0):
            raise RunRefused(f"{name} must be a positive number of seconds, not {value!r}")
    source = postgres_from_of(parameters)
    repo, when = repo_of(parameters), target_time_of(parameters)
    if source == "dumps":
        if repo != 1 or when is not None:
            raise RunRefused(
                "repo and target_time choose what pgBackRest restores: with postgres_from=dumps "
                "PostgreSQL comes from the set's logical dumps"
            )
        return
    pgbackrest_settings = env.backup.pgbackrest if env.backup else None
    if pgbackrest_settings is None:
        raise RunRefused(
            f"environment '{env.name}' takes no physical backups (backup.pgbackrest): "
            "drill with postgres_from=dumps"
        )
    if repo == pgbackrest.S3_REPO and pgbackrest_settings.s3 is None:
        raise RunRefused(f"environment '{env.name}' names no S3 repository (backup.pgbackrest.s3): repo=2")
    if when is not None and when > datetime.now(UTC):
        raise RunRefused(f"target_time {when.isoformat()} is in the future")


def platform_root(rb: Runbook) -> Path:
    """Where the second platform keeps everything: this run's own folder in the temp directory."""
    return Path(tempfile.gettempdir()) / f"vextrus-platform-drill-{rb.run_id}"


@dataclass
class PlatformDrillResult:
    dry_run: bool
    postgres_from: platform_restore.PostgresSource = "pgbackrest"
    set_id: str = ""
    platform_root: str = ""
    physical: platform_restore.PhysicalRecovery | None = None  # PostgreSQL by pgBackRest
    verify_s: float = 0.0  # the set and the repository verified, side by side
    planned: list[dict[str, Any]] = field(default_factory=list)
    present: list[str] = field(default_factory=list)  # the datastores the set holds something of
    recoveries: list[platform_restore.DatastoreRecovery] = field(default_factory=list)
    provision_s: float = 0.0  # the drill's start to the second platform answering
    datastores_s: float = 0.0  # the set's datastores into the answering platform, side by side
    smoke_s: float = 0.0  # the platform's datastores proven to its smoke sweep passing
    smoke: SmokeResult | None = None
    smoke_attempts: int = 0
    rto_s: float | None = None  # the drill's start to the smoke sweep passing
    checklist_s: float = 0.0  # both checklists, after the RTO
    teardown_s: float = 0.0  # stopping and deleting the second platform
    restored_checklist: ChecklistResult | None = None
    live_checklist: ChecklistResult | None = None
    failure: str = ""
    writes: list[str] = field(default_factory=list)
    torn_down: bool = False

    @property
    def unproven(self) -> list[str]:
        return [r.datastore for r in self.recoveries if not r.proven]

    @property
    def checklist_regressions(self) -> list[str]:
        """Critical checks failing on the restored platform that pass on the environment itself:
        what the restore lost (a check failing on both is the environment's, not the drill's)."""
        if self.restored_checklist is None or self.live_checklist is None:
            return []
        live = set(self.live_checklist.critical_failures())
        return [c for c in self.restored_checklist.critical_failures() if c not in live]

    @property
    def rpo_s(self) -> float | None:
        """Measured in the restored cluster: the drill's start minus its newest heartbeat; None
        for the dumps, and for a drill to `target_time` (the figure would be the target's age)."""
        return None if self.physical is None else self.physical.rpo_s

    @property
    def measures_rpo(self) -> bool:
        """A pgBackRest drill to the latest moment: the one whose RPO is measured and judged."""
        return self.physical is not None and self.physical.target_time is None

    @property
    def passed(self) -> bool:
        return (
            not self.dry_run
            and not self.failure
            and bool(self.recoveries)
            and not self.unproven
            and self.rto_s is not None
            and not self.checklist_regressions
        )

    def phases(self) -> dict[str, float]:
        """Every phase's seconds, in the order they ran (pgBackRest's restore, recovery and
        proof are within the platform's start: they happen before its services start)."""
        figures = {"verify_s": round(self.verify_s, 2), "provision_s": round(self.provision_s, 2)}
        if self.physical is not None and self.recoveries:
            figures.update(self.physical.phases())
        figures["datastores_s"] = round(self.datastores_s, 2)
        figures["smoke_s"] = round(self.smoke_s, 2)
        return figures

    def rto_by_datastore(self) -> dict[str, float]:
        """Each datastore's proof, then all of it (the smoke sweep passing), in seconds since the
        drill's start: what the report's DR chart draws."""
        figures = {r.datastore: round(r.ready_at_s, 2) for r in self.recoveries}
        if self.rto_s is not None:
            figures["all"] = round(self.rto_s, 2)
        return figures

    def plan_note(self) -> Any:
        from vextrus_nb.display import note

        if self.failure and not self.planned:
            return note(f"Nothing was started or restored: {self.failure}")
        what = "would start" if self.dry_run else "started"
        repository = (
            f" and pgBackRest repository {self.physical.repo} (every backup file and archived WAL "
            "segment, no gap)"
            if self.physical is not None
            else ""
        )
        rpo = f" RPO, measured in the restored cluster: {self.rpo_s:.1f} s." if self.rpo_s is not None else ""
        proved = self.physical.recovered_to_target() if self.physical is not None else None
        if proved is not None and self.recoveries:
            rpo = f" No RPO for a drill to a target time; PostgreSQL {proved}."
        return note(
            f"Set {self.set_id}{repository} verified. The drill {what} a second platform in "
            f"{self.platform_root} (its own ports, deleted afterwards) and restores into it:{rpo}"
        )

    def table(self) -> Any:
        import pandas as pd

        rows = [r.row() for r in self.recoveries] or self.planned
        return pd.DataFrame(rows)

    def smoke_table(self) -> Any:
        from vextrus_nb.display import note

        if self.smoke is None:
            return note("No smoke sweep was run (a dry run, or the restore failed first).")
        return self.smoke.table()

    def checklist_table(self) -> Any:
        import pandas as pd

        from vextrus_nb.display import note

        if self.restored_checklist is None or self.live_checklist is None:
            return note("No checklist was run (a dry run, or the smoke sweep did not pass).")
        restored, live = self.restored_checklist, self.live_checklist
        return pd.DataFrame(
            [
                {
                    "platform": name,
                    "score": result.score,
                    "failed checks": len(result.failed),
                    "critical failed": ", ".join(result.critical_failures()) or "none",
                }
                for name, result in (("restored (second platform)", restored), ("the environment", live))
            ]
        )

    def rpo_not_measured(self) -> str | None:
        """Why a live drill has no RPO, for the record (None: it has one, or it is a dry run)."""
        if self.dry_run or self.rpo_s is not None:
            return None
        if self.physical is None:
            return "PostgreSQL came from the set's logical dumps: no recovery point to measure"
        proved = self.physical.recovered_to_target()
        if proved is not None:
            return f"a drill to target_time measures no RPO (it would be the target's age): {proved}"
        if not self.recoveries:
            return "PostgreSQL was not recovered: the drill stopped first"
        return "the restored cluster gave no newest heartbeat to measure it from"

    def figure(self) -> Any:
        import pandas as pd
        import plotly.express as px

        figures = self.rto_by_datastore()  # empty for a dry run: an empty chart, titled so
        frame = pd.DataFrame(
            {
                "datastore": list(figures),
                "seconds": list(figures.values()),
                "reached": ["smoke sweep passing (RTO)" if k == "all" else "proven" for k in figures],
            }
        )
        fig = px.bar(
            frame,
            x="datastore",
            y="seconds",
            color="reached",
            title=f"Platform drill: seconds from the drill's start to each datastore proven, and RTO "
            f"(set {self.set_id})"
            if figures
            else "Platform drill: nothing was timed (a dry run, or it stopped before any restore)",
        )
        fig.update_layout(height=420, yaxis_title="seconds since the drill's start")
        return fig

    def summary(self) -> dict[str, Any]:
        return {
            "set_id": self.set_id,
            "dry_run": self.dry_run,
            "postgres_from": self.postgres_from,
            "pgbackrest": self.physical.summary() if self.physical is not None else None,
            "rpo_s": None if self.rpo_s is None else round(self.rpo_s, 2),
            "rpo_not_measured": self.rpo_not_measured(),
            "phases": self.phases(),
            "datastores": [r.datastore for r in self.recoveries] or self.present,
            "provision_s": round(self.provision_s, 2),
            "rto_s": None if self.rto_s is None else round(self.rto_s, 2),
            "rto_by_datastore": self.rto_by_datastore(),
            "datastore_seconds": {r.datastore: round(r.seconds, 2) for r in self.recoveries},
            "unproven": self.unproven,
            "smoke_attempts": self.smoke_attempts,
            "checklist_s": round(self.checklist_s, 2),
            "teardown_s": round(self.teardown_s, 2),
            "critical_down": self.smoke.critical_down if self.smoke else None,
            "restored_score": self.restored_checklist.score if self.restored_checklist else None,
            "live_score": self.live_checklist.score if self.live_checklist else None,
            "checklist_regressions": self.checklist_regressions,
            "writes": self.writes,
            "torn_down": None if self.dry_run else self.torn_down,
            "failure": self.failure or None,
            "verified": self.passed,
        }


def drill(rb: Runbook) -> PlatformDrillResult:
    """Verify the set, then (not in a dry run) start the second platform, restore and prove every
    datastore, sweep until it passes, run the checklist on it and on the environment, tear it
    down. Never raises for a failure of the platform: the failure is recorded and the metric says
    so; the second platform is torn down whatever happened."""
    started = time.perf_counter()
    started_at = datetime.now(UTC)
    source = postgres_from_of(rb.parameters)
    result = PlatformDrillResult(rb.dry_run, postgres_from=source, platform_root=str(platform_root(rb)))
    doing = "finding the backup set"
    try:
        path = find_set(rb, rb.parameters.get("set_id", ""), "local")
        result.set_id = path.name
        if source == "pgbackrest":
            doing = f"verifying set {path.name} and the pgBackRest repository"
            result.physical = _physical(rb, started, started_at)
        else:
            doing = f"verifying set {path.name}"
        manifest = _verify(path, result.physical)
        result.verify_s = time.perf_counter() - started
        rb.summary["set_id"] = manifest.set_id
        result.planned = platform_restore.plan(manifest, result.physical)
        result.present = [p["datastore"] for p in result.planned if not p["into"].startswith("nothing")]
        if rb.dry_run:
            return result
        doing = "asking the driver for a second platform"
        driver = _platforms(rb)
        doing = "starting the second platform"
        if result.physical is not None:
            doing = "starting the second platform from the pgBackRest restore"
        result.writes.append(f"a second platform in {result.platform_root} (started, then deleted)")
        second = driver.scratch_platform(platform_root(rb), result.physical)
        with _timing_teardown(second, result) as platform:
            result.provision_s = time.perf_counter() - started
            doing = "restoring into the second platform"
            restoring = time.perf_counter()
            result.recoveries = platform_restore.restore_platform(
                platform,
                rb.inventory,
                path,
                manifest,
                rb.run_id,
                started,
                rb.scrubber,
                rb.env.backup.jobs if rb.env.backup else 2,
                result.physical.tables_proven if result.physical is not None else None,
            )
            result.datastores_s = time.perf_counter() - restoring
            if result.unproven:
                return result
            doing = "sweeping the second platform"
            sweeping = time.perf_counter()
            _sweep_until_passing(rb, platform, result, started)
            result.smoke_s = time.perf_counter() - sweeping
            if result.rto_s is None:
                return result
            doing = "running the checklist on the second platform and on the environment"
            checked = time.perf_counter()
            result.restored_checklist = checks.run_checklist(
                platform.environment, rb.inventory, scrubber=rb.scrubber
            )
            result.live_checklist = checks.run_checklist(rb.env, rb.inventory, scrubber=rb.scrubber)
            result.checklist_s = time.perf_counter() - checked
    except Exception as exc:  # a datastore, the driver or the set failing: recorded, then judged
        result.failure = _failure(rb, doing, exc)
    finally:
        if result.physical is not None:  # no proof left reading a torn-down cluster while judged
            result.physical.close(rb.scrubber.text)
        result.torn_down = not Path(result.platform_root).exists()
    return result


def _physical(rb: Runbook, started: float, started_at: datetime) -> platform_restore.PhysicalRecovery:
    """What the second platform's PostgreSQL is recovered from: the environment's stanza, the
    chosen repository and target, every service database proven (the whole cluster comes back)."""
    stanza = physical_stanza(rb)
    if stanza is None:
        raise BackupError(f"environment '{rb.env.name}' takes no physical backups (backup.pgbackrest)")
    return platform_restore.PhysicalRecovery(
        stanza=stanza,
        live=postgres_login(rb),
        services=[s for s in rb.inventory.services() if s.database],
        drill_started=started,
        drill_started_at=started_at,
        repo=repo_of(rb.parameters),
        target_time=target_time_of(rb.parameters),
    )


def _verify(path: Path, physical: platform_restore.PhysicalRecovery | None) -> Manifest:
    """The set file by file and, for a pgBackRest drill, the repository (`pgbackrest verify`:
    every backup file, every archived WAL segment, no gap) and the backup the restore starts from
    (the newest that fits the target), side by side; any failing stops the drill before anything
    starts, naming what is wrong."""
    if physical is None:
        return platform_restore.verify_by_datastore(path)

    def repository_and_backup() -> None:
        pitr.verify_before_restore(physical.stanza, physical.repo)
        physical.choose()

    with ThreadPoolExecutor(max_workers=2) as pool:
        repository = pool.submit(repository_and_backup)
        manifest = pool.submit(platform_restore.verify_by_datastore, path)
        repository.result()
        return manifest.result()


def _platforms(rb: Runbook) -> ScratchPlatforms:
    from vextrus_nb import drivers

    driver = drivers.for_environment(rb.env)
    if not isinstance(driver, ScratchPlatforms):
        raise BackupError(
            f"the {rb.env.driver} driver cannot start a second platform to drill a complete failure "
            "in: provision one by hand and restore each datastore with dr/restore target=live"
        )
    return driver


@contextlib.contextmanager
def _timing_teardown(
    platforms: AbstractContextManager[ScratchPlatform], result: PlatformDrillResult
) -> Iterator[ScratchPlatform]:
    """The second platform, with how long its teardown took on record (whatever ended the body)."""
    leaving: float | None = None
    try:
        with platforms as platform:
            try:
                yield platform
            finally:
                leaving = time.perf_counter()
    finally:
        if leaving is not None:
            result.teardown_s = time.perf_counter() - leaving


def _sweep_until_passing(
    rb: Runbook, platform: ScratchPlatform, result: PlatformDrillResult, started: float
) -> None:
    """The smoke sweep against the second platform, again until no critical component is down
    (the RTO's end) or the deadline passes (the last sweep is what the record shows)."""
    deadline = time.monotonic() + float(rb.parameters.get("smoke_deadline_s") or SMOKE_DEADLINE_S)
    while True:
        result.smoke = sweep_environment(platform.environment, rb.inventory, scrubber=rb.scrubber)
        result.smoke_attempts += 1
        if not result.smoke.critical_down:
            result.rto_s = time.perf_counter() - started
            return
        if time.monotonic() > deadline:
            return
        time.sleep(0.5)  # between sweeps: each probes every component once


def _failure(rb: Runbook, doing: str, exc: Exception) -> str:
    """What failed, scrubbed: a BackupError already names it; anything else with what we were doing."""
    if isinstance(exc, BackupError):
        return rb.scrubber.text(str(exc))
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [""]
    # A server's log tail (the second platform's start) ends with what went wrong: keep both ends.
    detail = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"
    return rb.scrubber.text(f"{doing} failed: {type(exc).__name__}: {detail}")


def judge(rb: Runbook, result: PlatformDrillResult) -> Path | None:
    """Record the figures; a live drill writes its metric whatever failed; fail the run if the
    drill did. A dry run proves nothing, so it writes no metric (one saying 0 would alert). A
    drill over its RTO or RPO target has failed: the record's `verified` and the metric's
    `success` say so too, not only the run's failures."""
    failures = drill_failures(rb, result)
    rb.summary.update(result.summary())
    rb.summary["verified"] = result.passed and not failures
    path = None if result.dry_run else write_metrics(rb, result, passed=result.passed and not failures)
    if path is not None:
        rb.add_artifact(path)
    for failure in failures:
        rb.fail(failure)
    return path


def drill_failures(rb: Runbook, result: PlatformDrillResult) -> list[str]:
    """Why the drill failed, each in a sentence (none: it passed, or it was a dry run)."""
    failures = []
    if result.failure:
        failures.append(result.failure)
    if result.unproven:
        detail = "; ".join(f"{r.datastore}: {r.mismatches[0]}" for r in result.recoveries if not r.proven)
        failures.append(
            f"restore not proven on the second platform for: {', '.join(result.unproven)} ({detail})"
        )
    elif not result.dry_run and not result.failure and result.rto_s is None:
        down = ", ".join(result.smoke.critical_down) if result.smoke else "?"
        failures.append(
            f"the restored platform's smoke sweep did not pass: critical component(s) down: {down}"
        )
    if result.checklist_regressions:
        failures.append(
            "critical check(s) fail on the restored platform but pass on the environment: "
            + ", ".join(result.checklist_regressions)
        )
    target = float(rb.parameters.get("rto_target_s") or RTO_TARGET_S)
    if result.rto_s is not None and result.rto_s > target:
        failures.append(f"RTO {result.rto_s:.1f} s exceeds the target of {target:g} s")
    rpo_target = float(rb.parameters.get("rpo_target_s") or RPO_TARGET_S)
    physical = result.physical
    if physical is not None and result.measures_rpo and not result.dry_run:
        if result.rpo_s is None:
            why = result.rpo_not_measured()
            failures.append(f"RPO not measured, so not shown within the target of {rpo_target:g} s: {why}")
        elif result.rpo_s > rpo_target:
            failures.append(
                f"RPO {result.rpo_s:.1f} s exceeds the target of {rpo_target:g} s: the restored cluster's "
                f"newest heartbeat is {physical.summary()['recovery_point']}, the drill started "
                f"{physical.drill_started_at.isoformat(timespec='seconds')}"
            )
    if not result.torn_down and not result.dry_run:
        failures.append(f"the second platform was not torn down: delete {result.platform_root}")
    return failures


def write_metrics(rb: Runbook, result: PlatformDrillResult, passed: bool | None = None) -> Path:
    """A Prometheus textfile (node_exporter's textfile collector) beside dr/drill's; `passed`: the
    judged verdict (the targets included), else what the result alone says."""

    from prometheus_client import CollectorRegistry, Gauge

    from vextrus_nb.evidence import metrics

    registry = CollectorRegistry()
    env = rb.env.name
    figures: list[tuple[str, str, float]] = [
        (
            "vextrus_dr_platform_drill_success",
            "1 if the last platform drill passed",
            result.passed if passed is None else passed,
        ),
        (
            "vextrus_dr_platform_drill_rto_seconds",
            "drill start to the restored platform's smoke sweep passing (NaN: it never did)",
            float("nan") if result.rto_s is None else result.rto_s,
        ),
        ("vextrus_dr_platform_drill_timestamp_seconds", "when the last platform drill ended", time.time()),
    ]
    if result.measures_rpo:  # a drill to target_time has no RPO: not a figure, not even NaN
        figures.insert(
            2,
            (
                "vextrus_dr_platform_drill_rpo_seconds",
                "the drill's start minus the restored cluster's newest heartbeat (NaN: not measured)",
                float("nan") if result.rpo_s is None else result.rpo_s,
            ),
        )
    for name, doc, value in figures:
        Gauge(name, doc, ["env"], registry=registry).labels(env=env).set(float(value))
    ready = Gauge(
        "vextrus_dr_platform_drill_datastore_ready_seconds",
        "drill start to the datastore's restore proven on the second platform",
        ["env", "datastore"],
        registry=registry,
    )
    for recovery in result.recoveries:
        ready.labels(env=env, datastore=recovery.datastore).set(recovery.ready_at_s)
    return metrics.write_textfile(registry, f"vextrus_dr_platform_drill_{env}")


# -- Evidence: what the report and the metrics read of this runbook's runs ---------------------
# Plain data (evidence/declared.py): read from this source without importing the module, so it
# names only the declaration types (as declared.X) and literals.
from vextrus_nb.evidence import declared  # noqa: E402

EVIDENCE = declared.Evidence(
    figures=(
        declared.Figure("rto_s", "RTO", "s"),
        declared.Figure("rpo_s", "RPO", "s"),
        declared.Figure("critical_down", "critical components down after the restore"),
        declared.Figure("verified"),
    ),
    trends=(
        # The RTO per datastore above; the RPO (another quantity: how far behind the drill's start
        # the restored cluster's newest heartbeat is) below it on its own axis. A dry run timed
        # nothing; a drill to a target time has no RPO.
        declared.Trend(
            "Platform drill: RTO per datastore, and RPO: {env}",
            plots=(
                declared.Plot("rto_by_datastore", each=True),
                declared.Plot("rpo_s", label="RPO", lower=True, enough=False),
            ),
            empty="Platform drill RTO",
            live_only=True,
            unit="s",
            hover=(
                declared.Figure("postgres_from", "postgres from", missing="dumps"),
                declared.Figure("set_id", "set"),
            ),
            upper_title="RTO per datastore: seconds from the drill's start to its proof "
            "('all': smoke sweep passing)",
            lower_title="RPO: seconds the restored cluster's newest heartbeat is behind the drill's start",
            upper_axis="RTO (s)",
            lower_axis="RPO (s)",
            height=560,
        ),
    ),
)
