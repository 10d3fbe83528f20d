"""What the tests share that is not a fixture: the CLI, the ledger and notebooks as a reader sees
them, a small runbook of the standard shape, the sandbox's superuser login."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import psycopg
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from vextrus_nb.sandbox import manager
from vextrus_nb.sandbox_state import SandboxState

REPO = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "vextrus-nb")


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


def wait_until(condition: Callable[[], Any], what: str, timeout_s: float = 30) -> Any:
    """Poll condition until it is truthy (returned) or the deadline fails the test naming `what`."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def ha_environment_document(
    name: str,
    pair: Any,
    redis_set: Any,
    secrets_dir: Path,
    postgres_ha: dict[str, Any] | None = None,
    ports: dict[str, int] | None = None,
    postgres_login: tuple[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An environment naming a standalone HA topology (vextrus_nb/sandbox/ha_topology.py: the
    `pair` and `redis_set` fixtures): its logins as secret files written into `secrets_dir` (the
    PostgreSQL one `postgres_login`, user and password, when given), its parts' ports (plus
    `ports`), and `ha:` (plus `postgres_ha` settings); `fields` add or replace top-level keys."""
    from vextrus_nb.sandbox.ha_topology import SUPERUSER

    pg_user, pg_password = postgres_login or (SUPERUSER, pair.password)
    logins = {"postgres_password": pg_password, "redis_password": redis_set.password}
    for secret, value in logins.items():
        (secrets_dir / secret).write_text(value)
    return {
        "name": name,
        "driver": "local",
        "secrets": {secret: {"file": str(secrets_dir / secret)} for secret in logins},
        "postgres": {"user": pg_user, "password_secret": "postgres_password"},
        "redis": {"user": "default", "password_secret": "redis_password"},
        "ports": {
            "postgres": pair.primary.port,
            "postgres-replica": pair.replica.port,
            "pgbouncer": pair.pooler.port,
            "redis": redis_set.primary_port,
            "redis-replica": redis_set.replica.port,
            **{f"sentinel-{i + 1}": s.port for i, s in enumerate(redis_set.sentinels)},
            **(ports or {}),
        },
        "ha": {"postgres": {"pooler_config": str(pair.config), **(postgres_ha or {})}, "redis": {}},
        **fields,
    }


# A password libpq must quote and escape inside a connection string: a space, both quotes, a
# backslash. Built by hand (`password=...`), the string is refused or reads another password.
AWKWARD_PASSWORD = 'a pass\'word \\with "quotes"'
AWKWARD_ADMIN = "vextrus awkward admin"


def awkward_admin(pair: Any) -> tuple[str, str]:
    """A superuser on the HA pair whose name and password both need quoting (created once; the
    replica gets it by streaming)."""
    from psycopg import sql

    with psycopg.connect(pair.primary.dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (AWKWARD_ADMIN,)).fetchone()
        verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
        conn.execute(
            sql.SQL("{} ROLE {} SUPERUSER LOGIN PASSWORD {}").format(
                verb, sql.Identifier(AWKWARD_ADMIN), sql.Literal(AWKWARD_PASSWORD)
            )
        )
    return AWKWARD_ADMIN, AWKWARD_PASSWORD
