"""dr/platform-drill on the sandbox's real servers: one set of two databases, Redis, the
bucket's documents and Kafka's metadata, drilled live into a second sandbox (the drill's own,
started and torn down by the runbook): PostgreSQL whole with pgBackRest from repository 1 and
from repository 2 (the S3 one), and from the set's dumps; and the ways it refuses: a damaged
file of each datastore, a corrupted pgBackRest file and a WAL segment missing from the archive
named before anything starts, bad parameters refused before a kernel, a dry run that starts and
writes nothing."""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import vextrus_nb
from vextrus_nb.backup import heartbeat, pgbackrest, pitr, sets
from vextrus_nb.backup import platform_restore as engine
from vextrus_nb.backup.access import physical_stanza
from vextrus_nb.backup.take import back_up
from vextrus_nb.config import load_environment, load_inventory
from vextrus_nb.errors import BackupError, RunRefused, SandboxError
from vextrus_nb.evidence import declared, ledger, report
from vextrus_nb.evidence.scrub import REDACTED
from vextrus_nb.run.session import Runbook
from vextrus_nb.runbooks.dr import platform_drill
from vextrus_nb.sandbox import backup_repositories, manager, real_platform, real_servers
from vextrus_nb.sandbox_state import SandboxState

from .helpers import admin_connection, ledger_entries, notebook_plain_text, run_cli, wait_until

BUCKET = "vextrus-files"
DOCUMENTS = {"contracts/pd-0001.pdf": b"%PDF-1.7 contract" * 64, "hr/pd-badge.png": bytes(range(256)) * 8}
TOPIC, GROUP = "vextrus.platform-drill.events", "platform-drill-consumers"
SERVICES = "auth,finance"


def _unseed(state: SandboxState) -> None:
    """Take away what _seed put into the session sandbox: triage's consumer-lag table and the
    checklist's replication-factor check read every topic and group of the shared broker."""
    s3 = real_servers.s3_client(real_platform.server_handle(state, "minio"))
    s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": key} for key in DOCUMENTS]})
    client = redis.Redis(
        port=state.ports["redis"], username="default", password=state.secret("redis_password")
    )
    client.delete(*(f"platform-drill:session:{i}" for i in range(5)))
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{state.ports['kafka']}", "log_level": 0})
    for done in admin.delete_consumer_groups([GROUP]).values():
        done.result(timeout=10)
    for done in admin.delete_topics([TOPIC]).values():
        done.result(timeout=10)
    wait_until(lambda: TOPIC not in admin.list_topics(timeout=10).topics, "the drill's topic to be gone")


def _seed(state: SandboxState) -> None:
    """Something of every datastore for the set to hold: documents, sessions, a topic and a group."""
    s3 = real_servers.s3_client(real_platform.server_handle(state, "minio"))
    for key, body in DOCUMENTS.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    client = redis.Redis(
        port=state.ports["redis"], username="default", password=state.secret("redis_password")
    )
    client.mset({f"platform-drill:session:{i}": f"tenant-{i}" for i in range(5)})
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{state.ports['kafka']}", "log_level": 0})
    if TOPIC not in admin.list_topics(timeout=10).topics:
        [created] = admin.create_topics([NewTopic(TOPIC, 2, 1)]).values()
        created.result(timeout=10)
    parts = [TopicPartition(TOPIC, 0, 3), TopicPartition(TOPIC, 1, 7)]
    [done] = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP, parts)]).values()
    done.result(timeout=10)


@pytest.fixture(scope="module")
def drill_outputs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This module's outputs (ledger, metrics), for the CLI runs and the in-process ones alike."""
    folder = tmp_path_factory.mktemp("platform-drill-outputs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VEXTRUS_OUTPUTS_DIR", str(folder))
        patch.delenv("VEXTRUS_METRICS_DIR", raising=False)
        yield folder


@pytest.fixture(scope="module")
def a_set(sandbox: SandboxState, drill_outputs: Path) -> Iterator[Path]:
    """One set of two databases (the bench drills all of them, at scale 100) and every other
    datastore, taken in-process (no kernel to start); what was seeded for it is taken away after
    the module, so the session sandbox's other tests find it as it was."""
    _seed(sandbox)
    try:
        rb = vextrus_nb.start(
            "dr/backup", env="sandbox", writes="a backup set", services=SERVICES, kind="incr"
        )
        taken = back_up(rb, SERVICES, "incr")
        assert engine.datastores_in(taken.manifest) == ["postgres", "redis", "objects", "kafka"]
        yield taken.path
    finally:
        _unseed(sandbox)


def _cli_drill(a_set: Path, outputs: Path, *parameters: str) -> dict[str, Any]:
    """A live drill through the CLI: its ledger entry and output notebook."""
    before = {e["run_id"] for e in ledger_entries(outputs)}
    done = run_cli(
        "run", "dr/platform-drill", "--env", "sandbox", "-p", "dry_run=False", "-p", f"set_id={a_set.name}",
        *parameters, timeout=400,
    )  # fmt: skip
    drills = [e for e in ledger_entries(outputs) if e["runbook"] == "dr/platform-drill"]
    [entry] = [e for e in drills if e["run_id"] not in before]
    return {
        "returncode": done.returncode,
        "stderr": done.stderr,
        "entry": entry,
        "notebook": done.stdout.strip(),
    }


@pytest.fixture(scope="module")
def live_drill(a_set: Path, drill_outputs: Path) -> dict[str, Any]:
    """The live drill on the real recovery path (pgBackRest, repository 1, the latest moment)."""
    return _cli_drill(a_set, drill_outputs)


@pytest.fixture(scope="module")
def dumps_drill(a_set: Path, drill_outputs: Path) -> dict[str, Any]:
    """The live drill with PostgreSQL from the set's logical dumps."""
    return _cli_drill(a_set, drill_outputs, "-p", "postgres_from=dumps")


def _damaged_copy(a_set: Path, relative: str, how: str) -> Path:
    copy = a_set.parent / f"{a_set.name}-damaged-{relative.split('/')[0]}"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(a_set, copy)
    path = copy / relative
    if how == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:  # one byte changed, the size kept: only the sha256 tells
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    return copy


def _a_file_of(a_set: Path, datastore: str) -> str:
    manifest = sets.verify(a_set)[0]
    assert manifest is not None
    files = [f.path for f in manifest.files if engine.datastore_of(manifest, f.path) == datastore]
    return max(files, key=lambda p: (a_set / p).stat().st_size)  # a file with content to damage


def _drill_in_process(**parameters: Any) -> tuple[Any, platform_drill.PlatformDrillResult]:
    """The runbook's steps in this process, as its notebook calls them (the lock released after)."""
    rb = vextrus_nb.start("dr/platform-drill", env="sandbox", destructive=True, **parameters)
    try:
        drilled = platform_drill.drill(rb)
        platform_drill.judge(rb, drilled)
    finally:
        if rb.lock is not None:
            rb.lock.release()
    return rb, drilled


def _drill_folders() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("vextrus-platform-drill-*")}


def test_the_drill_recovers_postgres_with_pgbackrest_to_the_latest_second_and_passes(
    sandbox: SandboxState, live_drill: dict[str, Any], drill_outputs: Path
) -> None:
    assert live_drill["returncode"] == 0, live_drill["stderr"]
    summary = live_drill["entry"]["summary"]
    assert summary["verified"] is True and summary["failure"] is None
    assert summary["postgres_from"] == "pgbackrest"
    assert summary["datastores"] == ["postgres", "redis", "objects", "kafka"] and not summary["unproven"]
    physical = summary["pgbackrest"]
    assert physical["repo"] == 1 and physical["target"] == "latest" and physical["backup_label"]
    assert physical["heartbeat_rows"] > 0 and physical["tables_proven"] > 0
    # RPO measured in the restored cluster: its newest heartbeat against the drill's start.
    assert summary["rpo_s"] is not None and 0 <= summary["rpo_s"] <= 60
    figures = summary["rto_by_datastore"]
    assert set(figures) == {"postgres", "redis", "objects", "kafka", "all"}
    # PostgreSQL is restored and recovered while the platform starts, before its services (its
    # tables proven meanwhile); the others once it answers; then the smoke sweep.
    phases = summary["phases"]
    assert (
        phases["verify_s"] + phases["postgres_restore_s"] + phases["postgres_recover_s"]
        < phases["provision_s"]
    )
    assert summary["provision_s"] < min(figures["redis"], figures["kafka"])
    assert max(figures.values()) == figures["all"] == summary["rto_s"]
    postgres_phases = {"postgres_restore_s", "postgres_recover_s", "postgres_prove_s"}
    assert set(phases) >= {"verify_s", "provision_s", *postgres_phases, "datastores_s", "smoke_s"}
    assert summary["critical_down"] == [] and summary["checklist_regressions"] == []
    assert summary["torn_down"] is True and summary["teardown_s"] > 0
    metric = (drill_outputs / "metrics" / "vextrus_dr_platform_drill_sandbox.prom").read_text()
    assert 'vextrus_dr_platform_drill_rpo_seconds{env="sandbox"}' in metric
    text = notebook_plain_text(Path(live_drill["notebook"]))
    assert "RPO, measured in the restored cluster" in text
    for secret in ("postgres_password", "redis_password", "minio_secret_key", "pg_finance_password"):
        if (sandbox.secrets_dir / secret).exists():
            assert sandbox.secret(secret) not in text
    assert "password=" not in text and "PGPASSWORD" not in text


def test_the_drill_from_the_set_s_dumps_restores_every_datastore_and_passes(
    sandbox: SandboxState, dumps_drill: dict[str, Any], drill_outputs: Path
) -> None:
    assert dumps_drill["returncode"] == 0, dumps_drill["stderr"]
    summary = dumps_drill["entry"]["summary"]
    assert summary["verified"] is True and summary["failure"] is None
    assert summary["postgres_from"] == "dumps" and summary["pgbackrest"] is None and summary["rpo_s"] is None
    assert summary["datastores"] == ["postgres", "redis", "objects", "kafka"] and not summary["unproven"]
    figures = summary["rto_by_datastore"]
    assert set(figures) == {"postgres", "redis", "objects", "kafka", "all"}
    # RTO ends with the smoke sweep passing, after every datastore's proof, after the platform's start.
    assert summary["provision_s"] < min(figures["postgres"], figures["kafka"])
    assert max(figures["postgres"], figures["kafka"]) <= figures["all"] == summary["rto_s"]
    assert summary["critical_down"] == [] and summary["checklist_regressions"] == []
    assert summary["restored_score"] is not None and summary["live_score"] is not None
    assert summary["torn_down"] is True and summary["teardown_s"] > 0 and summary["checklist_s"] > 0
    [second] = [w for w in summary["writes"] if "second platform" in w]
    root = Path(second.split(" in ")[1].split(" (")[0])
    assert root != sandbox.root and not root.exists()  # its own directory, gone
    metric = (drill_outputs / "metrics" / "vextrus_dr_platform_drill_sandbox.prom").read_text()
    assert 'vextrus_dr_platform_drill_success{env="sandbox"} 1.0' in metric
    for datastore in ("postgres", "redis", "objects", "kafka"):
        assert (
            f'vextrus_dr_platform_drill_datastore_ready_seconds{{datastore="{datastore}",env="sandbox"}}'
            in metric
        )
    text = notebook_plain_text(Path(dumps_drill["notebook"]))
    assert "restored (second platform)" in text
    for secret in ("postgres_password", "redis_password", "minio_secret_key"):
        assert sandbox.secret(secret) not in text
    assert "password=" not in text and "PGPASSWORD" not in text


def test_the_drill_recovers_postgres_from_the_s3_repository(
    a_set: Path, drill_outputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    restore_commands = []
    restore_into = engine.PhysicalRecovery.restore_into

    def noting_restore_command(self: engine.PhysicalRecovery, datadir: Path) -> None:
        restore_into(self, datadir)
        settings = (datadir / "postgresql.auto.conf").read_text().splitlines()
        restore_commands.extend(line for line in settings if line.startswith("restore_command"))

    monkeypatch.setattr(engine.PhysicalRecovery, "restore_into", noting_restore_command)
    rb, drilled = _drill_in_process(dry_run=False, set_id=a_set.name, repo=2)
    [restore_command] = restore_commands
    assert "--repo=2" in restore_command  # the WAL too comes from the S3 repository
    assert not rb.failures and drilled.passed, (rb.failures, drilled.failure)
    assert drilled.physical is not None and drilled.physical.result.repo == 2
    assert drilled.rpo_s is not None and 0 <= drilled.rpo_s <= 60
    assert rb.summary["pgbackrest"]["repo"] == 2 and not drilled.unproven


def test_the_drill_recovers_postgres_to_a_target_time_and_never_past_it(
    sandbox: SandboxState, a_set: Path, drill_outputs: Path
) -> None:
    with admin_connection(sandbox) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    target: datetime = row[0]
    wait_until(lambda: heartbeat_after(sandbox, target), "a heartbeat after the target")
    _archived_now(sandbox)  # the WAL past the target is in the repository: recovery stops at it
    rb, drilled = _drill_in_process(dry_run=False, set_id=a_set.name, target_time=target.isoformat())
    assert not rb.failures and drilled.passed, (rb.failures, drilled.failure)
    assert drilled.physical is not None and rb.summary["pgbackrest"]["target"] == target.isoformat()
    reached = drilled.physical.result.last_heartbeat
    assert reached is not None and target - timedelta(seconds=5) < reached <= target
    # No RPO for a drill to a time (it would be the target's age): what it proved instead is on record.
    assert drilled.rpo_s is None and rb.summary["rpo_s"] is None
    assert f"recovered to the target {target.isoformat()}" in rb.summary["rpo_not_measured"]
    assert rb.summary["pgbackrest"]["recovered_to_target"].startswith("recovered to the target")
    metric = (drill_outputs / "metrics" / "vextrus_dr_platform_drill_sandbox.prom").read_text()
    assert 'vextrus_dr_platform_drill_success{env="sandbox"} 1.0' in metric
    assert "vextrus_dr_platform_drill_rpo_seconds" not in metric


def test_a_target_before_the_oldest_backup_fails_before_anything_starts(
    a_set: Path, drill_outputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oldest = pgbackrest.backups(_stanza(), 1)[0]
    target = datetime.fromisoformat(oldest.stopped_at).astimezone(UTC) - timedelta(minutes=10)
    restored: list[Path] = []
    monkeypatch.setattr(
        engine.PhysicalRecovery, "restore_into", lambda self, datadir: restored.append(datadir)
    )
    before = _drill_folders()
    rb, drilled = _drill_in_process(dry_run=False, set_id=a_set.name, target_time=target.isoformat())
    expected = f"has no backup in repo1 finished before {target.isoformat()}"
    assert expected in drilled.failure and any(expected in f for f in rb.failures), rb.failures
    # Chosen while verifying: no second platform's directory, no process of it, no restore.
    assert drilled.writes == [] and drilled.recoveries == [] and restored == []
    assert _drill_folders() == before


def _archiver(state: SandboxState) -> tuple[datetime | None, datetime]:
    """pg_stat_archiver's last failed push, and the server's clock."""
    with admin_connection(state) as conn:
        row = conn.execute("SELECT last_failed_time, clock_timestamp() FROM pg_stat_archiver").fetchone()
    assert row is not None
    return row[0], row[1]


def test_the_rpo_target_fails_a_drill_whose_wal_archive_is_behind(
    sandbox: SandboxState, a_set: Path, drill_outputs: Path
) -> None:
    rpo_target_s = 5
    _, faulted = _archiver(sandbox)
    # The sandbox's own fault: archive-push needs every repository, so with the S3 server down no
    # segment is archived (docs/dr.md), while the services process goes on writing heartbeats.
    manager.fault("minio", "down", root=sandbox.root)
    try:

        def first_failure() -> datetime | None:
            failed, _ = _archiver(sandbox)
            return failed if failed is not None and failed > faulted else None

        # No segment closed after the first failed push can be in the repository: the restored
        # cluster's newest heartbeat is older than it.
        failed_at = wait_until(first_failure, "a failed archive-push", timeout_s=120)
        wait_until(
            lambda: (_archiver(sandbox)[1] - failed_at).total_seconds() > rpo_target_s + 2,
            "the archive more than rpo_target_s behind",
        )
        rb, drilled = _drill_in_process(dry_run=False, set_id=a_set.name, rpo_target_s=rpo_target_s)
    finally:
        manager.heal("minio", root=sandbox.root)
        _archived_now(sandbox)  # caught up again for the tests after this one
    assert drilled.rpo_s is not None and drilled.rpo_s > rpo_target_s, (drilled.rpo_s, drilled.failure)
    [rpo_failure] = [f for f in rb.failures if f.startswith("RPO ")]
    assert f"exceeds the target of {rpo_target_s} s" in rpo_failure
    assert not drilled.unproven, drilled.recoveries  # the restore itself was sound: only the RPO fails
    metric = (drill_outputs / "metrics" / "vextrus_dr_platform_drill_sandbox.prom").read_text()
    assert 'vextrus_dr_platform_drill_success{env="sandbox"} 0.0' in metric


def _physical_result(target_time: datetime | None, rpo_s: float | None) -> platform_drill.PlatformDrillResult:
    """A judged drill's result with PostgreSQL recovered and these figures (no platform needed)."""
    physical = engine.PhysicalRecovery(
        stanza=None,  # type: ignore[arg-type]  # judging reads neither
        live=None,  # type: ignore[arg-type]
        services=[],
        drill_started=0.0,
        drill_started_at=datetime.now(UTC),
        target_time=target_time,
    )
    physical.rpo_s = rpo_s
    return platform_drill.PlatformDrillResult(
        dry_run=False, physical=physical, recoveries=[engine.DatastoreRecovery("postgres")], rto_s=30.0,
        torn_down=True,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("target_time", "rpo_s", "failure"),
    [
        (None, 2.0, None),
        (None, 90.0, "RPO 90.0 s exceeds the target of 60 s"),
        (None, None, "RPO not measured, so not shown within the target of 60 s"),
        (datetime(2026, 12, 1, 15, 10, tzinfo=UTC), None, None),
    ],
)
def test_the_rpo_is_judged_for_a_drill_to_the_latest_moment_only(
    drill_outputs: Path, target_time: datetime | None, rpo_s: float | None, failure: str | None
) -> None:
    inventory = load_inventory()
    env = load_environment("sandbox", inventory)
    rb = Runbook(name="dr/platform-drill", env=env, inventory=inventory, parameters={"dry_run": False})
    platform_drill.judge(rb, _physical_result(target_time, rpo_s))
    assert [f[: len(failure or "")] for f in rb.failures] == ([failure] if failure else []), rb.failures
    metric = (drill_outputs / "metrics" / "vextrus_dr_platform_drill_sandbox.prom").read_text()
    assert ("vextrus_dr_platform_drill_rpo_seconds" in metric) is (target_time is None)
    # A missed RPO fails the record and the metric as well as the run.
    success = "0.0" if failure else "1.0"
    assert f'vextrus_dr_platform_drill_success{{env="sandbox"}} {success}' in metric
    assert rb.summary["verified"] is (failure is None)


def test_a_platform_failing_after_the_proof_began_leaves_no_proof_thread_and_scrubbed_findings(
    sandbox: SandboxState, a_set: Path, drill_outputs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _drill_folders()
    proving: list[str] = []
    released = threading.Event()  # set by this test once the drill has returned

    def after_teardown(result: pitr.PitrResult, copy: Any, live: Any, *args: Any) -> None:
        proving.append(threading.current_thread().name)
        # Still proving when the platform is gone, and after: until the test releases it (a drill
        # that does not wait for its proof returns first), or 10 s (one that waits, joining it).
        wait_until(lambda: _drill_folders() == before, "the failed platform torn down", timeout_s=300)
        released.wait(timeout=10)
        raise RuntimeError(f"connection failed: postgresql://{live.user}:{live.password}@127.0.0.1/")

    def failing_start(state: Any) -> None:
        raise SandboxError("injected: the second platform failed after PostgreSQL was proven")

    monkeypatch.setattr(pitr, "prove_tables", after_teardown)
    monkeypatch.setattr(backup_repositories, "enable_s3_repository", failing_start)
    try:
        _, drilled = _drill_in_process(dry_run=False, set_id=a_set.name)
        alive = [t.name for t in threading.enumerate() if t.name.startswith(("table-proof", "live-tables"))]
    finally:
        released.set()
    assert proving == ["table-proof"]
    assert "injected: the second platform failed" in drilled.failure
    assert alive == [] and _drill_folders() == before
    assert drilled.physical is not None
    findings = [*drilled.physical.result.mismatches, *drilled.physical.recovery.mismatches]
    assert any(f.startswith("proof failed: RuntimeError") and REDACTED in f for f in findings), findings
    assert all(sandbox.secret("postgres_password") not in f for f in findings)


def heartbeat_after(state: SandboxState, moment: datetime) -> bool:
    with admin_connection(state) as conn:
        row = conn.execute(f"SELECT max(beat_at) > %s FROM {heartbeat.TABLE}", (moment,)).fetchone()
    return bool(row and row[0])


def test_the_report_draws_the_platform_drill_rto_per_datastore(
    live_drill: dict[str, Any], drill_outputs: Path
) -> None:
    entries = [e for e in ledger.read_entries(drill_outputs) if e["run_id"] == live_drill["entry"]["run_id"]]
    dry = {
        **live_drill["entry"],
        "run_id": "dry",
        "summary": {**live_drill["entry"]["summary"], "dry_run": True},
    }
    unsealed = {**live_drill["entry"], "run_id": "unsealed", "output": None, "output_sha256": None}
    [trend] = declared.discover()["dr/platform-drill"].trends
    series = report.trend_series("dr/platform-drill", trend, [*entries, dry, unsealed], drill_outputs)
    rows = series["sandbox"]
    assert {r["run_id"] for r in rows} == {
        live_drill["entry"]["run_id"]
    }  # a dry or unsealed run is not evidence
    assert {r["line"] for r in rows} == {"postgres", "redis", "objects", "kafka", "all", "RPO"}
    [rpo] = [r for r in rows if r["lower"]]
    assert rpo["value"] == live_drill["entry"]["summary"]["rpo_s"]
    assert rpo["hover"]["postgres_from"] == "pgbackrest"
    [(name, chart)] = report.trend_charts("dr/platform-drill", trend, entries, drill_outputs)
    assert name == "dr/platform-drill:sandbox" and "RTO per datastore" in chart


@pytest.mark.parametrize(
    ("datastore", "how"),
    [("postgres", "change"), ("redis", "truncate"), ("objects", "change"), ("kafka", "truncate")],
)
def test_a_damaged_file_of_one_datastore_is_named_before_anything_starts(
    a_set: Path, datastore: str, how: str
) -> None:
    copy = _damaged_copy(a_set, _a_file_of(a_set, datastore), how)
    try:
        with pytest.raises(BackupError) as caught:
            engine.verify_by_datastore(copy)
        assert f"failed verification for datastore(s) {datastore}," in str(caught.value)
    finally:
        shutil.rmtree(copy, ignore_errors=True)


def test_a_live_drill_of_a_damaged_set_fails_naming_the_datastore_and_starts_nothing(
    a_set: Path, drill_outputs: Path
) -> None:
    copy = _damaged_copy(a_set, _a_file_of(a_set, "redis"), "truncate")
    before = _drill_folders()
    try:
        rb, drilled = _drill_in_process(dry_run=False, set_id=copy.name)
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    assert "datastore(s) redis" in drilled.failure and "truncated" in drilled.failure
    assert any("redis" in f for f in rb.failures)
    assert drilled.recoveries == [] and drilled.writes == [] and _drill_folders() == before
    metric = (drill_outputs / "metrics" / "vextrus_dr_platform_drill_sandbox.prom").read_text()
    assert 'vextrus_dr_platform_drill_success{env="sandbox"} 0.0' in metric  # a failed drill alerts


def test_a_dry_run_verifies_and_plans_and_starts_and_writes_nothing(
    a_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VEXTRUS_OUTPUTS_DIR", str(tmp_path))
    before = _drill_folders()
    rb, drilled = _drill_in_process(set_id=a_set.name)
    assert not rb.failures and drilled.dry_run and drilled.writes == []
    assert [p["datastore"] for p in drilled.planned] == ["postgres", "redis", "objects", "kafka"]
    assert drilled.platform_root.endswith(rb.run_id) and not Path(drilled.platform_root).exists()
    assert _drill_folders() == before
    assert not list(tmp_path.rglob("*"))  # no metric, nothing else: in-process, not even a record
    assert rb.summary["verified"] is False and rb.summary["rto_by_datastore"] == {}
    assert json.dumps(rb.summary)  # the record's summary stays plain data


def _stanza() -> pgbackrest.Stanza:
    inventory = load_inventory()
    env = load_environment("sandbox", inventory)
    rb = Runbook(name="dr/platform-drill", env=env, inventory=inventory, parameters={"dry_run": True})
    found = physical_stanza(rb)
    assert found is not None
    return found


def _archived_now(state: SandboxState) -> None:
    """Everything committed so far is in the repository: switch the segment, wait for it."""
    with admin_connection(state) as conn:
        pgbackrest.wait_archived(conn, pgbackrest.switch_wal(conn))


@pytest.mark.parametrize("damage", ["corrupt a backup file", "delete a WAL segment"])
def test_a_damaged_pgbackrest_repository_fails_the_drill_naming_it_before_anything_starts(
    sandbox: SandboxState, a_set: Path, drill_outputs: Path, damage: str
) -> None:
    stanza = _stanza()
    _archived_now(sandbox)
    _archived_now(sandbox)  # two segments after the backup: a deleted one leaves a gap
    if damage == "delete a WAL segment":
        segments = sorted((stanza.repo_path.resolve() / "archive" / stanza.name).rglob("0*-*"))
        victim = segments[-2]  # not the newest: a gap needs a segment after it
        expected = f"WAL segment {victim.name[:24]} missing"
    else:
        newest = pgbackrest.backups(stanza, 1)[-1].label
        files = [p for p in pgbackrest.iter_backup_files(stanza, newest) if "/pg_data/base/" in str(p)]
        victim = max(files, key=lambda p: p.stat().st_size)
        expected = f"{victim.name}: corrupted: checksum differs"
    original = victim.read_bytes()
    aside = victim.with_name(victim.name + ".aside")
    before = _drill_folders()
    try:
        if damage == "delete a WAL segment":
            victim.rename(aside)  # moved back after: the server's account keeps owning it
        else:
            victim.write_bytes(original[:64] + bytes([original[64] ^ 0xFF]) + original[65:])
        rb, drilled = _drill_in_process(dry_run=False, set_id=a_set.name)
    finally:
        if aside.exists():
            aside.rename(victim)
        else:
            victim.write_bytes(original)
    assert expected in drilled.failure and "failed verify, nothing was restored" in drilled.failure
    assert any(expected in f for f in rb.failures)
    assert drilled.recoveries == [] and drilled.writes == [] and _drill_folders() == before
    metric = (drill_outputs / "metrics" / "vextrus_dr_platform_drill_sandbox.prom").read_text()
    assert 'vextrus_dr_platform_drill_success{env="sandbox"} 0.0' in metric


@pytest.mark.parametrize(
    ("parameters", "refusal"),
    [
        ({"repo": 3}, "repo must be 1"),
        ({"target_time": "yesterday"}, "not ISO 8601"),
        ({"target_time": "2026-12-01T15:10:00"}, "no UTC offset"),
        ({"target_time": "2999-01-01T00:00:00Z"}, "in the future"),
        ({"postgres_from": "tape"}, "postgres_from must be one of pgbackrest, dumps"),
        ({"postgres_from": "dumps", "repo": 2}, "with postgres_from=dumps"),
        ({"rpo_target_s": 0}, "rpo_target_s must be a positive number"),
    ],
)
def test_bad_parameters_are_refused_before_anything_is_touched(
    parameters: dict[str, Any], refusal: str
) -> None:
    with pytest.raises(RunRefused, match=refusal):
        platform_drill.validate(load_environment("sandbox"), parameters)


def test_the_cli_refuses_an_unknown_repository_before_a_kernel(drill_outputs: Path) -> None:
    before = ledger_entries(drill_outputs), set(drill_outputs.rglob("*.ipynb"))
    done = run_cli("run", "dr/platform-drill", "--env", "sandbox", "-p", "dry_run=False", "-p", "repo=3")
    assert done.returncode == 2 and "repo must be 1" in done.stderr
    assert (ledger_entries(drill_outputs), set(drill_outputs.rglob("*.ipynb"))) == before
