"""secrets/rotate end to end, through the CLI, on the sandbox: a live rotation of the
auth service's database password, its Redis ACL user and the JWT signing key (after a
crash left another rotation open); a dry run; input refused before any change. Every
old and new value is then looked for in every output notebook, ledger line, log,
journal and the CLI's own output."""

from __future__ import annotations

from pathlib import Path

import nbformat
import psycopg
import pytest
import yaml

from vextrus_nb.sandbox_state import SandboxState
from vextrus_nb.secrets.protocol import rotate

from .helpers import ledger_entries, notebook_plain_text, run_cli
from .test_secrets_protocol import Rig, SimulatedCrash


def secrets_dir(state: SandboxState) -> Path:
    return state.root / "secrets"


def snapshot(*folders: Path) -> dict[str, bytes]:
    files = [p for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file()]
    return {str(p): p.read_bytes() for p in files}


def every_secret_value(state: SandboxState) -> set[str]:
    values = {p.read_text().strip() for p in secrets_dir(state).iterdir() if p.is_file()}
    return {v for v in values if len(v) >= 8}


def evidence_files(state: SandboxState, outputs: Path) -> list[Path]:
    """Everything a run may write that is not the secret store itself."""
    sandbox_files = [p for p in state.root.rglob("*") if p.is_file() and secrets_dir(state) not in p.parents]
    postgres_log = Path(state.pg_datadir).parent / "postgres.log"
    return [*outputs.rglob("*"), *sandbox_files, postgres_log]


def login(state: SandboxState, password: str) -> None:
    psycopg.connect(
        host="127.0.0.1",
        port=state.ports["postgres"],
        dbname="vextrus_auth",
        user="svc_auth",
        password=password,
        connect_timeout=5,
    ).close()


def record(output: Path) -> dict:
    return nbformat.read(output, as_version=4).metadata["vextrus"]["record"]


def test_live_rotation_passes_refuses_the_old_password_and_leaves_no_secret_anywhere(
    sandbox: SandboxState, outputs: Path
) -> None:
    seen = every_secret_value(sandbox)
    rig = Rig()
    rig.fault = ("test", SimulatedCrash)
    with pytest.raises(SimulatedCrash):  # auth-redis's rotation is left open, as if the process died
        rotate(rig.ctx, rig.credentials["auth-redis"])
    seen |= every_secret_value(sandbox)
    old_db_password = (secrets_dir(sandbox) / "pg_auth").read_text().strip()

    done = run_cli(
        "run", "secrets/rotate", "--env", "sandbox", "-p", "dry_run=False",
        "-p", "rotate=auth-db,jwt-signing",
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    output = Path(done.stdout.strip().splitlines()[-1])
    summary = record(output)["summary"]
    assert summary["outcomes"] == {
        "auth-redis": "resumed and rotated",
        "auth-db": "rotated",
        "jwt-signing": "rotated",
    }
    assert summary["checks_passed"] == "12/12"
    # The key's verifiers restarted to learn it (set), then its signer (finish): both on record.
    assert set(summary["restarts"]["jwt-signing"]) == {"18 services", "auth"}
    new_db_password = (secrets_dir(sandbox) / "pg_auth").read_text().strip()
    assert new_db_password != old_db_password
    login(sandbox, new_db_password)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        login(sandbox, old_db_password)

    text = notebook_plain_text(output)
    assert "finish the interrupted rotation" in text and "resumed and rotated" in text
    assert "as verify-only to 18 services (restarted and healthy in" in text  # cells whole, not cut
    assert ledger_entries(outputs)[-1]["status"] == "passed"

    seen |= every_secret_value(sandbox)
    assert len(seen) > 40  # the scan below looks for something real
    places = {str(p): p.read_text(errors="replace") for p in evidence_files(sandbox, outputs) if p.is_file()}
    places["stdout"], places["stderr"] = done.stdout, done.stderr
    leaked = sorted(place for place, content in places.items() if any(v in content for v in seen))
    assert not leaked, f"secret values found in: {leaked}"
    assert any(p.endswith(".ipynb") for p in places) and any(p.endswith("ledger.jsonl") for p in places)


def test_a_dry_run_changes_nothing(sandbox: SandboxState, outputs: Path) -> None:
    before = snapshot(secrets_dir(sandbox), sandbox.root / "rotation")
    done = run_cli("run", "secrets/rotate", "--env", "sandbox", "-p", "rotate=finance-db")
    assert done.returncode == 0, done.stderr[-3000:]
    assert snapshot(secrets_dir(sandbox), sandbox.root / "rotation") == before
    output = Path(done.stdout.strip().splitlines()[-1])
    text = notebook_plain_text(output)
    assert "Dry run: nothing was changed" in text and "create, set, test, finish" in text
    # The name is shown, not redacted as if it were a secret value (the parameter is not
    # called `credentials`, which the redaction takes for a secret by its name).
    assert record(output)["summary"]["credentials"] == ["finance-db"]
    assert "finance-db" in text and "svc_finance / svc_finance_alt" in text


@pytest.fixture
def locked_store_env(sandbox: SandboxState, own_parameters: Path, tmp_path: Path) -> str:
    """The sandbox, but its secret store path names a file, not a directory."""
    definition = yaml.safe_load((own_parameters / "environments" / "sandbox.yaml").read_text())
    not_a_directory = tmp_path / "secrets"
    not_a_directory.write_text("")
    definition["name"] = "lockedstore"
    definition["rotation"]["store"]["path"] = str(not_a_directory)
    (own_parameters / "environments" / "lockedstore.yaml").write_text(yaml.safe_dump(definition))
    return "lockedstore"


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--env", "sandbox", "-p", "rotate=auth-db,nope-db"], "unknown credential(s): nope-db"),
        (["--env", "sandbox", "-p", "rotate= , "], "name the credentials to rotate"),
        (["--env", "sandbox", "-p", "deadline_s=-5"], "deadline_s must be a positive number"),
        (["--env", "production", "-p", "dry_run=False"], "pass -p confirm=production"),
        (["--env", "lockedstore", "-p", "dry_run=False"], "the secret store cannot be written"),
    ],
    ids=["unknown-credential", "no-credential", "bad-deadline", "production-unconfirmed", "unwritable"],
)
def test_bad_input_is_refused_before_any_change(
    sandbox: SandboxState, outputs: Path, locked_store_env: str, arguments: list[str], expected: str
) -> None:
    before = snapshot(secrets_dir(sandbox), sandbox.root / "rotation")
    done = run_cli("run", "secrets/rotate", *arguments)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert expected in done.stderr
    assert snapshot(secrets_dir(sandbox), sandbox.root / "rotation") == before
