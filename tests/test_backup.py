"""dr/backup, dr/restore and dr/drill on the real sandbox (real pg_dump, pg_restore,
BGSAVE): backup then drill pass and feed the checklist; a damaged set stops a
restore before anything is touched, naming the file; a live restore needs
dry_run=false (and confirm in production), holds the lock, and brings the data back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from vextrus_nb import checks
from vextrus_nb.backup import sets
from vextrus_nb.backup.manifest import Manifest
from vextrus_nb.config import load_environment, load_inventory
from vextrus_nb.run import locks
from vextrus_nb.sandbox_state import SandboxState

from .helpers import REPO, admin_connection, ledger_entries, notebook_plain_text, run_cli


def store(state: SandboxState) -> Path:
    return state.root / "backups" / "sandbox"


def scratch_databases(state: SandboxState) -> list[str]:
    with admin_connection(state) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE '%\\_restore\\_%'").fetchall()
    return sorted(r[0] for r in rows)


@pytest.fixture(scope="module")
def a_set(sandbox: SandboxState, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One backup set taken through the runbook, shared by the tests that only read it."""
    outputs = tmp_path_factory.mktemp("backup-outputs")
    client = redis.Redis(
        port=sandbox.ports["redis"], username="default", password=sandbox.secret("redis_password")
    )
    client.mset({f"backup-test:session:{i}": f"tenant-{i}" for i in range(3)})
    done = run_cli("run", "dr/backup", "--env", "sandbox", env={"VEXTRUS_OUTPUTS_DIR": str(outputs)})
    client.delete(*[f"backup-test:session:{i}" for i in range(3)])
    assert done.returncode == 0, done.stderr
    [entry] = ledger_entries(outputs)
    return store(sandbox) / entry["summary"]["set_id"]


@pytest.fixture
def damaged_copy(a_set: Path) -> Iterator[Path]:
    """A copy of the set, made the newest (so the drill picks it), for a test to damage."""
    copy = a_set.parent / (a_set.name + "-copy")
    shutil.copytree(a_set, copy)
    manifest = Manifest.read(copy)
    manifest.ended_at = datetime.now(UTC).isoformat(timespec="seconds")
    manifest.write(copy)
    yield copy
    shutil.rmtree(copy, ignore_errors=True)


def test_backup_then_drill_pass_and_every_table_comes_back(
    healthy: SandboxState, a_set: Path, outputs: Path
) -> None:
    manifest = Manifest.read(a_set)
    with_database = [s for s in load_inventory().services() if s.database]
    assert {d.service for d in manifest.databases} == {s.name for s in with_database}
    assert manifest.redis is not None and (a_set / "redis" / "dump.rdb").is_file()
    assert "config/sandbox.yaml" in manifest.config_files
    assert sum(t.rows for d in manifest.databases for t in d.tables.values()) > 100_000

    done = run_cli("run", "dr/drill", "--env", "sandbox")
    assert done.returncode == 0, done.stderr
    [entry] = ledger_entries(outputs)
    summary = entry["summary"]
    assert summary["verified"] is True and summary["databases_verified"] == len(with_database)
    assert summary["rto_s"] > 0 and summary["rpo_s"] >= 0
    assert scratch_databases(healthy) == []  # dropped after the proof
    assert summary["redis_rdb_ok"] is True and summary["redis_keys"] == manifest.redis.keys >= 3
    metric = (outputs / entry["artifacts"][0]).read_text()
    assert 'vextrus_dr_drill_success{env="sandbox"} 1.0' in metric

    # The drill's results feed the checklist's disaster-recovery category.
    inventory = load_inventory()
    env = load_environment("sandbox", inventory)
    result = checks.run_checklist(env, inventory, checks.select(ids=["DR-DRILL"]))
    assert result.result("DR-DRILL").passed

    notebook = Path(done.stdout.strip())
    secrets = [p.read_text().strip() for p in healthy.secrets_dir.iterdir()]
    evidence = notebook.read_text() + (outputs / "ledger.jsonl").read_text()
    assert not [s for s in secrets if s in evidence]
    assert "restoring 17 databases: 17/17" in notebook_plain_text(notebook)


def _damage(path: Path, how: str) -> None:
    if how == "flip a byte":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.unlink()


# Each damage on a different kind of file: a dump's table of contents, table data, the Redis snapshot.
@pytest.mark.parametrize(
    ("how", "which"),
    [
        ("flip a byte", "postgres/finance/toc.dat"),
        ("truncate", "largest table file"),
        ("delete", "redis/dump.rdb"),
        ("flip a byte", "largest table file"),
    ],
)
def test_a_damaged_set_stops_restore_before_anything_is_restored_naming_the_file(
    healthy: SandboxState, damaged_copy: Path, outputs: Path, how: str, which: str
) -> None:
    if which == "largest table file":
        path = max((damaged_copy / "postgres").rglob("*.dat.gz"), key=lambda p: p.stat().st_size)
    else:
        path = damaged_copy / which
    name = str(path.relative_to(damaged_copy))
    _damage(path, how)
    done = run_cli("run", "dr/restore", "--env", "sandbox", "-p", f"set_id={damaged_copy.name}")
    assert done.returncode == 1
    assert "failed verification, nothing was restored" in done.stderr and name in done.stderr
    assert scratch_databases(healthy) == []


def test_a_damaged_set_fails_the_drill_and_its_metric(
    healthy: SandboxState, damaged_copy: Path, outputs: Path
) -> None:
    path = damaged_copy / "postgres" / "hr" / "toc.dat"
    _damage(path, "flip a byte")
    done = run_cli("run", "dr/drill", "--env", "sandbox")
    assert done.returncode == 1
    assert "postgres/hr/toc.dat: corrupted" in done.stderr
    [entry] = ledger_entries(outputs)
    assert entry["summary"]["verified"] is False
    assert 'vextrus_dr_drill_success{env="sandbox"} 0.0' in (outputs / entry["artifacts"][0]).read_text()
    assert scratch_databases(healthy) == []


def _finance_database(state: SandboxState) -> psycopg.Connection:
    return admin_connection(state, "vextrus_finance")


def _outbox_rows(state: SandboxState) -> int:
    with _finance_database(state) as conn:
        row = conn.execute("SELECT count(*) FROM outbox_events").fetchone()
        return int(row[0]) if row else -1


def _delete_some_outbox_rows(state: SandboxState) -> None:
    with _finance_database(state) as conn:
        conn.execute("DELETE FROM outbox_events WHERE id <= 100")


def test_a_live_restore_without_dry_run_false_changes_nothing(
    healthy: SandboxState, a_set: Path, outputs: Path
) -> None:
    _delete_some_outbox_rows(healthy)
    before = _outbox_rows(healthy)
    done = run_cli("run", "dr/restore", "--env", "sandbox", "-p", "target=live", "-p", "services=finance")
    assert done.returncode == 0, done.stderr
    assert "nothing (dry run)" in notebook_plain_text(Path(done.stdout.strip()))
    assert _outbox_rows(healthy) == before and scratch_databases(healthy) == []


def test_a_live_restore_in_production_without_confirm_is_refused(
    sandbox: SandboxState, outputs: Path
) -> None:
    done = run_cli("run", "dr/restore", "--env", "production", "-p", "target=live", "-p", "dry_run=False")
    assert done.returncode == 2
    assert "pass -p confirm=production to proceed" in done.stderr
    assert not list(outputs.rglob("*.ipynb"))


def test_a_live_restore_brings_the_data_back_and_keeps_the_old_database(
    healthy: SandboxState, a_set: Path, outputs: Path
) -> None:
    expected = Manifest.read(a_set).database("finance").tables["public.outbox_events"].rows
    _delete_some_outbox_rows(healthy)
    assert _outbox_rows(healthy) < expected
    done = run_cli(
        "run",
        "dr/restore",
        "--env",
        "sandbox",
        "-p",
        f"set_id={a_set.name}",
        "-p",
        "target=live",
        "-p",
        "dry_run=False",
        "-p",
        "services=finance",
    )
    assert done.returncode == 0, done.stderr
    [entry] = ledger_entries(outputs)
    assert entry["summary"]["restored"] == ["finance"]
    assert _outbox_rows(healthy) == expected
    kept = f"vextrus_finance_before_{entry['run_id']}"
    with admin_connection(healthy) as admin:
        assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [kept]).fetchone()
        admin.execute(f'DROP DATABASE "{kept}"')
    # The service reconnects to the restored database by itself.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ready = httpx.get(f"http://127.0.0.1:{healthy.ports['finance']}/health/ready", timeout=5)
        if ready.status_code == 200:
            break
        time.sleep(0.2)
    assert ready.status_code == 200, ready.text


def test_a_second_destructive_run_is_refused_while_the_first_holds_the_lock(
    sandbox: SandboxState, a_set: Path, outputs: Path
) -> None:
    held = locks.acquire("sandbox", "first-run", "dr/restore", "2026-11-22T02:00:00+00:00")
    try:
        done = run_cli("run", "dr/restore", "--env", "sandbox", "-p", "target=live", "-p", "dry_run=False")
    finally:
        held.release()
    assert done.returncode == 2
    assert "locked by run first-run (dr/restore" in done.stderr


def test_a_crashed_runs_lock_is_cleared_by_its_death(sandbox: SandboxState, outputs: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from vextrus_nb.run import locks; import time; "
            "held = locks.acquire('sandbox', 'crashed-run', 'dr/restore', 'then'); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ},
        cwd=REPO,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert (locks.holder("sandbox") or {}).get("run_id") == "crashed-run"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        holder.kill()
    assert locks.holder("sandbox") is None
    locks.acquire("sandbox", "next-run", "dr/restore", "now").release()


def _fake_set(store_dir: Path, set_id: str, ended: datetime) -> None:
    path = store_dir / set_id
    path.mkdir(parents=True)
    Manifest(
        set_id=set_id,
        env="sandbox",
        run_id="old",
        source={},
        started_at=ended.isoformat(),
        ended_at=ended.isoformat(),
    ).write(path)


def test_retention_keeps_the_newest_and_the_young_and_prunes_only_when_not_a_dry_run(
    healthy: SandboxState, a_set: Path, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    # Sets that other modules left on this worker's sandbox would count toward keep_last: parked
    # for the test, so the store holds the module's set and the old ones alone.
    parked = tmp_path / "parked"
    parked.mkdir()
    for other in [p for p in store(healthy).iterdir() if p.is_dir() and p != a_set]:
        shutil.move(other, parked / other.name)
    old = [f"20250101T00000{i}Z-old{i}" for i in range(6)]
    for i, set_id in enumerate(old):
        _fake_set(store(healthy), set_id, now - timedelta(days=30, minutes=i))
    try:

        def backup_of_auth(outputs: Path, *parameters: str) -> dict:
            # kind=incr: the pgBackRest part builds on the newest full backup, quick.
            done = run_cli("run", "dr/backup", "--env", "sandbox", "-p", "services=auth", "-p", "kind=incr",
                           *parameters, env={"VEXTRUS_OUTPUTS_DIR": str(outputs)})  # fmt: skip
            assert done.returncode == 0, done.stderr
            return ledger_entries(outputs)[0]["summary"]

        would = backup_of_auth(tmp_path / "dry")["would_prune"]
        # keep_last 5 in the sandbox: the fresh set, the module's set, then the three newest old ones.
        assert sorted(would) == sorted(old[3:]) and all((store(healthy) / s).is_dir() for s in would)
        live = tmp_path / "live"
        backup_of_auth(live, "-p", "dry_run=False")
        pruned = ledger_entries(live)[0]["summary"]["pruned"]
        assert sorted(pruned) == sorted(old[2:]) and not any((store(healthy) / s).exists() for s in pruned)
        assert a_set.is_dir()
    finally:
        for set_id in old:
            shutil.rmtree(store(healthy) / set_id, ignore_errors=True)
        for other in parked.iterdir():
            shutil.move(other, store(healthy) / other.name)


def test_retention_needs_both_count_and_age_to_prune() -> None:
    now = datetime.now(UTC)
    young = [
        sets.SetInfo(f"y{i}", Path(f"/nonexistent/y{i}"), True, now - timedelta(hours=i), 1)
        for i in range(10)
    ]
    assert sets.to_prune(young, keep_last=3, keep_days=7, now=now) == []  # many, but all young
    aged = [
        sets.SetInfo(f"a{i}", Path(f"/nonexistent/a{i}"), True, now - timedelta(days=60 + i), 1)
        for i in range(3)
    ]
    assert sets.to_prune(aged, keep_last=3, keep_days=7, now=now) == []  # old, but no more than keep_last
    assert [s.set_id for s in sets.to_prune(young[:2] + aged, keep_last=3, keep_days=7, now=now)] == [
        "a1",
        "a2",
    ]


@pytest.mark.parametrize(
    ("runbook", "parameter", "says"),
    [
        ("dr/backup", "services=payroll", "unknown service(s) or service(s) without a database: payroll"),
        (
            "dr/backup",
            "services=api-gateway",
            "unknown service(s) or service(s) without a database: api-gateway",
        ),
        ("dr/restore", "target=elsewhere", "target must be one of scratch, live, latest, not 'elsewhere'"),
        ("dr/restore", "set_id=20200101T000000Z-nope", "no backup set '20200101T000000Z-nope'"),
        ("dr/drill", "services=payroll", "payroll"),
    ],
)
def test_bad_input_is_refused_before_anything_is_touched(
    sandbox: SandboxState, outputs: Path, runbook: str, parameter: str, says: str
) -> None:
    done = run_cli("run", runbook, "--env", "sandbox", "-p", parameter)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert ledger_entries(outputs) == [] and not list(outputs.rglob("*.ipynb"))


def test_the_manifest_names_every_file_with_size_and_sha256(a_set: Path) -> None:
    manifest, problems = sets.verify(a_set)
    assert problems == [] and manifest is not None
    on_disk = {str(p.relative_to(a_set)) for p in a_set.rglob("*") if p.is_file()} - {"manifest.json"}
    assert {f.path for f in manifest.files} == on_disk
    raw = json.loads((a_set / "manifest.json").read_text())
    assert all(len(f["sha256"]) == 64 for f in raw["files"])


def test_an_invalid_rdb_does_not_check_out(tmp_path: Path) -> None:
    from vextrus_nb.backup.redis_snapshot import check_rdb

    bad = tmp_path / "dump.rdb"
    bad.write_bytes(b"REDIS0011" + b"\x00" * 64)
    ok, _, detail = check_rdb(bad)
    assert not ok and detail
