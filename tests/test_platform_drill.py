"""dr/platform-drill on the sandbox's real servers: one set of two databases, Redis, the
bucket's documents and Kafka's metadata, drilled live once into a second sandbox (the one
module-scoped second platform: the drill's own, started and torn down by the runbook), and the
ways it refuses: a damaged file of each datastore named before anything starts, a dry run that
starts and writes nothing."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

import vextrus_nb
from vextrus_nb.backup import platform_drill as engine
from vextrus_nb.backup import sets
from vextrus_nb.backup.take import back_up
from vextrus_nb.errors import BackupError
from vextrus_nb.evidence import ledger, report
from vextrus_nb.local_platform import SandboxState
from vextrus_nb.runbooks.dr import platform_drill
from vextrus_nb.sandbox import real_platform, real_servers

from .helpers import ledger_entries, notebook_plain_text, run_cli

BUCKET = "vextrus-files"
DOCUMENTS = {"contracts/pd-0001.pdf": b"%PDF-1.7 contract" * 64, "hr/pd-badge.png": bytes(range(256)) * 8}
TOPIC, GROUP = "vextrus.platform-drill.events", "platform-drill-consumers"
SERVICES = "auth,finance"


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
def a_set(sandbox: SandboxState, drill_outputs: Path) -> Path:
    """One set of two databases (the bench drills all of them, at scale 100) and every other
    datastore, taken in-process (no kernel to start)."""
    _seed(sandbox)
    rb = vextrus_nb.start("dr/backup", env="sandbox", writes="a backup set", services=SERVICES, kind="incr")
    taken = back_up(rb, SERVICES, "incr")
    assert engine.datastores_in(taken.manifest) == ["postgres", "redis", "objects", "kafka"]
    return taken.path


@pytest.fixture(scope="module")
def live_drill(a_set: Path, drill_outputs: Path) -> dict[str, Any]:
    """The one live drill of this module, through the CLI: its ledger entry and output notebook."""
    done = run_cli(
        "run", "dr/platform-drill", "--env", "sandbox", "-p", "dry_run=False", "-p", f"set_id={a_set.name}",
        timeout=400,
    )  # fmt: skip
    [entry] = [e for e in ledger_entries(drill_outputs) if e["runbook"] == "dr/platform-drill"]
    return {
        "returncode": done.returncode,
        "stderr": done.stderr,
        "entry": entry,
        "notebook": done.stdout.strip(),
    }


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


def test_the_drill_restores_every_datastore_into_a_second_sandbox_and_passes(
    sandbox: SandboxState, live_drill: dict[str, Any], drill_outputs: Path
) -> None:
    assert live_drill["returncode"] == 0, live_drill["stderr"]
    summary = live_drill["entry"]["summary"]
    assert summary["verified"] is True and summary["failure"] is None
    assert summary["datastores"] == ["postgres", "redis", "objects", "kafka"] and not summary["unproven"]
    figures = summary["rto_by_datastore"]
    assert set(figures) == {"postgres", "redis", "objects", "kafka", "all"}
    # RTO ends with the smoke sweep passing, after every datastore's proof, after the platform's start.
    assert (
        summary["provision_s"] < figures["postgres"] <= figures["kafka"] <= figures["all"] == summary["rto_s"]
    )
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
    text = notebook_plain_text(Path(live_drill["notebook"]))
    assert "restored (second platform)" in text
    for secret in ("postgres_password", "redis_password", "minio_secret_key"):
        assert sandbox.secret(secret) not in text
    assert "password=" not in text and "PGPASSWORD" not in text


def test_the_report_draws_the_platform_drill_rto_per_datastore(
    live_drill: dict[str, Any], drill_outputs: Path
) -> None:
    entries = ledger.read_entries(drill_outputs)
    dry = {
        **live_drill["entry"],
        "run_id": "dry",
        "summary": {**live_drill["entry"]["summary"], "dry_run": True},
    }
    unsealed = {**live_drill["entry"], "run_id": "unsealed", "output": None, "output_sha256": None}
    series = report.platform_drill_series([*entries, dry, unsealed], drill_outputs)
    rows = series["sandbox"]
    assert {r["run_id"] for r in rows} == {
        live_drill["entry"]["run_id"]
    }  # a dry or unsealed run is not evidence
    assert {r["datastore"] for r in rows} == {"postgres", "redis", "objects", "kafka", "all"}
    [(name, chart)] = report.platform_drill_charts(entries, drill_outputs)
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
