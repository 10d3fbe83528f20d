"""dr/backup and dr/restore -p datastores=... for Redis, the object store and Kafka's metadata,
on the sandbox's real servers (redis-server, the rclone S3 server, Tansu): a set records each
datastore, each restores into scratch and proves, a live restore swaps Redis and the bucket in
keeping the old data, and a damaged set (a changed object, a missing RDB, a corrupted export)
or a wrong proof is caught, naming what."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from vextrus_nb.backup import kafka_metadata, objects, redis_restore
from vextrus_nb.backup.manifest import Manifest
from vextrus_nb.errors import BackupError
from vextrus_nb.sandbox import real_platform, real_servers
from vextrus_nb.sandbox_state import SandboxState

from .helpers import ledger_entries, notebook_plain_text, run_cli

BUCKET = "vextrus-files"
DOCUMENTS = {
    "invoices/2026/inv-0001.pdf": b"%PDF-1.7 invoice 1" * 100,
    "invoices/2026/inv-0002.pdf": b"%PDF-1.7 invoice 2" * 50,
    "hr/contracts/c-17.docx": bytes(range(256)) * 40,
}
TOPIC, GROUP = "vextrus.dr-test.events", "dr-test-consumers"
OFFSETS = {0: 5, 1: 9}


def _s3(state: SandboxState) -> Any:
    return real_servers.s3_client(real_platform.server_handle(state, "minio"))


def _redis(state: SandboxState) -> redis.Redis:
    return redis.Redis(port=state.ports["redis"], username="default", password=state.secret("redis_password"))


def _bootstrap(state: SandboxState) -> str:
    return f"127.0.0.1:{state.ports['kafka']}"


def _seed_kafka(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    if TOPIC not in admin.list_topics(timeout=10).topics:
        [created] = admin.create_topics([NewTopic(TOPIC, 2, 1, config={"retention.ms": "3600000"})]).values()
        created.result(timeout=10)
    parts = [TopicPartition(TOPIC, p, o) for p, o in OFFSETS.items()]
    [done] = admin.alter_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP, parts)]).values()
    done.result(timeout=10)


@pytest.fixture(scope="module")
def a_set(sandbox: SandboxState, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One set of a small database (auth's), Redis, the bucket's documents and Kafka's metadata."""
    client = _s3(sandbox)
    for key, body in DOCUMENTS.items():
        client.put_object(Bucket=BUCKET, Key=key, Body=body)
    _redis(sandbox).mset({f"dr-test:session:{i}": f"tenant-{i}" for i in range(5)})
    _seed_kafka(_bootstrap(sandbox))
    outputs = tmp_path_factory.mktemp("datastores-backup")
    done = run_cli(
        "run", "dr/backup", "--env", "sandbox", "-p", "services=auth", "-p", "kind=incr",
        env={"VEXTRUS_OUTPUTS_DIR": str(outputs)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [entry] = ledger_entries(outputs)
    return sandbox.root / "backups" / "sandbox" / entry["summary"]["set_id"]


@pytest.fixture
def damaged_copy(a_set: Path) -> Iterator[Path]:
    copy = a_set.parent / (a_set.name + "-damaged")
    shutil.copytree(a_set, copy)
    yield copy
    shutil.rmtree(copy, ignore_errors=True)


def test_a_set_records_every_datastore(a_set: Path) -> None:
    manifest = Manifest.read(a_set)
    assert manifest.redis is not None and manifest.redis.keys >= 5
    assert (
        "dr-test:session:0" in manifest.redis.sample
        or len(manifest.redis.sample) == redis_restore.SAMPLE_SIZE
    )
    recorded = {o.key: o for o in manifest.objects if o.bucket == BUCKET}
    for key, body in DOCUMENTS.items():
        assert recorded[key].bytes == len(body)
        assert recorded[key].sha256 == hashlib.sha256(body).hexdigest()
        assert (a_set / recorded[key].file).read_bytes() == body
    assert manifest.kafka is not None
    exported = kafka_metadata.KafkaExport.read(a_set / manifest.kafka.file)
    [topic] = [t for t in exported.topics if t.name == TOPIC]
    assert (topic.partitions, topic.replication_factor, topic.configs["retention.ms"]) == (2, 1, "3600000")
    [group] = [g for g in exported.groups if g.group == GROUP]
    assert group.offsets == {TOPIC: OFFSETS}


def test_every_datastore_restores_into_scratch_and_proves(
    healthy: SandboxState, a_set: Path, outputs: Path
) -> None:
    done = run_cli(
        "run", "dr/restore", "--env", "sandbox", "-p", f"set_id={a_set.name}",
        "-p", "datastores=redis,objects,kafka",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [entry] = ledger_entries(outputs)
    assert entry["summary"]["datastores_restored"] == ["redis", "objects", "kafka"]
    assert any("deleted after the proof" in w for w in entry["summary"]["writes"])
    text = notebook_plain_text(Path(done.stdout.strip()))
    assert "scratch redis-server" in text and "scratch Kafka broker" in text
    buckets = {b["Name"] for b in _s3(healthy).list_buckets()["Buckets"]}
    assert not [b for b in buckets if "-restore-" in b]  # the scratch bucket went after its proof


# One damage per datastore, all in one copy and one run: each is named, and nothing is restored.
DAMAGES = {
    "objects/vextrus-files/invoices/2026/inv-0001.pdf": "change",
    "redis/dump.rdb": "delete",
    "kafka/metadata.json": "change",
}


def test_a_damaged_datastore_file_stops_the_restore_naming_it(
    healthy: SandboxState, damaged_copy: Path, outputs: Path
) -> None:
    for relative, how in DAMAGES.items():
        path = damaged_copy / relative
        if how == "delete":
            path.unlink()
        else:
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0x01
            path.write_bytes(bytes(data))
    done = run_cli(
        "run", "dr/restore", "--env", "sandbox", "-p", f"set_id={damaged_copy.name}",
        "-p", "datastores=redis,objects,kafka",
    )  # fmt: skip
    assert done.returncode == 1
    assert "failed verification, nothing was restored" in done.stderr
    assert "redis/dump.rdb: missing" in done.stderr
    assert "objects/vextrus-files/invoices/2026/inv-0001.pdf: corrupted" in done.stderr
    assert "kafka/metadata.json: corrupted" in done.stderr
    buckets = {b["Name"] for b in _s3(healthy).list_buckets()["Buckets"]}
    assert not [b for b in buckets if "-restore-" in b]


def test_a_changed_object_fails_the_bucket_proof_naming_the_object(
    healthy: SandboxState, a_set: Path
) -> None:
    """Past the file manifest, each restored object is read back against its entry: a wrong one is named."""
    manifest = Manifest.read(a_set)
    entries = [o for o in manifest.objects if o.bucket == BUCKET]
    client = _s3(healthy)
    doctored = [
        e.model_copy(update={"sha256": "0" * 64}) if e.key.endswith("inv-0002.pdf") else e for e in entries
    ]
    outcome = objects.restore_bucket(client, a_set, BUCKET, doctored, "test1proof", live=False)
    try:
        assert outcome.mismatches == [
            "invoices/2026/inv-0002.pdf: same size, sha256 differs from the manifest"
        ]
    finally:
        objects.remove_bucket(client, outcome.into)
    good = objects.restore_bucket(client, a_set, BUCKET, entries, "test2proof", live=False)
    objects.remove_bucket(client, good.into)
    assert good.proven and good.objects >= len(DOCUMENTS)


def test_a_wrong_rdb_fails_the_redis_proof_and_a_broken_one_is_named(damaged_copy: Path) -> None:
    manifest = Manifest.read(damaged_copy)
    assert manifest.redis is not None
    rdb = damaged_copy / "redis" / "dump.rdb"
    assert redis_restore.restore_to_scratch(rdb, manifest.redis.keys, manifest.redis.sample).proven
    key = next(iter(manifest.redis.sample))
    wrong = redis_restore.restore_to_scratch(
        rdb, manifest.redis.keys + 1, {**manifest.redis.sample, key: "0" * 64}
    )
    assert wrong.mismatches == [
        f"{manifest.redis.keys} keys, manifest says {manifest.redis.keys + 1}",
        f"key {key!r}: value differs (DUMP sha256)",
    ]
    rdb.write_bytes(rdb.read_bytes()[: rdb.stat().st_size // 2])  # truncated, file manifest aside
    with pytest.raises(BackupError, match="redis-server could not load the RDB"):
        redis_restore.restore_to_scratch(rdb, manifest.redis.keys, manifest.redis.sample)


def test_kafka_metadata_restores_into_an_empty_broker_and_a_dead_one_is_named(
    a_set: Path, tmp_path: Path
) -> None:
    manifest = Manifest.read(a_set)
    assert manifest.kafka is not None
    exported = kafka_metadata.KafkaExport.read(a_set / manifest.kafka.file)
    with real_servers.running("kafka", tmp_path) as broker:
        bootstrap = f"127.0.0.1:{broker.port}"
        outcome = kafka_metadata.restore(exported, bootstrap)
        assert outcome.proven, outcome.mismatches
        assert TOPIC in outcome.created
        again = kafka_metadata.restore(exported, bootstrap)  # idempotent: nothing left to create
        assert again.proven and again.created == []
        exported.groups[0].offsets = {TOPIC: {0: 1}}
        assert kafka_metadata.prove(exported, bootstrap) == [
            f"group {exported.groups[0].group}: committed offsets differ from the export"
        ]
    with pytest.raises(BackupError, match=f"Kafka broker {bootstrap}: cannot export"):
        kafka_metadata.prove(exported, bootstrap, timeout_s=2)


def test_a_live_restore_swaps_redis_and_the_bucket_in_keeping_the_old_data(
    healthy: SandboxState, a_set: Path, outputs: Path
) -> None:
    client, s3 = _redis(healthy), _s3(healthy)
    client.delete("dr-test:session:1")
    s3.delete_object(Bucket=BUCKET, Key="invoices/2026/inv-0001.pdf")
    s3.put_object(Bucket=BUCKET, Key="stray/after-backup.txt", Body=b"uploaded after the backup")
    args = [
        "run",
        "dr/restore",
        "--env",
        "sandbox",
        "-p",
        f"set_id={a_set.name}",
        "-p",
        "datastores=redis,objects",
    ]

    planned = run_cli(*args, "-p", "target=live")  # dry run: the plan, nothing touched
    assert planned.returncode == 0, planned.stderr
    assert "nothing (dry run)" in notebook_plain_text(Path(planned.stdout.strip()))
    assert client.get("dr-test:session:1") is None

    done = run_cli(*args, "-p", "target=live", "-p", "dry_run=False")
    assert done.returncode == 0, done.stderr
    entry = ledger_entries(outputs)[-1]
    assert client.get("dr-test:session:1") == b"tenant-1"
    assert (
        s3.get_object(Bucket=BUCKET, Key="invoices/2026/inv-0001.pdf")["Body"].read()
        == DOCUMENTS["invoices/2026/inv-0001.pdf"]
    )
    assert "stray/after-backup.txt" not in set(objects.list_keys(s3, BUCKET))
    kept_bucket = objects.scratch_bucket(BUCKET, entry["run_id"], "before")
    assert "stray/after-backup.txt" in set(objects.list_keys(s3, kept_bucket))
    kept_rdb = [w for w in entry["summary"]["writes"] if "old data kept as dump.rdb.before-" in w]
    redis_dir = Path(client.config_get("dir")["dir"])  # a private directory (it holds the password)
    assert kept_rdb and (redis_dir / f"dump.rdb.before-{entry['run_id']}").is_file()
    objects.remove_bucket(s3, kept_bucket)
    secrets = [p.read_text().strip() for p in healthy.secrets_dir.iterdir()]
    evidence = Path(done.stdout.strip()).read_text() + json.dumps(entry)
    assert not [s for s in secrets if s and s in evidence]


def test_unknown_datastores_and_point_in_time_with_others_are_refused(
    sandbox: SandboxState, outputs: Path
) -> None:
    done = run_cli("run", "dr/restore", "--env", "sandbox", "-p", "datastores=redis,elastic")
    assert done.returncode == 2 and "unknown datastore(s) elastic" in done.stderr
    when = datetime.now(UTC).isoformat()
    done = run_cli(
        "run", "dr/restore", "--env", "sandbox", "-p", f"target_time={when}", "-p", "datastores=redis"
    )
    assert done.returncode == 2 and "point-in-time restore is PostgreSQL's alone" in done.stderr
