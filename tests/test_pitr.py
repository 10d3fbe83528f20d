"""Point-in-time recovery with real pgBackRest on the real sandbox cluster, which archives its
WAL (archive-push, archive_timeout 10 s) and writes a heartbeat row every second.

PITR to a moment between two committed writes has the first and not the second; the recovery
point (rpo_s) stays within 60 s while the sandbox writes, and archiving failing is caught; a
WAL segment deleted from the repository, a corrupted and a truncated backup file are each
named before anything is restored; the drill writes its metric whatever fails (PostgreSQL
down included), fails without a set unless fresh_backup=True, and records what it wrote."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from vextrus_nb.backup import heartbeat, pgbackrest, pitr
from vextrus_nb.backup.access import physical_stanza, postgres_login, s3_repository_endpoint
from vextrus_nb.backup.manifest import Manifest
from vextrus_nb.config import load_environment, load_inventory
from vextrus_nb.errors import BackupError, RunRefused
from vextrus_nb.run.session import Runbook
from vextrus_nb.runbooks.dr import backup, drill, restore
from vextrus_nb.sandbox import manager
from vextrus_nb.sandbox_state import SandboxState

from .helpers import REPO, admin_connection, wait_until

PROBE_TABLE = "pitr_probe"


def runbook(name: str, **parameters: Any) -> Runbook:
    inventory = load_inventory()
    return Runbook(
        name=name,
        env=load_environment("sandbox", inventory),
        inventory=inventory,
        parameters={"dry_run": True, **parameters},
    )


@pytest.fixture(scope="module")
def stanza(sandbox: SandboxState) -> pgbackrest.Stanza:
    found = physical_stanza(runbook("dr/backup"))
    assert found is not None
    return found


@pytest.fixture(scope="module")
def a_set(sandbox: SandboxState, stanza: pgbackrest.Stanza) -> Manifest:
    """One dr/backup of two services (a pgBackRest full backup of the cluster with it)."""
    rb = runbook("dr/backup", services="auth,hr")
    taken = backup.back_up(rb)
    assert rb.summary["writes"][-1].startswith("pgbackrest backup ")
    return taken.manifest


def archived_now(state: SandboxState) -> None:
    """Everything committed so far is in the repository: switch the segment, wait for it."""
    with admin_connection(state) as conn:
        pgbackrest.wait_archived(conn, pgbackrest.switch_wal(conn))


def test_the_set_records_pgbackrests_label_lsn_range_and_times(
    a_set: Manifest, stanza: pgbackrest.Stanza
) -> None:
    physical = a_set.physical
    assert physical is not None and physical.kind == "full" and physical.stanza == "vextrus"
    [listed] = [b for b in pgbackrest.backups(stanza) if b.label == physical.label]
    assert (physical.start_lsn, physical.stop_lsn) == (listed.start_lsn, listed.stop_lsn)
    assert physical.started_at <= physical.stopped_at <= a_set.ended_at
    assert {d.service for d in a_set.databases} == {"auth", "hr"}  # the logical dumps stay


def test_an_incremental_backup_builds_on_the_full_one(a_set: Manifest, stanza: pgbackrest.Stanza) -> None:
    taken = pgbackrest.backup(stanza, "incr")
    assert taken.kind == "incr" and taken.prior and a_set.physical is not None
    assert pgbackrest.backups(stanza, 1)[-1].label == taken.label
    with pytest.raises(RunRefused, match="kind must be"):
        backup.validate(runbook("dr/backup").env, {"kind": "weekly"})


def test_pitr_to_a_moment_between_two_committed_writes_has_the_first_not_the_second(
    healthy: SandboxState, a_set: Manifest, stanza: pgbackrest.Stanza
) -> None:
    with admin_connection(healthy) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {PROBE_TABLE}")
        conn.execute(f"CREATE TABLE {PROBE_TABLE} (name text)")
        conn.execute(f"INSERT INTO {PROBE_TABLE} VALUES ('first')")
        row = conn.execute("SELECT clock_timestamp()").fetchone()
        assert row is not None
        between: datetime = row[0]
        wait_until(lambda: _server_now(healthy) > between, "the server clock to move past the first write")
        conn.execute(f"INSERT INTO {PROBE_TABLE} VALUES ('second')")
    archived_now(healthy)
    login = postgres_login(runbook("dr/restore"))
    restored = pgbackrest.restore(
        stanza,
        pgbackrest.scratch_home(stanza, "between") / "data",
        login.bindir,
        target_time=between,
        databases=["vextrus_auth"],  # and the system databases: the probe is in `postgres`
    )
    try:
        with restored.connect() as conn:
            names = [r[0] for r in conn.execute(f"SELECT name FROM {PROBE_TABLE}").fetchall()]
            last_beat = heartbeat.digest(conn).last_beat_at
    finally:
        restored.destroy()
    assert names == ["first"]
    assert last_beat is not None and last_beat <= between


def _server_now(state: SandboxState) -> datetime:
    with admin_connection(state) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
        assert row is not None
        return row[0]


def test_dr_restore_to_the_latest_point_proves_heartbeats_and_tables_against_the_live_cluster(
    healthy: SandboxState, a_set: Manifest, outputs: Path
) -> None:
    archived_now(healthy)
    rb = runbook("dr/restore", target="latest", services="auth")
    restore.validate(rb.env, rb.parameters)
    verified = restore.verify(rb)
    result = restore.restore(rb, verified)
    assert isinstance(result, pitr.PitrResult)
    assert result.proven, result.mismatches
    assert not rb.failures and not result.kept and not Path(result.datadir).exists()
    # The newest archived heartbeat is seconds behind the live newest: the recovery point, measured.
    assert result.last_heartbeat is not None and result.recovery_gap_s is not None
    assert 0 <= result.recovery_gap_s <= 60
    assert {t["database"] for t in result.tables} == {"vextrus_auth"}
    assert all(t["same as live"] for t in result.tables)
    assert rb.summary["pitr_proven"] is True and "scratch cluster" in rb.summary["writes"][0]


def test_hint_bits_set_in_an_excluded_database_after_the_backup_replay_onto_its_zeroed_pages(
    healthy: SandboxState, stanza: pgbackrest.Stanza, outputs: Path
) -> None:
    """pgBackRest's --db-include restores the other databases as zeroed files. A VACUUM there
    after the backup marks a page all-visible; without wal_log_hints that change is logged with
    no full page, and replaying it onto the zeroed page aborts recovery ("WAL contains
    references to invalid pages": seen restoring -p services=finance to latest)."""
    with admin_connection(healthy, "vextrus_finance") as conn:
        conn.autocommit = True
        conn.execute(
            "DROP TABLE IF EXISTS hint_bits; CREATE TABLE hint_bits AS SELECT generate_series(1, 5000) AS n"
        )
        conn.execute("CHECKPOINT")
    pgbackrest.backup(stanza, "incr")
    with admin_connection(healthy, "vextrus_finance") as conn:
        conn.autocommit = True
        conn.execute("VACUUM hint_bits")  # all-visible: Heap2/VISIBLE records, the heap pages untouched
    archived_now(healthy)
    rb = runbook("dr/restore", target="latest", services="auth")
    result = restore.restore(rb, restore.verify(rb))
    assert isinstance(result, pitr.PitrResult) and result.proven, (result.mismatches, rb.failures)


def test_dr_backup_backs_up_into_each_repository_and_the_s3_one_restores_like_the_local_one(
    healthy: SandboxState, a_set: Manifest, stanza: pgbackrest.Stanza, outputs: Path
) -> None:
    """repo2 is a bucket on the sandbox's S3 server, over its HTTPS listener: the set's backup is
    in both, and a point-in-time restore from the S3 one alone verifies, recovers and proves."""
    [copy] = a_set.physical_copies
    assert copy.repo == 2 and copy.repository.startswith("s3://vextrus-pgbackrest/pgbackrest at localhost:")
    assert copy.label in {b.label for b in pgbackrest.backups(stanza, 2)}
    assert copy.label not in {b.label for b in pgbackrest.backups(stanza, 1)}
    archived_now(healthy)  # every segment goes to both repositories
    rb = runbook("dr/restore", target="latest", services="auth", repo=2)
    restore.validate(rb.env, rb.parameters)
    result = restore.restore(rb, restore.verify(rb))
    assert isinstance(result, pitr.PitrResult) and result.proven, (result.mismatches, rb.failures)
    assert result.repo == 2 and rb.summary["pitr_repo"] == 2
    assert result.backup_label in {b.label for b in pgbackrest.backups(stanza, 2)}
    assert result.recovery_gap_s is not None and 0 <= result.recovery_gap_s <= 60


def test_a_corrupted_object_in_the_s3_repository_is_named_before_anything_is_restored(
    healthy: SandboxState, a_set: Manifest, stanza: pgbackrest.Stanza
) -> None:
    [copy] = a_set.physical_copies
    # rclone serves the bucket from a directory: an object is a file there.
    bucket = healthy.root / "servers" / "s3" / "objects" / "vextrus-pgbackrest"
    objects = [
        p for p in (bucket / "pgbackrest" / "backup" / "vextrus" / copy.label).rglob("*") if p.is_file()
    ]
    victim = max((p for p in objects if "/pg_data/base/" in str(p)), key=lambda p: p.stat().st_size)
    original = victim.read_bytes()
    restores = stanza.work_dir / "r"
    before = set(restores.iterdir()) if restores.exists() else set()
    try:
        victim.write_bytes(original[:64] + bytes([original[64] ^ 0xFF]) + original[65:])
        rb = runbook("dr/restore", target="latest", repo=2)
        with pytest.raises(BackupError, match="repository 2 of stanza vextrus failed verify") as raised:
            restore.verify(rb)
        assert victim.name in str(raised.value) and "checksum" in str(raised.value)
        assert (set(restores.iterdir()) if restores.exists() else set()) == before
        restore.verify(runbook("dr/restore", target="latest", repo=1))  # the local copy is sound
    finally:
        victim.write_bytes(original)


def test_the_sandbox_and_a_runbook_write_the_same_pgbackrest_configuration(
    sandbox: SandboxState, stanza: pgbackrest.Stanza
) -> None:
    """Both write the one file the server's archive-push reads: if they differed, each run
    would repoint the archive (sandbox.yaml's backup.pgbackrest against the sandbox's own)."""
    assert manager.stanza(SandboxState.load(sandbox.root)).config_text() == stanza.config_text()
    assert "repo2-type=s3" in stanza.config_text() and stanza.repositories == [1, 2]


def test_the_s3_repository_endpoint_is_host_port_or_an_endpoint_of_the_environment(
    sandbox: SandboxState,
) -> None:
    rb = runbook("dr/restore")
    assert s3_repository_endpoint(rb.env, rb.inventory, "s3.internal:9443") == ("s3.internal", 9443)
    assert s3_repository_endpoint(rb.env, rb.inventory, "minio-tls") == (
        "127.0.0.1",
        SandboxState.load(sandbox.root).ports["minio-tls"],
    )
    with pytest.raises(BackupError, match="neither host:port nor an endpoint"):
        s3_repository_endpoint(rb.env, rb.inventory, "nowhere")
    with pytest.raises(BackupError, match="the port is not a number"):
        s3_repository_endpoint(rb.env, rb.inventory, "s3.internal:https")


def test_a_bad_repository_choice_is_refused() -> None:
    env = runbook("dr/restore").env
    with pytest.raises(RunRefused, match="repo must be 1"):
        restore.validate(env, {"target": "latest", "repo": 3})
    with pytest.raises(RunRefused, match="repo must be 1"):
        restore.validate(env, {"target": "latest", "repo": "s3"})
    with pytest.raises(RunRefused, match="for a point-in-time restore"):
        restore.validate(env, {"repo": 2})
    assert env.backup is not None and env.backup.pgbackrest is not None
    local_only = env.model_copy(
        update={
            "backup": env.backup.model_copy(
                update={"pgbackrest": env.backup.pgbackrest.model_copy(update={"s3": None})}
            )
        }
    )
    with pytest.raises(RunRefused, match="names no S3 repository"):
        restore.validate(local_only, {"target": "latest", "repo": 2})
    restore.validate(env, {"target": "latest", "repo": "2"})  # -p repo=2 from a shell


def test_a_live_or_malformed_point_in_time_restore_is_refused() -> None:
    env = runbook("dr/restore").env
    with pytest.raises(RunRefused, match="live point-in-time restore is not supported"):
        restore.validate(env, {"target": "live", "target_time": "2026-12-01T10:00:00Z"})
    with pytest.raises(RunRefused, match="no UTC offset"):
        restore.validate(env, {"target_time": "2026-12-01T10:00:00"})
    with pytest.raises(RunRefused, match="not ISO 8601"):
        restore.validate(env, {"target_time": "yesterday"})


def test_rpo_stays_within_60_s_while_the_sandbox_writes(
    healthy: SandboxState, stanza: pgbackrest.Stanza
) -> None:
    with admin_connection(healthy) as conn:
        status = pgbackrest.archive_status(conn, stanza)
    assert not status.failing and status.last_archived_wal
    assert 0 <= status.rpo_s <= 60


@pytest.fixture
def archive_broken(healthy: SandboxState, stanza: pgbackrest.Stanza) -> Iterator[Path]:
    """The repository's archive moved away: archive-push fails until it is back."""
    archive = stanza.repo_path.resolve() / "archive"
    aside = archive.with_name("archive.aside")
    archive.rename(aside)
    yield archive
    shutil.rmtree(archive, ignore_errors=True)  # whatever a failing push left there
    aside.rename(archive)
    wait_until(lambda: not _status(healthy, stanza).failing, "archiving to recover")


def _status(state: SandboxState, stanza: pgbackrest.Stanza | None = None) -> pgbackrest.ArchiveStatus:
    with admin_connection(state) as conn:
        return pgbackrest.archive_status(conn, stanza)


def test_archiving_failing_is_caught_and_named(healthy: SandboxState, archive_broken: Path) -> None:
    with admin_connection(healthy) as conn:
        pgbackrest.switch_wal(conn)
    status = wait_until(lambda: (s := _status(healthy)).failing and s, "the archiver to report the failure")
    assert status.failed_count >= 1


def _newest_archived_segment(stanza: pgbackrest.Stanza) -> Path:
    segments = sorted((stanza.repo_path.resolve() / "archive" / stanza.name).rglob("0*-*"))
    return segments[-2]  # not the newest: a gap needs a segment after it


def _largest_backup_file(stanza: pgbackrest.Stanza, label: str) -> Path:
    files = [p for p in pgbackrest.iter_backup_files(stanza, label) if "/pg_data/base/" in str(p)]
    return max(files, key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("damage", ["delete a WAL segment", "flip a byte", "truncate"])
def test_a_damaged_repository_is_named_before_anything_is_restored(
    healthy: SandboxState, a_set: Manifest, stanza: pgbackrest.Stanza, damage: str
) -> None:
    archived_now(healthy)
    archived_now(healthy)  # two segments after the backup: a deleted one leaves a gap
    assert a_set.physical is not None
    if damage == "delete a WAL segment":
        victim = _newest_archived_segment(stanza)
        expected = f"WAL segment {victim.name[:24]} missing"
    else:
        victim = _largest_backup_file(stanza, a_set.physical.label)
        expected = "corrupted: checksum differs" if damage == "flip a byte" else "truncated: "
    original = victim.read_bytes()
    aside = victim.with_name(victim.name + ".aside")
    restores = stanza.work_dir / "r"
    before = set(restores.iterdir()) if restores.exists() else set()
    try:
        if damage == "delete a WAL segment":
            victim.rename(aside)  # moved back after: the server's account keeps owning it
        elif damage == "flip a byte":
            victim.write_bytes(original[:64] + bytes([original[64] ^ 0xFF]) + original[65:])
        else:
            victim.write_bytes(original[: len(original) // 2])
        rb = runbook("dr/restore", target="latest", services="auth")
        with pytest.raises(BackupError, match="failed verify, nothing was restored") as raised:
            restore.verify(rb)
        named = str(raised.value)
        assert expected in named and (damage == "delete a WAL segment" or victim.name in named), named
        assert (set(restores.iterdir()) if restores.exists() else set()) == before
    finally:
        if aside.exists():
            aside.rename(victim)
        else:
            victim.write_bytes(original)


# -- the drill's fixes ----------------------------------------------------------------------------
def _metric(path: Path, name: str) -> float:
    [line] = [line for line in path.read_text().splitlines() if line.startswith(name + "{")]
    return float(line.split()[-1])


def test_the_drill_measures_rpo_from_the_wal_archive(
    healthy: SandboxState, a_set: Manifest, outputs: Path
) -> None:
    rb = runbook("dr/drill", services="auth")
    drilled = drill.drill(rb)
    metric = drill.judge_drill(rb, drilled)
    assert not rb.failures, rb.failures
    summary = drilled.summary()
    assert summary["rpo_source"] == "wal archive" and 0 <= summary["rpo_s"] <= 60
    assert summary["fresh_backup"] is False and summary["writes"] == [
        "scratch databases (created, proven, dropped)"
    ]
    assert _metric(metric, "vextrus_dr_drill_success") == 1.0
    assert 0 <= _metric(metric, "vextrus_dr_drill_rpo_seconds") <= 60


def test_a_drill_with_postgres_down_still_writes_its_metric_as_failed(
    healthy: SandboxState, a_set: Manifest, outputs: Path
) -> None:
    manager.fault("postgres", "down", root=healthy.root)
    rb = runbook("dr/drill", services="auth")
    drilled = drill.drill(rb)  # does not raise: the failure is the drill's finding
    metric = drill.judge_drill(rb, drilled)
    assert "OperationalError" in drilled.failure and rb.failures == [drilled.failure]
    assert healthy.secret("postgres_password") not in drilled.failure
    assert _metric(metric, "vextrus_dr_drill_success") == 0.0


@pytest.fixture
def empty_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sandbox environment with an empty backup directory (the same pgBackRest repository)."""
    folder = tmp_path / "parameters"
    shutil.copytree(REPO / "parameters", folder)
    path = folder / "environments" / "sandbox.yaml"
    env = yaml.safe_load(path.read_text())
    env["backup"]["directory"] = str(tmp_path / "backups")
    env["backup"]["pgbackrest"]["repository"] = "{sandbox_dir}/backups/pgbackrest"
    env["backup"]["pgbackrest"]["kind"] = "incr"  # on the module's full backup: quicker
    path.write_text(yaml.safe_dump(env))
    monkeypatch.setenv("VEXTRUS_PARAMETERS_DIR", str(folder))
    return tmp_path / "backups"


def test_a_drill_without_a_set_fails_naming_that_and_takes_one_only_when_asked(
    healthy: SandboxState, empty_store: Path, outputs: Path
) -> None:
    refused = drill.drill(runbook("dr/drill", services="auth"))
    assert "no backup set to drill" in refused.failure and "fresh_backup=True" in refused.failure
    assert not refused.fresh_backup and refused.writes == [] and not empty_store.exists()
    rb = runbook("dr/drill", services="auth", fresh_backup=True)
    drilled = drill.drill(rb)
    assert drilled.passed_verification, drilled.failure
    assert drilled.fresh_backup and drilled.writes[0].endswith("(fresh_backup=True)")
    assert drilled.summary()["fresh_backup"] is True
    assert len(list((empty_store / "sandbox").iterdir())) == 1


def test_the_sandbox_archives_and_beats(healthy: SandboxState) -> None:
    with admin_connection(healthy) as conn:
        settings = dict(
            conn.execute("SELECT name, setting FROM pg_settings WHERE name LIKE 'archive_%'").fetchall()
        )
        first = heartbeat.digest(conn)
        assert settings["archive_mode"] == "on" and "archive-push" in settings["archive_command"]
        assert int(settings["archive_timeout"]) <= 60
        wait_until(lambda: heartbeat.digest(conn).last_seq > first.last_seq, "the next heartbeat")
    assert first.last_beat_at is not None and (datetime.now(UTC) - first.last_beat_at).total_seconds() < 30


@pytest.mark.parametrize(
    ("newest", "archived", "held"),
    [
        ("000000010000000000000058", "000000010000000000000058", True),
        ("000000010000000000000058", "000000010000000000000059", False),
        # A switchover archives the old timeline's last segment as .partial: pgBackRest's `max`
        # leaves it out, so the whole segment before it is what the repository must have.
        ("000000020000000000000058", "000000020000000000000059.partial", True),
        ("000000020000000000000057", "000000020000000000000059.partial", False),
        ("0000000200000000000000FF", "000000020000000100000000.partial", True),
        ("", "000000010000000000000001", False),
    ],
)
def test_the_repository_holds_what_the_server_archived_a_partial_segment_included(
    newest: str, archived: str, held: bool
) -> None:
    assert pgbackrest.repository_holds(newest, archived) is held
