"""Shared fixtures: one real sandbox per pytest-xdist worker (real PostgreSQL, real Redis,
the services as real HTTP servers on loopback), healed after every test; the groups that keep a
module's tests on one worker. Helpers that are not fixtures are in tests/helpers.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vextrus_nb.sandbox import manager
from vextrus_nb.sandbox.ha_topology import PgPair, RedisSet, pg_pair
from vextrus_nb.sandbox.ha_topology import redis_set as ha_redis_set
from vextrus_nb.sandbox_state import SandboxState

from .helpers import REPO


@pytest.fixture(scope="session", autouse=True)
def own_directories(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This worker's sandbox and outputs directories, set before any test runs: no test reads or
    writes the checkout's `.sandbox/` (the demo's, which may be up) or `outputs/`, and two
    pytest-xdist workers never share one."""
    root = tmp_path_factory.getbasetemp()
    wanted = {
        "VEXTRUS_SANDBOX_DIR": str(root / "sandbox"),
        "VEXTRUS_OUTPUTS_DIR": str(root / "outputs"),
        "VEXTRUS_HOME": str(REPO),
    }
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    yield root
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def own_outputs(own_directories: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test writes its runs under its own outputs directory, unless a module fixture chose
    one for the whole module (which it then keeps)."""
    if os.environ.get("VEXTRUS_OUTPUTS_DIR") == str(own_directories / "outputs"):
        monkeypatch.setenv("VEXTRUS_OUTPUTS_DIR", str(tmp_path / "outputs"))


@pytest.fixture(scope="session")
def sandbox(own_directories: Path) -> Iterator[SandboxState]:
    root = Path(os.environ["VEXTRUS_SANDBOX_DIR"])
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


# What a test needs, read off its fixtures, becomes a marker (`make test-fast` leaves out the
# tests that need more than PostgreSQL and Redis) and a pytest-xdist group (`--dist loadgroup`).
FIXTURE_MARKERS = {"sandbox": "sandbox", "docker_client": "docker"}


# tryfirst: pytest-xdist reads the groups in its own collection hook, which must come after this.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in fixtures:
                item.add_marker(marker)
        item.add_marker(pytest.mark.xdist_group(worker_group(item, fixtures)))


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Refuse to run two workers that ignore the groups (a pytest-xdist and pytest pair that
    drops them: pytest-xdist #1386): modules would start their servers on both workers at once."""
    grouped = [item.nodeid for item in session.items if "@" in item.nodeid.rpartition("]")[2]]
    if getattr(session.config.option, "loadgroup", False) and session.items and not grouped:
        raise pytest.UsageError("pytest-xdist applied no xdist_group: pin pytest below 9.2 (pyproject.toml)")


def worker_group(item: pytest.Item, fixtures: set[str]) -> str:
    """The Docker engine's tests together (one engine, one compose project name); every other
    module whole on one worker, so its module-scoped servers start once. Each worker starts its
    own session sandbox for the modules it takes: two sandboxes split the sandbox's tests, which
    are two thirds of the suite's time, where one would leave a worker idle."""
    if "docker_client" in fixtures:
        return "docker"
    return item.nodeid.split("::")[0]
