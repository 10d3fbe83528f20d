"""Shared fixtures: one real sandbox per session (real PostgreSQL, real Redis,
the services as real HTTP servers on loopback), healed after every test.
Helpers that are not fixtures are in tests/helpers.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vextrus_nb.local_platform import SandboxState
from vextrus_nb.sandbox import manager
from vextrus_nb.sandbox.ha_topology import PgPair, RedisSet, pg_pair
from vextrus_nb.sandbox.ha_topology import redis_set as ha_redis_set

from .helpers import REPO


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxState]:
    root = tmp_path_factory.mktemp("sandbox")
    os.environ["VEXTRUS_SANDBOX_DIR"] = str(root)
    os.environ["VEXTRUS_HOME"] = str(REPO)
    state = manager.up(root)
    yield state
    manager.down(root)


@pytest.fixture
def sandbox_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sandbox directory holding only the deployment files, nothing running: for tests of
    files (the static checks, the schedule's refusals), which need no platform."""
    root = tmp_path / "sandbox"
    monkeypatch.setenv("VEXTRUS_SANDBOX_DIR", str(root))
    monkeypatch.setenv("VEXTRUS_HOME", str(REPO))
    manager.use_deployment("planted", root)
    return root


@pytest.fixture
def healthy(sandbox: SandboxState) -> Iterator[SandboxState]:
    """The sandbox, with every fault this test injects cleared afterwards."""
    yield sandbox
    manager.heal(root=sandbox.root)


@pytest.fixture
def outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh outputs directory (and ledger) per test."""
    path = tmp_path / "outputs"
    monkeypatch.setenv("VEXTRUS_OUTPUTS_DIR", str(path))
    return path


@pytest.fixture(scope="session")
def docker_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Docker engine (started here when none runs) and the stack's base image."""
    from vextrus_nb.sandbox.compose_stack import ensure_base_image

    from .docker_engine import docker_engine

    with docker_engine(tmp_path_factory.mktemp("docker")) as client:
        ensure_base_image(client)
        yield client


@pytest.fixture(scope="module")
def own_parameters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A copy of parameters/ this module may add environments to (VEXTRUS_PARAMETERS_DIR)."""
    import shutil

    folder = tmp_path_factory.mktemp("parameters") / "parameters"
    shutil.copytree(REPO / "parameters", folder)
    saved = os.environ.get("VEXTRUS_PARAMETERS_DIR")
    os.environ["VEXTRUS_PARAMETERS_DIR"] = str(folder)
    yield folder
    if saved is None:
        os.environ.pop("VEXTRUS_PARAMETERS_DIR", None)
    else:
        os.environ["VEXTRUS_PARAMETERS_DIR"] = saved


# The high-availability topology (vextrus_nb/sandbox/ha_topology.py): module-scoped, so each HA
# test module owns a fresh one (its failovers and stopped Sentinels stay within it).
@pytest.fixture(scope="module")
def pair() -> Iterator[PgPair]:
    """A PostgreSQL primary, its streaming replica and PgBouncer in front."""
    with pg_pair() as started:
        yield started


@pytest.fixture(scope="module")
def redis_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSet]:
    """A Redis primary, its replica and three Sentinels."""
    with ha_redis_set(tmp_path_factory.mktemp("ha-redis")) as started:
        yield started
