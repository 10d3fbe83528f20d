"""The ha/failover runbook, through `vextrus-nb run`, on a real primary, replica, PgBouncer and
Sentinels (vextrus_nb/sandbox/ha_topology.py) named by an environment's `ha:` section: refused
before a kernel for a bad datastore or an environment without HA; a failover refused by the
preflight changes nothing; an unplanned failover after kill -9 promotes the replica and repoints
the same pooler, with the window on record (the rejoin is by hand for a driver without
FailoverControl, and says so); Redis fails over through its Sentinels, and not without a quorum."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from vextrus_nb.ha import pgbouncer, postgres
from vextrus_nb.sandbox.ha_topology import PgPair, RedisSet
from vextrus_nb.sandbox.real_servers import LOOPBACK

from .helpers import AWKWARD_PASSWORD, awkward_admin, ha_environment_document, ledger_entries, run_cli

ENV = "ha-runbook-test"


@pytest.fixture(scope="module")
def environment(
    own_parameters: Path, tmp_path_factory: pytest.TempPathFactory, pair: PgPair, redis_set: RedisSet
) -> str:
    document = ha_environment_document(ENV, pair, redis_set, tmp_path_factory.mktemp("secrets"))
    (own_parameters / "environments" / f"{ENV}.yaml").write_text(yaml.safe_dump(document))
    (own_parameters / "environments" / "no-ha-test.yaml").write_text(
        yaml.safe_dump({k: v for k, v in document.items() if k != "ha"} | {"name": "no-ha-test"})
    )
    return ENV


def _run(outputs: Path, env: str, *parameters: str) -> tuple[int, dict[str, Any], str]:
    done = run_cli(
        "run",
        "ha/failover",
        "--env",
        env,
        *[a for p in parameters for a in ("-p", p)],
        env={"VEXTRUS_OUTPUTS_DIR": str(outputs)},
    )
    entries = ledger_entries(outputs)
    return done.returncode, (entries[-1] if entries else {}), done.stdout + done.stderr


def test_bad_input_is_refused_before_a_kernel(environment: str, tmp_path: Path) -> None:
    code, entry, said = _run(tmp_path, environment, "datastore=mysql")
    assert code == 2 and not entry and "datastore must be one of postgres, redis" in said
    code, entry, said = _run(tmp_path, "no-ha-test")
    assert code == 2 and not entry and "declares no ha.postgres" in said


def test_a_refused_failover_changes_nothing(environment: str, pair: PgPair, tmp_path: Path) -> None:
    code, entry, said = _run(tmp_path, environment, "dry_run=false", "mode=unplanned")
    assert code == 1, said
    assert any("primary still answers" in f for f in entry["failures"]), entry["failures"]
    assert pgbouncer.backend(pair.config) == (LOOPBACK, pair.primary.port)
    assert postgres.replica_view(pair.replica.dsn).in_recovery


def test_an_admin_password_libpq_must_quote_reaches_both_nodes(
    own_parameters: Path, pair: PgPair, redis_set: RedisSet, tmp_path: Path
) -> None:
    name = "ha-runbook-awkward"
    document = ha_environment_document(name, pair, redis_set, tmp_path, postgres_login=awkward_admin(pair))
    (own_parameters / "environments" / f"{name}.yaml").write_text(yaml.safe_dump(document))
    # Refused as with the pair's own superuser: it asked both nodes, logged in with the password.
    code, entry, said = _run(tmp_path / "outputs", name, "dry_run=false", "mode=unplanned")
    assert code == 1, said
    assert any("primary still answers" in f for f in entry["failures"]), entry["failures"]
    assert pgbouncer.backend(pair.config) == (LOOPBACK, pair.primary.port)
    assert AWKWARD_PASSWORD not in said and AWKWARD_PASSWORD not in json.dumps(entry)


def test_an_unplanned_failover_after_kill_9_repoints_the_same_pooler(
    environment: str, pair: PgPair, tmp_path: Path
) -> None:
    pair.primary.kill_hard()
    code, entry, said = _run(tmp_path, environment, "dry_run=false", "mode=unplanned")
    assert code == 0, said
    summary = entry["summary"]
    assert summary["new_primary"] == f"{LOOPBACK}:{pair.replica.port}"
    assert 0 < summary["write_unavailable_s"] < 30
    assert set(summary["step_seconds"]) == {
        "promote the replica",
        "repoint the pooler",
        "a write through the pooler",
    }
    assert [s["status"] for s in entry["steps"]][-1] == "failed-allowed"  # rejoin: by hand here
    assert pgbouncer.backend(pair.config) == (LOOPBACK, pair.replica.port)
    with psycopg.connect(pair.pooled_dsn, autocommit=True) as conn:
        assert not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]  # type: ignore[index]


def test_redis_fails_over_through_its_sentinels_and_not_without_a_quorum(
    environment: str, redis_set: RedisSet, tmp_path: Path
) -> None:
    code, entry, said = _run(tmp_path / "a", environment, "dry_run=false", "datastore=redis", "mode=planned")
    assert code == 0, said
    assert entry["summary"]["new_primary"] == f"{LOOPBACK}:{redis_set.replica.port}"

    for lost in redis_set.sentinels[1:]:
        lost.stop()
    code, entry, said = _run(tmp_path / "b", environment, "dry_run=false", "datastore=redis")
    assert code == 1, said
    assert any("fewer than 3: no quorum" in f for f in entry["failures"]), entry["failures"]
