"""The secret stores behind one interface: Docker secrets files, the compose .env file,
a Kubernetes Secret. The Kubernetes one talks to tests/kube_api.py, an in-test HTTP
server speaking the Secret endpoints of the API (no API server can run here)."""

from __future__ import annotations

import base64
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from vextrus_nb.errors import StoreUnwritable
from vextrus_nb.secrets.stores import (
    VERSION_ANNOTATION,
    EnvFileStore,
    FilesStore,
    KubeSecretStore,
    SecretStore,
)
from vextrus_nb.secrets.versions import Versions, fingerprint

from .kube_api import FakeCluster, KubeApiServer

OLD, NEW = "OldValue0123456789", "NewValue9876543210"


def rotate_once(store: SecretStore, key: str) -> None:
    """What the protocol does to a store: add pending, then promote it."""
    store.write(key, store.read(key).with_pending(NEW))
    assert store.read(key) == Versions(current=OLD, pending=NEW)
    store.write(key, store.read(key).promoted())
    assert store.read(key) == Versions(current=NEW, previous=OLD)


def test_files_store_keeps_one_private_file_per_version(tmp_path: Path) -> None:
    store = FilesStore(tmp_path)
    (tmp_path / "pg_auth").write_text(OLD + "\n")
    rotate_once(store, "pg_auth")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pg_auth", "pg_auth.previous"]
    assert stat.S_IMODE((tmp_path / "pg_auth").stat().st_mode) == 0o600
    store.write("pg_auth", store.read("pg_auth").without_previous())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pg_auth"]


def test_files_store_that_is_not_a_directory_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreUnwritable, match="is not a directory"):
        FilesStore(tmp_path / "file").check_writable()
    FilesStore(tmp_path).check_writable()


def test_env_file_store_rewrites_its_lines_atomically_with_a_backup(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    original = (
        "# Vextrus compose environment\n"
        "COMPOSE_PROJECT_NAME=vextrus\n"
        f'export PG_AUTH="{OLD}"\n'
        "REDIS_AUTH=untouched-value\n"
    )
    env_file.write_text(original)
    store = EnvFileStore(env_file)
    assert store.read("pg_auth") == Versions(current=OLD)

    rotate_once(store, "pg_auth")

    lines = env_file.read_text().splitlines()
    assert lines[:2] == ["# Vextrus compose environment", "COMPOSE_PROJECT_NAME=vextrus"]
    assert f"PG_AUTH={NEW}" in lines and f"PG_AUTH_PREVIOUS={OLD}" in lines
    assert "REDIS_AUTH=untouched-value" in lines and not any("PG_AUTH_PENDING" in x for x in lines)
    assert store.read("redis_auth").current == "untouched-value"
    # The backup is the file as it was before the last write, as private as the file itself.
    backup = tmp_path / ".env.bak"
    assert f"PG_AUTH_PENDING={NEW}" in backup.read_text()
    for path in (env_file, backup):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env", ".env.bak"]  # no temporary left


def test_env_file_store_refuses_a_directory_in_its_place(tmp_path: Path) -> None:
    (tmp_path / ".env").mkdir()
    with pytest.raises(StoreUnwritable, match="not a regular file"):
        EnvFileStore(tmp_path / ".env").check_writable()


@pytest.fixture
def kube() -> Iterator[tuple[FakeCluster, KubeSecretStore]]:
    cluster = FakeCluster()
    with KubeApiServer(cluster) as server:
        configuration = client.Configuration()
        configuration.host = server.url
        api = client.CoreV1Api(client.ApiClient(configuration))
        yield cluster, KubeSecretStore(api, "vextrus", "vextrus-credentials")


def test_kube_secret_store_versions_the_secret_and_annotates_it(
    kube: tuple[FakeCluster, KubeSecretStore],
) -> None:
    cluster, store = kube
    assert store.read("pg_auth") == Versions()
    store.write("pg_auth", Versions(current=OLD))
    rotate_once(store, "pg_auth")

    secret = cluster.secrets["vextrus-credentials"]
    assert base64.b64decode(secret["data"]["pg_auth"]).decode() == NEW
    assert base64.b64decode(secret["data"]["pg_auth.previous"]).decode() == OLD
    assert "pg_auth.pending" not in secret["data"]
    assert secret["metadata"]["annotations"][VERSION_ANNOTATION + "pg_auth"] == fingerprint(NEW)
    # The first write created the Secret; each later one replaced it at the version it read.
    name = "secrets/vextrus-credentials"
    assert cluster.writes == [f"create {name}", f"replace {name}", f"replace {name}"]


def test_kube_secret_store_check_is_a_server_side_dry_run(kube: tuple[FakeCluster, KubeSecretStore]) -> None:
    cluster, store = kube
    store.write("pg_auth", Versions(current=OLD))
    before = list(cluster.writes)
    store.check_writable()
    assert cluster.writes == before, "the writability check changed the Secret"

    cluster.forbidden_secrets.add("vextrus-credentials")
    with pytest.raises(StoreUnwritable, match="403 Forbidden"):
        store.check_writable()
