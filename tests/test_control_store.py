"""The shared control store with several "hosts" against it: processes with their own outputs
directory and host name (tests/control_host.py, or `vextrus-nb` itself), one real PostgreSQL
and one real SeaweedFS bucket (sandbox/control_store.py). Hosts are killed with SIGKILL and cut
off through the fault proxy; what the tests show: nothing lost, nothing done twice, and every
refusal names why."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import psycopg
import pytest
import yaml

from vextrus_nb.control import evidence_bucket, settings, shared_ledger
from vextrus_nb.control.shared_store import SharedStore
from vextrus_nb.errors import ConfigError
from vextrus_nb.evidence import chain, ledger
from vextrus_nb.sandbox import control_store
from vextrus_nb.sandbox.control_store import ControlStore
from vextrus_nb.sandbox.fault_proxy import FaultProxy

from .helpers import CLI, REPO, wait_until, write_runbook

pytestmark = pytest.mark.servers

HOST_SCRIPT = Path(__file__).with_name("control_host.py")
TTL_S = 3.0
RUNBOOK_PARAMETERS = 'env = "staging"\ndry_run = True\nconfirm = ""\nrelease_file = ""'


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlStore]:
    started = control_store.start(tmp_path_factory.mktemp("control-store"), lease_ttl_s=TTL_S)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def runbooks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A destructive runbook that holds its step until a file appears, and a read-only one."""
    directory = tmp_path_factory.mktemp("notebooks")
    write_runbook(
        directory,
        "test/hold",
        RUNBOOK_PARAMETERS,
        "import pathlib, time\nimport vextrus_nb\n"
        'rb = vextrus_nb.start("test/hold", env=env, dry_run=dry_run, confirm=confirm, destructive=True,'
        " release_file=release_file)",
        'with rb.step("change the environment"):\n'
        "    while release_file and not pathlib.Path(release_file).exists():\n"
        "        time.sleep(0.05)",
        "rb.finish()",
        destructive=True,
    )
    write_runbook(
        directory,
        "test/look",
        RUNBOOK_PARAMETERS,
        'import vextrus_nb\nrb = vextrus_nb.start("test/look", env=env)',
        'with rb.step("look"):\n    rb.summary["seen"] = 1',
        "rb.finish()",
    )
    return directory


def control(store: ControlStore) -> settings.Control:
    return store.control()


def host_env(name: str, tmp_path: Path, settings_file: Path, notebooks: Path | None = None) -> dict[str, str]:
    """A host: its own outputs directory and name, the control store `settings_file` names."""
    env = {
        **os.environ,
        "VEXTRUS_CONTROL": str(settings_file),
        "VEXTRUS_OUTPUTS_DIR": str(tmp_path / name),
        "VEXTRUS_HOST": name,
    }
    if notebooks is not None:
        env["VEXTRUS_NOTEBOOKS_DIR"] = str(notebooks)
    return env


def spawn_host(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(HOST_SCRIPT), *args], env=env, cwd=REPO, stdout=subprocess.PIPE, text=True
    )


def spawn_cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CLI, *args], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def next_event(process: subprocess.Popen[str], timeout_s: float = 60) -> dict[str, Any]:
    """The host's next line, or the test fails after `timeout_s` naming the silent host."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    assert ready, f"host {process.args} said nothing within {timeout_s:g} s"
    line = process.stdout.readline()
    assert line, f"host exited ({process.wait()}) without saying anything"
    return json.loads(line)  # type: ignore[no-any-return]


def settings_through(store: ControlStore, name: str, postgres_port: int, s3_port: int | None = None) -> Path:
    """The store's settings with PostgreSQL (and the bucket) reached through other ports: a
    proxy whose link a test cuts. Beside the original, so its secret files resolve alike."""
    raw = yaml.safe_load(store.settings_path.read_text())
    raw["postgres"]["port"] = postgres_port
    if s3_port is not None:
        raw["s3"]["endpoint"] = f"http://127.0.0.1:{s3_port}"
    path = store.settings_path.with_name(f"control-{name}.yaml")
    path.write_text(yaml.safe_dump(raw))
    return path


def new_entries(store: ControlStore, before: int) -> list[dict[str, Any]]:
    return shared_ledger.entries(control(store))[before:]


# -- the ledger --------------------------------------------------------------------------
def test_two_hosts_appending_twenty_at_once_and_one_killed_leave_one_intact_chain(
    store: ControlStore, tmp_path: Path
) -> None:
    before = len(shared_ledger.entries(control(store)))
    hosts = [spawn_host(host_env(name, tmp_path, store.settings_path), "append", "20") for name in ("a", "b")]
    doomed = spawn_host(host_env("doomed", tmp_path, store.settings_path), "append", "200")
    wait_until(
        lambda: sum(e.get("host") == "doomed" for e in new_entries(store, before)) >= 5,
        "the doomed host to have appended some entries",
    )
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    reported = [next_event(host)["run_ids"] for host in hosts]
    assert [host.wait(60) for host in hosts] == [0, 0]

    appended = new_entries(store, before)
    from_ab = [e["run_id"] for e in appended if e.get("host") in ("a", "b")]
    assert len(from_ab) == 40 and len(set(from_ab)) == 40  # nothing lost, nothing twice
    assert sorted(from_ab) == sorted(run_id for ids in reported for run_id in ids)
    # The killed host's appends are whole or absent, and the chain holds every one of them.
    verdict = SharedStore(control(store)).verify()
    assert verdict.ok, verdict.message()
    assert all(e["evidence"]["version_id"] for e in appended)


def test_the_runners_role_cannot_change_or_delete_the_ledger_nor_can_its_owner_unswitched(
    store: ControlStore,
) -> None:
    shared_ledger.append(control(store), {"run_id": "role-test", "status": "passed"})
    with psycopg.connect(store.runner_dsn(), autocommit=True) as runner:
        for statement in ("UPDATE ledger SET line = '{}'", "DELETE FROM ledger", "TRUNCATE ledger"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied"):
                runner.execute(statement)
    with psycopg.connect(store.owner_dsn, autocommit=True) as owner:
        for statement in ("UPDATE ledger SET line = '{}'", "DELETE FROM ledger", "TRUNCATE ledger"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                owner.execute(statement)
        # The documented maintenance switch, for the owner's own transaction (rolled back here).
        with owner.transaction(force_rollback=True):
            owner.execute("SET LOCAL vextrus.ledger_maintenance = 'on'")
            changed = owner.execute("UPDATE ledger SET appended_at = appended_at WHERE run_id = 'role-test'")
            assert changed.rowcount == 1
    assert SharedStore(control(store)).verify().ok


def test_a_changed_or_deleted_sealed_object_is_named_by_verify(store: ControlStore, tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    notebook = outputs / "sandbox" / "tampered.ipynb"
    notebook.parent.mkdir(parents=True)
    notebook.write_text('{"cells": []}')
    shared = SharedStore(control(store))
    entry = shared.append(
        {
            "run_id": "tamper-me",
            "output": "sandbox/tampered.ipynb",
            "output_sha256": chain.sha256_file(notebook),
        },
        outputs,
    )
    s3 = evidence_bucket.client(control(store))
    bucket, key = entry["evidence"]["bucket"], entry["evidence"]["key"]
    assert shared.verify().ok

    overwritten = s3.put_object(Bucket=bucket, Key=key, Body=b'{"cells": ["edited"]}')["VersionId"]
    try:
        verdict = shared.verify()
        assert not verdict.ok and verdict.broken_run_id == "tamper-me"
        assert "was changed after the run" in verdict.reason and key in verdict.reason
    finally:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=overwritten)
    assert shared.verify().ok

    marker = s3.delete_object(Bucket=bucket, Key=key)["VersionId"]
    try:
        verdict = shared.verify()
        assert not verdict.ok and "was deleted" in verdict.reason, verdict.message()
    finally:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=marker)
    assert shared.verify().ok


def test_a_file_ledger_imports_once_and_verifies_in_the_store_and_a_broken_one_is_refused(
    store: ControlStore, tmp_path: Path
) -> None:
    outputs = tmp_path / "laptop"
    for index in range(3):
        notebook = outputs / "sandbox" / f"old-{index}.ipynb"
        notebook.parent.mkdir(parents=True, exist_ok=True)
        notebook.write_text(json.dumps({"cells": [], "index": index}))
        ledger.append_to_file(
            {"run_id": f"old-{index}", "output": str(notebook.relative_to(outputs)),
             "output_sha256": chain.sha256_file(notebook), "status": "passed"},
            outputs / "ledger.jsonl",
        )  # fmt: skip
    env = host_env("importer", tmp_path, store.settings_path)
    done = subprocess.run(
        [CLI, "ledger", "import", str(outputs / "ledger.jsonl")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "imported 3 entries, 0 already" in done.stdout
    imported = [e for e in shared_ledger.entries(control(store)) if str(e["run_id"]).startswith("old-")]
    assert [e["run_id"] for e in imported] == ["old-0", "old-1", "old-2"]
    originals = ledger.read_file(outputs / "ledger.jsonl")
    assert [e["imported_from"]["hash"] for e in imported] == [e["hash"] for e in originals]
    again = subprocess.run(
        [CLI, "ledger", "import", str(outputs / "ledger.jsonl")], env=env, capture_output=True, text=True
    )
    assert "imported 0 entries, 3 already" in again.stdout
    assert subprocess.run([CLI, "ledger", "verify"], env=env, capture_output=True, text=True).returncode == 0

    (outputs / "sandbox" / "old-1.ipynb").write_text("edited")
    refused = subprocess.run(
        [CLI, "ledger", "import", str(outputs / "ledger.jsonl")], env=env, capture_output=True, text=True
    )
    assert refused.returncode == 2 and "does not verify, nothing imported" in refused.stderr


def test_an_exported_ledger_verifies_offline_and_an_edited_notebook_breaks_it(
    store: ControlStore, tmp_path: Path
) -> None:
    env = host_env("auditor", tmp_path, store.settings_path)
    exported, notebooks = tmp_path / "ledger.jsonl", tmp_path / "notebooks"
    done = subprocess.run(
        [CLI, "ledger", "export", "--format", "jsonl", "--out", str(exported), "--notebooks", str(notebooks)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert exported.read_text().splitlines() == shared_ledger.lines(control(store))
    offline = {k: v for k, v in os.environ.items() if k != "VEXTRUS_CONTROL"}
    verify = [CLI, "ledger", "verify", "--file", str(exported), "--notebooks", str(notebooks)]
    intact = subprocess.run(verify, env=offline, capture_output=True, text=True)
    assert intact.returncode == 0 and "ledger intact" in intact.stdout, intact.stderr
    some = next(notebooks.rglob("*.ipynb"))
    some.write_text(some.read_text() + " ")
    broken = subprocess.run(verify, env=offline, capture_output=True, text=True)
    assert broken.returncode == 1 and "was modified after the run" in broken.stderr


# -- leases ------------------------------------------------------------------------------
def test_concurrent_live_destructive_runs_one_proceeds_the_others_are_refused_before_a_kernel(
    store: ControlStore, runbooks: Path, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    names = [f"oncall-{n}" for n in range(4)]
    runs = {
        name: spawn_cli(
            host_env(name, tmp_path, store.settings_path, runbooks),
            "run",
            "test/hold",
            "--env",
            "staging",
            "-p",
            "dry_run=False",
            "-p",
            f"release_file={release}",
        )
        for name in names
    }
    refused = wait_until(
        lambda: (
            [n for n, p in runs.items() if p.poll() is not None]
            if sum(p.poll() is not None for p in runs.values()) == 3
            else None
        ),
        "three of the four runs to be refused",
        timeout_s=60,
    )
    [winner] = set(names) - set(refused)
    for name in refused:
        _, stderr = runs[name].communicate()
        assert runs[name].returncode == 2, stderr
        assert "environment 'staging' is locked by run" in stderr and f"host {winner}" in stderr
        assert not list((tmp_path / name).rglob("*.ipynb"))  # no kernel ran, nothing was sealed
    release.touch()
    stdout, stderr = runs[winner].communicate(timeout=120)
    assert runs[winner].returncode == 0, stderr
    [entry] = [e for e in shared_ledger.entries(control(store)) if e.get("runbook") == "test/hold"]
    assert entry["lock"]["kind"] == "lease" and entry["lock"]["token"] > 0
    assert entry["output"] in stdout and entry["evidence"]["key"] == entry["output"]
    status = subprocess.run([CLI, "control", "status"], env=host_env("x", tmp_path, store.settings_path),
                            capture_output=True, text=True)  # fmt: skip
    assert status.returncode == 0 and "leases: none held" in status.stdout, status.stdout + status.stderr


def test_hosts_racing_for_one_lease_at_the_same_instant_one_wins_and_the_rest_name_it(
    store: ControlStore, tmp_path: Path
) -> None:
    at = time.time() + 3  # every racer is started and waiting by then
    racers = [
        spawn_host(host_env(f"racer-{n}", tmp_path, store.settings_path), "race", "env-race", str(at))
        for n in range(8)
    ]
    events = [next_event(racer) for racer in racers]
    assert [racer.wait(30) for racer in racers] == [0] * 8
    [winner] = [e["host"] for e in events if e["event"] == "taken"]
    refusals = [e["reason"] for e in events if e["event"] == "refused"]
    assert len(refusals) == 7 and all(f"host {winner}" in reason for reason in refusals)


def test_a_sigkilled_holders_lease_is_taken_after_it_expires_and_within_ttl_plus_5_s(
    store: ControlStore, tmp_path: Path
) -> None:
    holder = spawn_host(
        host_env("doomed-holder", tmp_path, store.settings_path), "hold", "env-kill", str(TTL_S)
    )
    assert next_event(holder)["event"] == "holding"
    taker = spawn_host(host_env("next-holder", tmp_path, store.settings_path), "take", "env-kill", str(TTL_S))
    status = subprocess.run([CLI, "control", "status"], env=host_env("x", tmp_path, store.settings_path),
                            capture_output=True, text=True)  # fmt: skip
    assert "lease env-kill: run" in status.stdout and "host doomed-holder" in status.stdout
    with psycopg.connect(store.owner_dsn) as conn:
        [expires_before_kill] = conn.execute(
            "SELECT expires_at FROM leases WHERE env = 'env-kill'"
        ).fetchone()
    killed_at = time.monotonic()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    taken = next_event(taker)
    waited = time.monotonic() - killed_at
    assert taker.wait(30) == 0
    assert taken["event"] == "taken" and "host doomed-holder" in taken["last_refusal"]
    since = datetime.fromisoformat(taken["expires_at"]).timestamp() - TTL_S
    assert since >= expires_before_kill.timestamp()  # never before the dead holder's lease ran out
    assert waited <= TTL_S + 5


def test_a_holder_cut_off_from_the_store_stops_before_its_next_step_and_the_next_host_proceeds(
    store: ControlStore, tmp_path: Path
) -> None:
    log = tmp_path / "steps.log"
    log.touch()
    with FaultProxy("127.0.0.1", store.postgres.port).running() as proxy:
        cut_off = spawn_host(
            host_env("cut-off", tmp_path, settings_through(store, "cut-off", proxy.port)),
            "fenced", "env-cut", str(TTL_S), str(log),
        )  # fmt: skip
        assert next_event(cut_off)["event"] == "holding"
        wait_until(lambda: log.read_text().count("cut-off ") >= 3, "the first host's first steps")
        successor = spawn_host(
            host_env("successor", tmp_path, store.settings_path), "fenced", "env-cut", str(TTL_S), str(log)
        )
        proxy.set_link("cut")
        stopped = next_event(cut_off)
        assert cut_off.wait(30) == 3 and stopped["event"] == "stopped"
        assert (
            "cannot confirm its lease" in stopped["reason"]
            and "stops before its next destructive step" in stopped["reason"]
        )
        assert next_event(successor)["event"] == "holding"
        wait_until(lambda: log.read_text().count("successor ") >= 3, "the second host's steps")
        successor.send_signal(signal.SIGTERM)
        successor.wait()
    hosts = [line.split()[0] for line in log.read_text().splitlines()]
    first_successor = hosts.index("successor")
    assert "cut-off" not in hosts[first_successor:]  # the two never raced


# -- the store unreachable ---------------------------------------------------------------
def test_with_the_store_down_a_read_only_run_seals_locally_and_joins_the_chain_late(
    store: ControlStore, runbooks: Path, tmp_path: Path
) -> None:
    bucket_port = store.bucket_port
    with (
        FaultProxy("127.0.0.1", store.postgres.port).running() as db_link,
        FaultProxy("127.0.0.1", bucket_port).running() as bucket_link,
    ):
        env = host_env(
            "incident",
            tmp_path,
            settings_through(store, "incident", db_link.port, bucket_link.port),
            runbooks,
        )
        db_link.set_link("cut")
        bucket_link.set_link("cut")

        look = subprocess.run(
            [CLI, "run", "test/look", "--env", "staging"], env=env, capture_output=True, text=True
        )
        assert look.returncode == 0, look.stderr
        waiting = ledger.read_file(tmp_path / "incident" / "ledger.pending.jsonl")
        assert [e["runbook"] for e in waiting] == ["test/look"] and Path(look.stdout.strip()).is_file()

        live = subprocess.run([CLI, "run", "test/hold", "--env", "staging", "-p", "dry_run=False"],
                              env=env, capture_output=True, text=True)  # fmt: skip
        assert live.returncode == 2
        assert "would change 'staging' live, and no lock can be taken" in live.stderr
        assert f"control store PostgreSQL 127.0.0.1:{db_link.port}" in live.stderr
        status = subprocess.run([CLI, "control", "status"], env=env, capture_output=True, text=True)
        assert status.returncode == 1 and "cannot be reached" in status.stderr

        db_link.set_link("pass")
        bucket_link.set_link("pass")
        later = subprocess.run(
            [CLI, "run", "test/look", "--env", "staging"], env=env, capture_output=True, text=True
        )
        assert later.returncode == 0, later.stderr
    chained = [e for e in shared_ledger.entries(control(store)) if e.get("host") == "incident"]
    assert [e["run_id"] for e in chained] == [waiting[0]["run_id"], chained[-1]["run_id"]]
    assert chained[0]["appended_late"] is True and chained[0]["sealed_on"] == "incident"
    assert "appended_late" not in chained[1]
    assert not (tmp_path / "incident" / "ledger.pending.jsonl").exists()
    assert SharedStore(control(store)).verify().ok


# -- settings ----------------------------------------------------------------------------
def test_settings_name_what_is_wrong_and_never_fall_back_silently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VEXTRUS_CONTROL", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read"):
        settings.load()
    bad = tmp_path / "bad.yaml"
    bad.write_text("store: shared\npostgres: {host: h, port: 0, user: u, password: {file: p}}\n")
    monkeypatch.setenv("VEXTRUS_CONTROL", str(bad))
    with pytest.raises(ConfigError, match=r"postgres.port: .*greater than 0.*s3: Field required"):
        settings.load()
    unsaid = tmp_path / "unsaid.yaml"  # a store described but not named: never quietly the files
    unsaid.write_text("postgres: {host: h, port: 5432, user: u, password: {env: P}}\n")
    monkeypatch.setenv("VEXTRUS_CONTROL", str(unsaid))
    with pytest.raises(ConfigError, match="say `store: shared`"):
        settings.load()
    literal = tmp_path / "literal.yaml"
    literal.write_text(
        "store: shared\npostgres: {host: h, port: 5432, user: u, password: hunter2}\n"
        "s3: {endpoint: e, bucket: b, access_key: {env: A}, secret_key: {env: B}}\n"
    )
    monkeypatch.setenv("VEXTRUS_CONTROL", str(literal))
    with pytest.raises(ConfigError, match=r"postgres\.password"):
        settings.load()
    monkeypatch.delenv("VEXTRUS_CONTROL")
    monkeypatch.setenv("VEXTRUS_PARAMETERS_DIR", str(tmp_path))
    assert not settings.load().is_shared


# -- interactive runs --------------------------------------------------------------------
def test_an_interactive_run_holds_its_lease_in_its_kernel_is_sealed_into_the_store_and_dies_with_it(
    store: ControlStore, runbooks: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vextrus_nb.control import leases
    from vextrus_nb.run import interactive

    from .test_interactive import execute, open_copy, save, stop

    released = tmp_path / "released"
    released.touch()
    for name, value in host_env("lab", tmp_path, store.settings_path, runbooks).items():
        monkeypatch.setenv(name, value)
    copy = open_copy("test/hold", "--env", "staging", "-p", "dry_run=False", "-p", f"release_file={released}")
    run_id = interactive.run_of_notebook(copy)
    start = 1 + next(i for i, c in enumerate(nbformat.read(copy, as_version=4).cells) if "start(" in c.source)
    client = execute(copy, cells=slice(0, start))  # to the start cell: the kernel takes the lease
    try:
        held = leases.holder(control(store), "staging")
        assert held is not None and held["run_id"] == run_id and held["host"] == "lab"
        refused = subprocess.run([CLI, "run", "test/hold", "--env", "staging", "-p", "dry_run=False"],
                                 capture_output=True, text=True)  # fmt: skip
        assert refused.returncode == 2 and f"locked by run {run_id}" in refused.stderr
        execute(copy, cells=slice(start, None), client=client)
        save(client, copy)
    finally:
        stop(client)
    assert leases.holder(control(store), "staging") is None  # finish() gave it back
    [entry] = [e for e in shared_ledger.entries(control(store)) if e["run_id"] == run_id]
    assert entry["executed_by"] == "vextrus-nb open" and entry["lock"]["kind"] == "lease"
    assert entry["evidence"]["key"] == entry["output"]

    second = open_copy("test/hold", "--env", "staging", "-p", "dry_run=False", "-p", "release_file=")
    client = execute(second, cells=slice(0, start))
    pid = client.km.provisioner.pid  # type: ignore[union-attr]
    assert leases.holder(control(store), "staging") is not None
    os.kill(pid, signal.SIGKILL)  # the kernel dies: nothing renews its lease
    killed_at = time.monotonic()
    wait_until(lambda: leases.holder(control(store), "staging") is None, "the dead kernel's lease to expire")
    assert time.monotonic() - killed_at <= TTL_S + 5
    with contextlib.suppress(Exception):
        stop(client)
