"""Shared fixtures: one real sandbox per session (real PostgreSQL, real Redis,
the services as real HTTP servers on loopback), healed after every test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import psycopg
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from vextrus_nb.sandbox import manager
from vextrus_nb.sandbox.state import SandboxState

REPO = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "vextrus-nb")


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxState]:
    root = tmp_path_factory.mktemp("sandbox")
    os.environ["VEXTRUS_SANDBOX_DIR"] = str(root)
    os.environ["VEXTRUS_HOME"] = str(REPO)
    state = manager.up(root)
    yield state
    manager.down(root)


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


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )


def ledger_entries(outputs: Path) -> list[dict[str, Any]]:
    path = outputs / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def notebook_outputs_text(path: Path) -> str:
    """Everything the executed cells displayed, as one string."""
    nb = nbformat.read(path, as_version=4)
    return json.dumps([c.get("outputs", []) for c in nb.cells])


def notebook_plain_text(path: Path) -> str:
    """Only the text/plain and stream outputs: what a reader without a browser sees."""
    nb = nbformat.read(path, as_version=4)
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", "") + out.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def write_runbook(directory: Path, name: str, parameters: str, *body: str, destructive: bool = False) -> Path:
    """A small runbook notebook of the standard shape, for testing the runner."""
    cells = [
        new_markdown_cell(f"# test runbook {name}"),
        new_code_cell(parameters, metadata={"tags": ["parameters"]}),
        *[new_code_cell(code) for code in body],
    ]
    nb = new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "vextrus": {"runbook": name, "destructive": destructive},
        },
    )
    path = directory / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def admin_connection(state: SandboxState, database: str = "postgres") -> psycopg.Connection:
    """The sandbox's PostgreSQL superuser, for setting up and observing faults."""
    return psycopg.connect(
        host="127.0.0.1",
        port=state.ports["postgres"],
        dbname=database,
        user=manager.ADMIN_USER,
        password=state.secret("postgres_password"),
        autocommit=True,
    )


@pytest.fixture(scope="session")
def docker_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Docker engine (started here when none runs) and the stack's base image."""
    from vextrus_nb.deploy.local_stack import ensure_base_image

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
