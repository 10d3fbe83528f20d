"""pgBackRest's second repository on an S3 server (repo2): a real cluster archiving its WAL to
the local repository and to a real S3 server (rclone serve s3, over TLS: pgBackRest speaks S3
only over HTTPS), a full backup into the S3 repository alone, verify, and a restore from it
into scratch that has the rows committed before and after the backup. Broken both ways: a
corrupted object in the bucket is named by verify before anything is restored, and wrong keys
fail without the key in the message."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vextrus_nb.backup import pgbackrest
from vextrus_nb.errors import BackupError
from vextrus_nb.ports import free_ports
from vextrus_nb.postgres_binaries import find_bindir
from vextrus_nb.sandbox import real_servers
from vextrus_nb.sandbox.postgres_cluster import PostgresCluster

pytestmark = pytest.mark.servers

BUCKET = "vextrus-pgbackrest"
ADMIN = "vextrus_admin"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with real_servers.running("minio", tmp_path_factory.mktemp("s3"), tls=True) as server:
        real_servers.s3_client(server).create_bucket(Bucket=BUCKET)
        yield server


@dataclasses.dataclass
class Archiving:
    cluster: PostgresCluster
    stanza: pgbackrest.Stanza


def _stanza(
    cluster: PostgresCluster, password: str, s3: Any, secret_key: str, repo: str
) -> pgbackrest.Stanza:
    return pgbackrest.Stanza(
        name="s3test",
        pg_path=cluster.datadir,
        pg_port=cluster.port,
        pg_socket=cluster.datadir.parent,
        pg_user=ADMIN,
        pg_password=password,
        repo_path=cluster.datadir.parent / repo,
        s3=pgbackrest.S3Repository(
            host="localhost",  # pgBackRest checks the certificate by DNS name only
            port=s3.port,
            bucket=BUCKET,
            access_key=s3.credentials["access_key"],
            secret_key=secret_key,
            ca_file=s3.extra["ca_file"],
        ),
    )


@pytest.fixture(scope="module")
def archiving(s3: Any) -> Iterator[Archiving]:
    """A fresh cluster whose WAL goes to both repositories, its stanza created in both."""
    password = secrets.token_urlsafe(16)
    cluster = PostgresCluster.create(find_bindir(), free_ports(1)[0], ADMIN, password)
    stanza = _stanza(cluster, password, s3, s3.credentials["secret_key"], "pgbackrest")
    cluster.settings = {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": stanza.archive_command(),
        "full_page_writes": "on",
    }
    try:
        cluster.start()
        pgbackrest.stanza_create(stanza)
        yield Archiving(cluster, stanza)
    finally:
        cluster.destroy()


def _connect(archiving: Archiving) -> Any:
    import psycopg

    return psycopg.connect(
        host="127.0.0.1",
        port=archiving.cluster.port,
        user=ADMIN,
        password=archiving.stanza.pg_password,
        dbname="postgres",
        autocommit=True,
    )


def _objects(s3: Any, prefix: str) -> list[str]:
    listed = real_servers.s3_client(s3).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [o["Key"] for o in listed.get("Contents", [])]


def test_a_backup_in_the_s3_repository_verifies_and_restores_like_the_local_one(
    archiving: Archiving, s3: Any
) -> None:
    stanza = archiving.stanza
    assert "repo2-type=s3" in stanza.config_path.read_text()
    assert oct(stanza.config_path.stat().st_mode & 0o777) == "0o640"
    assert s3.credentials["secret_key"] not in repr(stanza)
    with _connect(archiving) as conn:
        conn.execute("CREATE TABLE ledger (note text)")
        conn.execute("INSERT INTO ledger VALUES ('before the backup')")
    taken = pgbackrest.backup(stanza, "full", repo=pgbackrest.S3_REPO)
    # In the bucket, and only there: the local repository has no backup of that label.
    assert _objects(s3, f"pgbackrest/backup/s3test/{taken.label}/")
    assert taken.label not in {b.label for b in pgbackrest.backups(stanza, repo=1)}
    with _connect(archiving) as conn:
        conn.execute("INSERT INTO ledger VALUES ('after the backup')")
        pgbackrest.wait_archived(conn, pgbackrest.switch_wal(conn))
    assert pgbackrest.verify(stanza, repo=pgbackrest.S3_REPO) == []

    into = pgbackrest.scratch_home(stanza, taken.label) / "data"
    restored = pgbackrest.restore(
        stanza, into, find_bindir(), backup_label=taken.label, repo=pgbackrest.S3_REPO
    )
    try:
        restored.wait_promoted()
        with restored.connect() as conn:
            rows = [r[0] for r in conn.execute("SELECT note FROM ledger ORDER BY note").fetchall()]
        assert rows == ["after the backup", "before the backup"]
    finally:
        restored.destroy()


def test_a_corrupted_object_in_the_s3_repository_is_named_by_verify(archiving: Archiving, s3: Any) -> None:
    stanza = archiving.stanza
    taken = pgbackrest.backup(stanza, "full", repo=pgbackrest.S3_REPO)
    files = [k for k in _objects(s3, f"pgbackrest/backup/s3test/{taken.label}/pg_data/") if "/base/" in k]
    victim = files[len(files) // 2]
    # Bit rot in the store: the object's bytes flipped where the S3 server keeps them.
    stored = Path(s3.extra["objects"]) / BUCKET / victim
    original = stored.read_bytes()
    stored.write_bytes(bytes(b ^ 0xFF for b in original))
    try:
        problems = pgbackrest.verify(stanza, repo=pgbackrest.S3_REPO)
        relative = victim.removeprefix("pgbackrest/backup/s3test/")
        assert [p.what for p in problems] == [relative], problems
    finally:
        stored.write_bytes(original)
    assert pgbackrest.verify(stanza, repo=pgbackrest.S3_REPO) == []


def test_wrong_keys_fail_without_the_key_in_the_message(archiving: Archiving, s3: Any) -> None:
    wrong = "not-the-key-" + secrets.token_hex(8)
    stanza = _stanza(archiving.cluster, archiving.stanza.pg_password, s3, wrong, "pgbackrest-wrong-key")
    pgbackrest.write_config(stanza)
    with pytest.raises(BackupError, match=r"cannot read repository 2: .*403") as caught:
        pgbackrest.backups(stanza, repo=pgbackrest.S3_REPO)  # not an empty list: unreadable
    assert wrong not in str(caught.value) and s3.credentials["access_key"] not in str(caught.value)
    with pytest.raises(BackupError, match="has no repository 3"):
        pgbackrest.backup(archiving.stanza, "full", repo=3)


def test_the_ca_file_is_copied_where_the_clusters_account_can_read_it(archiving: Archiving) -> None:
    copy: Path = archiving.stanza.s3_ca_path
    assert copy.is_file() and f"repo2-storage-ca-file={copy}" in archiving.stanza.config_path.read_text()
