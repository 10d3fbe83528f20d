"""The second store: every finished set copied to an S3-compatible bucket, and restores
and drills fed from it. The bucket is moto's S3 server, a real HTTP server on loopback
speaking the S3 API (no MinIO binary can run here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from vextrus_nb.backup.access import s3_store
from vextrus_nb.config import BackupSettings, S3Target, SecretRef, load_environment, load_inventory
from vextrus_nb.run.session import Runbook
from vextrus_nb.runbooks.dr import backup, drill
from vextrus_nb.sandbox_state import SandboxState

from .test_backup import scratch_databases

BUCKET = "vextrus-backups"
ACCESS, SECRET = "AKIATESTVEXTRUS00001", "test-secret-key-that-must-not-leak-0001"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_port}"  # type: ignore[attr-defined]
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS,
        aws_secret_access_key=SECRET,
    ).create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()


def runbook(
    name: str, endpoint: str, monkeypatch: pytest.MonkeyPatch, dry_run: bool = True, **parameters: str
) -> Runbook:
    """The sandbox environment with a second store in the bucket; keys by reference, as always."""
    monkeypatch.setenv("TEST_S3_ACCESS", ACCESS)
    monkeypatch.setenv("TEST_S3_SECRET", SECRET)
    inventory = load_inventory()
    env = load_environment("sandbox", inventory)
    assert env.backup is not None
    target = S3Target(
        bucket=BUCKET,
        prefix="sandbox",
        endpoint_url=endpoint,
        access_key_secret="s3_access",
        secret_key_secret="s3_secret",
    )
    env = env.model_copy(update={
        "backup": BackupSettings(**{**env.backup.model_dump(), "s3": target}),
        "secrets": {**env.secrets, "s3_access": SecretRef(env="TEST_S3_ACCESS"),
                    "s3_secret": SecretRef(env="TEST_S3_SECRET")},
    })  # fmt: skip
    return Runbook(name=name, env=env, inventory=inventory, parameters={"dry_run": dry_run, **parameters})


def bucket(endpoint: str) -> object:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=ACCESS,
                        aws_secret_access_key=SECRET)  # fmt: skip


def test_a_set_is_copied_to_s3_and_a_drill_from_s3_proves_it(
    healthy: SandboxState, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, outputs: Path
) -> None:
    taken = backup.back_up(
        runbook("dr/backup", s3_endpoint, monkeypatch, services="auth,finance", kind="incr")
    )
    set_id = taken.manifest.set_id
    assert taken.copied_to == f"s3://{BUCKET}/sandbox/{set_id}"
    keys = [
        o["Key"]
        for o in bucket(s3_endpoint).list_objects_v2(Bucket=BUCKET, Prefix=f"sandbox/{set_id}/")["Contents"]
    ]  # type: ignore[attr-defined]
    assert f"sandbox/{set_id}/manifest.json" in keys and len(keys) == len(taken.manifest.files) + 1

    # The local copy is gone (a lost host): the drill restores what the bucket holds.
    import shutil

    shutil.rmtree(taken.path)
    rb = runbook("dr/drill", s3_endpoint, monkeypatch, services="auth,finance", from_store="s3")
    drilled = drill.drill(rb)
    assert drilled.failure == "" and drilled.set_id == set_id
    assert [o.service for o in drilled.restore.outcomes if o.proven] == ["auth", "finance"]
    assert scratch_databases(healthy) == []
    assert not list((healthy.root / "backups").glob(".staging-*"))  # the working copy is discarded
    assert SECRET not in str(drilled.summary()) and SECRET not in str(taken.summary())


def test_a_damaged_object_in_s3_fails_the_drill_before_any_restore(
    healthy: SandboxState, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, outputs: Path
) -> None:
    taken = backup.back_up(runbook("dr/backup", s3_endpoint, monkeypatch, services="hr", kind="incr"))
    key = f"sandbox/{taken.manifest.set_id}/postgres/hr/toc.dat"
    client = bucket(s3_endpoint)
    body = bytearray(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())  # type: ignore[attr-defined]
    body[10] ^= 0xFF
    client.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))  # type: ignore[attr-defined]
    drilled = drill.drill(runbook("dr/drill", s3_endpoint, monkeypatch, services="hr", from_store="s3"))
    assert "postgres/hr/toc.dat: corrupted" in drilled.failure and drilled.restore.outcomes == []
    assert scratch_databases(healthy) == []


def test_retention_prunes_the_s3_copies_by_the_same_policy(
    healthy: SandboxState, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, outputs: Path
) -> None:
    client = bucket(s3_endpoint)
    old = [f"20250101T00000{i}Z-old{i}" for i in range(8)]
    for set_id in old:
        for name in ("manifest.json", "postgres/auth/toc.dat"):
            client.put_object(Bucket=BUCKET, Key=f"sandbox/{set_id}/{name}", Body=b"{}")  # type: ignore[attr-defined]
    dry = runbook("dr/backup", s3_endpoint, monkeypatch)
    backup.retention(dry)
    assert set(dry.summary["s3_would_prune"]) <= set(old) and dry.summary["s3_would_prune"]
    live = runbook("dr/backup", s3_endpoint, monkeypatch, dry_run=False)
    backup.retention(live)
    pruned = live.summary["s3_pruned"]
    assert pruned == dry.summary["s3_would_prune"]
    remaining = s3_store(live).set_ids()  # type: ignore[union-attr]
    assert not set(pruned) & set(remaining) and len(remaining) >= 5
