"""Runbooks as the team's service on a real Temporal server (the control store's own, started by
sandbox/control_store.py): workers are `vextrus-nb worker` processes with their own outputs
directory and host name; runs go in through `vextrus-nb submit`. A worker is SIGKILLed mid-run;
what the tests show: each run executed once, a lost run on record as error naming the host,
its lease freed, and a refused submit that starts nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vextrus_nb.control import leases, shared_ledger
from vextrus_nb.sandbox import control_store
from vextrus_nb.sandbox.control_store import ControlStore
from vextrus_nb.service import client
from vextrus_nb.service.workflows import HEARTBEAT_TIMEOUT

from .helpers import CLI, REPO, wait_until, write_runbook

pytestmark = pytest.mark.servers

TTL_S = 4.0
PARAMETERS = 'env = "staging"\ndry_run = True\nconfirm = ""\nmarker = ""\nrelease_file = ""'


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlStore]:
    started = control_store.start(tmp_path_factory.mktemp("control-store"), lease_ttl_s=TTL_S)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def runbooks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """test/look (read-only) and test/hold (destructive; waits for a file, leaves a mark per start)."""
    directory = tmp_path_factory.mktemp("notebooks")
    write_runbook(
        directory,
        "test/look",
        PARAMETERS,
        'import vextrus_nb\nrb = vextrus_nb.start("test/look", env=env)',
        'with rb.step("look"):\n    rb.summary["seen"] = 1',
        "rb.finish()",
    )
    write_runbook(
        directory,
        "test/hold",
        PARAMETERS,
        "import os, pathlib, time\nimport vextrus_nb\n"
        'rb = vextrus_nb.start("test/hold", env=env, dry_run=dry_run, confirm=confirm, destructive=True,'
        " marker=marker, release_file=release_file)",
        'with rb.step("change the environment"):\n'
        "    with open(marker, 'a') as handle:\n"
        "        handle.write(f'{os.environ.get(\"VEXTRUS_HOST\")} started\\n')\n"
        "    while not pathlib.Path(release_file).exists():\n"
        "        time.sleep(0.05)",
        "rb.finish()",
        destructive=True,
    )
    return directory


def host_env(store: ControlStore, name: str, tmp_path: Path, runbooks: Path) -> dict[str, str]:
    return {
        **os.environ,
        "VEXTRUS_CONTROL": str(store.settings_path),
        "VEXTRUS_OUTPUTS_DIR": str(tmp_path / name),
        "VEXTRUS_HOST": name,
        "VEXTRUS_NOTEBOOKS_DIR": str(runbooks),
    }


@pytest.fixture
def workers(
    store: ControlStore, runbooks: Path, tmp_path: Path
) -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Two workers on staging's queue, each a host of its own; stopped after the test."""
    started = {
        name: subprocess.Popen(
            [CLI, "worker", "--env", "staging"],
            env=host_env(store, name, tmp_path, runbooks),
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("worker-a", "worker-b")
    }
    for process in started.values():
        assert process.stderr is not None and "polling vextrus-runbooks-staging" in process.stderr.readline()
    wait_until(lambda: len(polling(store)) >= 2, "both workers to poll the queue")
    yield started
    for process in started.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in started.values():
        process.wait(90)


def polling(store: ControlStore) -> list[str]:
    async def ask() -> list[str]:
        return await client.pollers(await client.connect(store.control()), "staging")

    return asyncio.run(ask())


def workflow_count(store: ControlStore) -> int:
    async def count() -> int:
        connected = await client.connect(store.control())
        return len([w async for w in connected.list_workflows('WorkflowType="RunbookRun"')])

    return asyncio.run(count())


def submit(
    store: ControlStore, tmp_path: Path, runbooks: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "submit", *args], env=host_env(store, "laptop", tmp_path, runbooks), cwd=REPO,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def entries_of(store: ControlStore, run_ids: set[str]) -> list[dict[str, object]]:
    return [e for e in shared_ledger.entries(store.control()) if e["run_id"] in run_ids]


def test_a_submitted_run_passes_with_wait_and_is_sealed_in_the_shared_ledger(
    store: ControlStore, runbooks: Path, tmp_path: Path, workers: dict[str, subprocess.Popen[str]]
) -> None:
    done = submit(store, tmp_path, runbooks, "test/look", "--env", "staging", "--wait")
    assert done.returncode == 0, done.stderr
    run_id, output = done.stdout.split()
    [entry] = entries_of(store, {run_id})
    assert entry["status"] == "passed" and entry["host"] in workers and entry["output"] in output
    assert entry["submitted"] == {"by": entry["operator"], "host": "laptop", "at": entry["submitted"]["at"]}  # type: ignore[index]
    listed = subprocess.run([CLI, "runs"], env=host_env(store, "auditor", tmp_path, runbooks),
                            capture_output=True, text=True)  # fmt: skip
    assert run_id in listed.stdout and "passed" in listed.stdout


def test_a_refused_submit_exits_2_and_starts_nothing(
    store: ControlStore, runbooks: Path, tmp_path: Path, workers: dict[str, subprocess.Popen[str]]
) -> None:
    before = workflow_count(store)
    for args, says in (
        (("test/look", "--env", "staging", "-p", "colour=red"), "unknown parameter 'colour'"),
        (("test/lok", "--env", "staging"), "unknown runbook 'test/lok'"),
        (("test/look", "--env", "nowhere"), "unknown environment 'nowhere'"),
        (("test/look", "--env", "production"), "no worker polls vextrus-runbooks-production"),
        (("test/look", "--env", "staging", "-p", "db_password=hunter2"), "look like secrets"),
    ):
        done = submit(store, tmp_path, runbooks, *args, "--wait")
        assert done.returncode == 2 and says in done.stderr, (args, done.stderr)
        assert "nothing was submitted" in done.stderr or "refused" in done.stderr
    assert workflow_count(store) == before


def test_two_workers_ten_submitted_runs_each_executed_exactly_once(
    store: ControlStore, runbooks: Path, tmp_path: Path, workers: dict[str, subprocess.Popen[str]]
) -> None:
    submitted = [submit(store, tmp_path, runbooks, "test/look", "--env", "staging") for _ in range(10)]
    assert all(s.returncode == 0 for s in submitted), [s.stderr for s in submitted]
    run_ids = {s.stdout.strip() for s in submitted}
    assert len(run_ids) == 10
    wait_until(lambda: len(entries_of(store, run_ids)) >= 10, "ten sealed runs", timeout_s=240)
    entries = entries_of(store, run_ids)
    assert len(entries) == 10 and {e["run_id"] for e in entries} == run_ids  # once each
    assert {e["status"] for e in entries} == {"passed"}, [
        (e["run_id"], e["status"], e.get("cause")) for e in entries if e["status"] != "passed"
    ]
    notebooks = [p for name in workers for p in (tmp_path / name).rglob("test-look-*.ipynb")]
    assert len(notebooks) == 10  # each executed on exactly one worker


def test_a_worker_killed_mid_run_is_recorded_error_naming_it_never_rerun_and_its_lease_frees(
    store: ControlStore, runbooks: Path, tmp_path: Path, workers: dict[str, subprocess.Popen[str]]
) -> None:
    marker, never = tmp_path / "starts.log", tmp_path / "never-released"
    marker.touch()
    done = submit(
        store, tmp_path, runbooks, "test/hold", "--env", "staging", "-p", "dry_run=False",
        "-p", f"marker={marker}", "-p", f"release_file={never}",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    wait_until(lambda: marker.read_text().strip(), "the run to start on a worker", timeout_s=120)
    [started_on] = [line.split()[0] for line in marker.read_text().splitlines()]
    held = leases.holder(store.control(), "staging")
    assert held is not None and held["run_id"] == run_id and held["host"] == started_on

    workers[started_on].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    workers[started_on].wait()
    wait_until(lambda: entries_of(store, {run_id}), "the lost run's record", timeout_s=90)
    recorded_after = time.monotonic() - killed_at
    [entry] = entries_of(store, {run_id})
    assert entry["status"] == "error" and f"worker lost (host {started_on})" in str(entry["cause"])
    assert recorded_after <= HEARTBEAT_TIMEOUT.total_seconds() + 30
    wait_until(lambda: leases.holder(store.control(), "staging") is None, "the dead worker's lease to expire")
    assert marker.read_text().count("started") == 1  # not executed again by the other worker


# -- schedules ---------------------------------------------------------------------------
def cli(store: ControlStore, tmp_path: Path, runbooks: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], env=host_env(store, "scheduler", tmp_path, runbooks), cwd=REPO,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def schedule_row(store: ControlStore, name: str) -> dict[str, object]:
    from vextrus_nb.service import schedules

    [row] = [r for r in asyncio.run(schedules.listing(store.control())) if r["name"] == name]
    return row


def test_a_schedule_runs_on_its_workers_skips_an_overlap_and_pause_stops_it(
    store: ControlStore, runbooks: Path, tmp_path: Path, workers: dict[str, subprocess.Popen[str]]
) -> None:
    marker, release = tmp_path / "starts.log", tmp_path / "release"
    marker.touch()
    made = cli(
        store, tmp_path, runbooks, "schedule", "test/hold", "--env", "staging", "--engine", "temporal",
        "--cron", "@every 2s", "-p", f"marker={marker}", "-p", f"release_file={release}",
    )  # fmt: skip
    assert made.returncode == 0 and "created schedule test.hold@staging" in made.stdout, made.stderr
    name = "test.hold@staging"
    try:
        # The first firing holds (its step waits for the release file): later firings are skipped.
        wait_until(lambda: marker.read_text().count("started") == 1, "the first scheduled run", timeout_s=60)
        wait_until(
            lambda: int(schedule_row(store, name)["skipped_overlap"]) >= 2, "overlapping firings skipped"
        )
        assert marker.read_text().count("started") == 1  # never doubled
        release.touch()
        wait_until(
            lambda: marker.read_text().count("started") >= 2, "a run after the first ended", timeout_s=60
        )

        paused = cli(store, tmp_path, runbooks, "schedule", "pause", name, "--note", "change freeze")
        assert paused.returncode == 0, paused.stderr
        listed = cli(store, tmp_path, runbooks, "schedule", "list")
        assert f"{name}: @every 2s, PAUSED (change freeze)" in listed.stdout, listed.stdout
        assert "passed" in listed.stdout  # the recent runs' outcomes
        runs_when_paused = int(schedule_row(store, name)["runs"])
        # Two whole intervals after the pause: a paused schedule would have fired by now.
        settled = time.monotonic() + 5
        wait_until(lambda: time.monotonic() > settled, "two intervals to pass")
        assert int(schedule_row(store, name)["runs"]) == runs_when_paused

        resumed = cli(store, tmp_path, runbooks, "schedule", "unpause", name, "--note", "freeze over")
        assert resumed.returncode == 0, resumed.stderr
        wait_until(lambda: int(schedule_row(store, name)["runs"]) > runs_when_paused, "a run after unpause")
    finally:
        deleted = cli(store, tmp_path, runbooks, "schedule", "delete", name)
        assert deleted.returncode == 0, deleted.stderr
    assert name not in cli(store, tmp_path, runbooks, "schedule", "list").stdout


def test_a_bad_schedule_is_refused_before_anything_is_made(
    store: ControlStore, runbooks: Path, tmp_path: Path
) -> None:
    for args, says in (
        (
            ("test/look", "--env", "staging", "--engine", "temporal", "--cron", "61 * * * *"),
            "refused the schedule",
        ),
        (("test/look", "--env", "staging", "--engine", "temporal", "-p", "colour=red"), "unknown parameter"),
        (("pause", "no.such@staging", "--note", "x"), "no schedule 'no.such@staging'"),
        (("pause", "test.look@staging"), "needs --note"),
    ):
        done = cli(store, tmp_path, runbooks, "schedule", *args)
        assert done.returncode == 2 and says in done.stderr, (args, done.stderr)
    assert "test.look@staging" not in cli(store, tmp_path, runbooks, "schedule", "list").stdout


# -- approvals ---------------------------------------------------------------------------
APPROVERS = ("alice", "bob", "carol")


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of parameters/ with two gated environments over staging's settings: production
    guards (confirm) and 2 approvals of 3 approvers; `staging-quick` gives them 3 s."""
    import shutil

    import yaml
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    root = tmp_path_factory.mktemp("gated")
    shutil.copytree(REPO / "parameters", root / "parameters")
    keys = root / "approvers"
    keys.mkdir()
    for name in (*APPROVERS, "mallory"):
        key = Ed25519PrivateKey.generate()
        (keys / f"{name}.pem").write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
        )  # fmt: skip
        (keys / f"{name}.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    staging = yaml.safe_load((REPO / "parameters" / "environments" / "staging.yaml").read_text())
    for name, timeout in (("staging-gated", 120), ("staging-quick", 3)):
        document = {
            **staging,
            "name": name,
            "production": True,
            "approvals": {
                "required": 2,
                "approvers": {a: str(keys / f"{a}.pub") for a in APPROVERS},
                "timeout_s": timeout,
            },
        }
        (root / "parameters" / "environments" / f"{name}.yaml").write_text(yaml.safe_dump(document))
    return root


def gated_env(store: ControlStore, name: str, tmp_path: Path, runbooks: Path, gated: Path) -> dict[str, str]:
    return {
        **host_env(store, name, tmp_path, runbooks),
        "VEXTRUS_PARAMETERS_DIR": str(gated / "parameters"),
        "VEXTRUS_OPERATOR": name,
    }


def approve(store: ControlStore, tmp_path: Path, runbooks: Path, gated: Path, run_id: str, who: str,
            key: str | None = None, *extra: str) -> subprocess.CompletedProcess[str]:  # fmt: skip
    key_file = gated / "approvers" / f"{key or who}.pem"
    return subprocess.run(
        [CLI, "approve", run_id, "--as", who, "--key", str(key_file), *extra],
        env=gated_env(store, who, tmp_path, runbooks, gated), cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip


def test_a_gated_run_waits_for_two_valid_approvals_of_others_and_records_them(
    store: ControlStore, runbooks: Path, tmp_path: Path, gated: Path
) -> None:
    from vextrus_nb.evidence import approvals, chain

    worker = subprocess.Popen(
        [CLI, "worker", "--env", "staging-gated", "--env", "staging-quick"],
        env=gated_env(store, "gated-worker", tmp_path, runbooks, gated),
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    marker, release = tmp_path / "starts.log", tmp_path / "released"
    marker.touch()
    release.touch()
    live = (
        "-p",
        "dry_run=False",
        "-p",
        "confirm={env}",
        "-p",
        f"marker={marker}",
        "-p",
        f"release_file={release}",
    )

    def ask(env: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, *args, "test/hold", "--env", env, *(a.format(env=env) for a in live)],
            env=gated_env(store, "alice", tmp_path, runbooks, gated),
            cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip

    try:
        assert worker.stderr is not None and "polling" in worker.stderr.readline()
        direct = ask("staging-gated", "run")
        assert direct.returncode == 2 and "needs 2 approvals of alice, bob, carol" in direct.stderr
        submitted = ask("staging-gated", "submit")
        assert submitted.returncode == 0, submitted.stderr
        run_id = submitted.stdout.strip()

        for who, key, says in (
            ("alice", None, "alice asked for this run and cannot approve it"),
            ("mallory", None, "'mallory' is not an approver of 'staging-gated'"),
            ("bob", "carol", "the signature does not verify with bob's key"),
        ):
            refused = approve(store, tmp_path, runbooks, gated, run_id, who, key)
            assert refused.returncode == 2 and says in refused.stderr, (who, refused.stderr)
        # Signed properly, but over other parameters than this run's:
        request = client.run_async(client.pending_request(store.control(), run_id))
        other = approvals.parameters_hash({**request["parameters"], "dry_run": True})
        signed = approvals.message(run_id, request["runbook"], request["env"], other)
        bob_key = (gated / "approvers" / "bob.pem").read_bytes()
        forged = {
            "name": "bob",
            "params_hash": other,
            "reject": False,
            "signature": approvals.sign(bob_key, signed),
        }
        with pytest.raises(Exception, match="signed over other parameters"):
            client.run_async(client.decide(store.control(), run_id, forged))

        first = approve(store, tmp_path, runbooks, gated, run_id, "bob")
        assert first.returncode == 0 and "1 of 2 approvals" in first.stdout, first.stderr
        twice = approve(store, tmp_path, runbooks, gated, run_id, "bob")
        assert twice.returncode == 2 and "an approver counts once" in twice.stderr
        assert marker.read_text() == ""  # one approval of two: nothing ran
        second = approve(store, tmp_path, runbooks, gated, run_id, "carol")
        assert second.returncode == 0 and "2 of 2 approvals" in second.stdout, second.stderr
        wait_until(lambda: entries_of(store, {run_id}), "the approved run's entry", timeout_s=120)
        [entry] = entries_of(store, {run_id})
        assert entry["status"] == "passed" and marker.read_text().count("started") == 1
        assert [a["name"] for a in entry["submitted"]["approvals"]] == ["bob", "carol"]  # type: ignore[index]

        # A workflow started by hand, claiming approvals it does not have: the worker's runner
        # checks them against its own copy of the approvers' keys and refuses; nothing runs.
        async def forge() -> dict[str, object]:
            connected = await client.connect(store.control())
            handle = await connected.start_workflow(
                "RunbookRun",
                {"run_id": "forged000001", "runbook": "test/hold", "env": "staging-gated",
                 "parameters": request["parameters"],
                 "submitted": {"by": "mallory", "approvals": [{"name": "bob"}, {"name": "carol"}]}},
                id="forged000001", task_queue="vextrus-runbooks-staging-gated",
            )  # fmt: skip
            return await handle.result()  # type: ignore[no-any-return]

        forged_run = asyncio.run(forge())
        assert forged_run["status"] == "refused" and "approval" in str(forged_run["message"])
        assert marker.read_text().count("started") == 1

        # Expired: nobody approves within staging-quick's 3 s; nothing runs.
        quick = ask("staging-quick", "submit", "--wait")
        assert quick.returncode == 1 and "expired: 0 of 2 approvals within 3 s" in quick.stderr, quick.stderr
        # Rejected: one approver says no, with a reason; nothing runs.
        rejected_run = ask("staging-gated", "submit").stdout.strip()
        no = approve(
            store, tmp_path, runbooks, gated, rejected_run, "carol", None, "--reject", "--reason", "not today"
        )
        assert no.returncode == 0 and "rejected" in no.stdout, no.stderr
        wait_until(lambda: entries_of(store, {rejected_run}), "the rejected run's entry")
        [rejected] = entries_of(store, {rejected_run})
        assert rejected["status"] == "rejected" and "not today" in str(rejected["cause"])
        assert marker.read_text().count("started") == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(90)

    # ledger verify checks the approvals against the environment's keys: one byte of bob's
    # signature changed, the chain recomputed (what write access to a file ledger allows),
    # and the approval, not the chain, is what breaks.
    exported = tmp_path / "ledger.jsonl"
    env = gated_env(store, "auditor", tmp_path, runbooks, gated)
    notebooks = tmp_path / "evidence"
    export = [
        CLI,
        "ledger",
        "export",
        "--format",
        "jsonl",
        "--out",
        str(exported),
        "--notebooks",
        str(notebooks),
    ]
    assert subprocess.run(export, env=env, capture_output=True).returncode == 0
    offline = {k: v for k, v in env.items() if k != "VEXTRUS_CONTROL"}
    verify = [CLI, "ledger", "verify", "--file", str(exported), "--notebooks", str(notebooks)]
    assert subprocess.run(verify, env=offline, capture_output=True).returncode == 0  # intact as exported
    entries = [json.loads(line) for line in exported.read_text().splitlines()]
    approved = next(i for i, e in enumerate(entries) if e["run_id"] == run_id)
    signature = entries[approved]["submitted"]["approvals"][0]["signature"]
    entries[approved]["submitted"]["approvals"][0]["signature"] = (
        "A" if signature[0] != "A" else "B"
    ) + signature[1:]
    previous, rechained = chain.GENESIS, []
    for e in entries:
        relinked = chain.link(
            {k: v for k, v in e.items() if k not in ("hash", "prev_hash", "signature", "signer")}, previous
        )
        rechained.append(chain.to_line(relinked))
        previous = relinked["hash"]
    exported.write_text("\n".join(rechained) + "\n")
    tampered = subprocess.run(verify, env=offline, capture_output=True, text=True)
    assert tampered.returncode == 1 and "approval by bob does not verify with their key" in tampered.stderr, (
        tampered.stderr
    )


def test_a_gated_working_copy_asks_for_approvals_and_its_start_cell_waits_for_them(
    store: ControlStore, runbooks: Path, tmp_path: Path, gated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nbformat

    from .test_interactive import execute, open_copy, save, stop

    worker = subprocess.Popen(
        [CLI, "worker", "--env", "staging-gated"],
        env=gated_env(store, "gated-worker", tmp_path, runbooks, gated),
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    marker, release = tmp_path / "starts.log", tmp_path / "released"
    marker.touch()
    release.touch()
    for name, value in gated_env(store, "alice", tmp_path, runbooks, gated).items():
        monkeypatch.setenv(name, value)
    try:
        assert worker.stderr is not None and "polling" in worker.stderr.readline()
        copy = open_copy(
            "test/hold", "--env", "staging-gated", "-p", "dry_run=False", "-p", "confirm=staging-gated",
            "-p", f"marker={marker}", "-p", f"release_file={release}",
        )  # fmt: skip
        run_id = copy.name.removesuffix(".ipynb").rsplit("-", 1)[1]
        start = 1 + next(
            i for i, c in enumerate(nbformat.read(copy, as_version=4).cells) if "start(" in c.source
        )
        client_ = execute(copy, cells=slice(0, start))
        try:
            refused = json.dumps(client_.nb.cells[start - 1].outputs)
            assert f"run {run_id} has 0 of 2 approvals" in refused and "ask alice, bob, carol" in refused
            assert leases.holder(store.control(), "staging-gated") is None  # no lease before them
            for who in ("bob", "carol"):
                done = approve(store, tmp_path, runbooks, gated, run_id, who)
                assert done.returncode == 0, done.stderr
            execute(copy, cells=slice(start - 1, start), client=client_)  # the start cell again
            assert not [o for o in client_.nb.cells[start - 1].outputs if o.get("output_type") == "error"]
            held = leases.holder(store.control(), "staging-gated")
            assert held is not None and held["run_id"] == run_id
            execute(copy, cells=slice(start, None), client=client_)
            save(client_, copy)
        finally:
            stop(client_)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(90)
    [entry] = entries_of(store, {run_id})
    assert entry["status"] == "passed" and [a["name"] for a in entry["submitted"]["approvals"]] == [
        "bob",
        "carol",
    ]  # type: ignore[index]
    assert marker.read_text().count("started") == 1
