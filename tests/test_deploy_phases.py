"""The deployment phases as data and on the sandbox (local driver): order inside a phase,
the generated notebooks and manifests, bad input refused, and a stopped component started."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from vextrus_nb.config import load_environment, load_inventory
from vextrus_nb.deploy import manifests, notebooks
from vextrus_nb.deploy.phase_plan import load_phases, phase_components, waves
from vextrus_nb.sandbox import manager
from vextrus_nb.sandbox_state import SandboxState, read_faults

from .helpers import REPO, ledger_entries, notebook_plain_text, run_cli


def test_order_inside_a_phase_follows_the_dependencies() -> None:
    inventory = load_inventory()
    env = load_environment("staging", inventory)
    assert waves(phase_components(env, inventory, 2)) == [["zookeeper", "rabbitmq"], ["kafka"]]
    core = waves(phase_components(env, inventory, 6))
    assert core[0] == ["auth"] and sorted(core[1]) == [
        "finance",
        "master-data",
        "organization",
        "rules-engine",
        "workflow",
    ]
    everything = [c.name for p in range(1, 9) for c in phase_components(env, inventory, p)]
    assert len(everything) == len(set(everything)) == 33  # every non-dev component in exactly one phase


def test_the_committed_notebooks_and_manifests_are_what_the_generators_write(tmp_path: Path) -> None:
    for written in notebooks.write_all(tmp_path / "notebooks"):
        committed = nbformat.read(REPO / "notebooks" / "deploy" / written.name, as_version=4)
        assert nbformat.read(written, as_version=4) == committed, f"regenerate {written.name}"
    for written in manifests.write_all(tmp_path / "k8s"):
        assert written.read_text() == (REPO / "deploy" / "k8s" / written.name).read_text(), written.name
    for written in manifests.write_sandbox_variants(tmp_path / "sandbox"):
        committed = REPO / "deploy" / "sandbox" / written.relative_to(tmp_path / "sandbox")
        assert written.read_text() == committed.read_text(), f"regenerate {committed}"
    assert [s.notebook for s in load_phases().values()] == sorted(
        p.stem for p in (REPO / "notebooks" / "deploy").glob("*.ipynb")
    )


def test_the_kubernetes_manifests_pass_the_static_checks() -> None:
    from vextrus_nb.checks.execution import run_checklist, select

    inventory = load_inventory()
    production = load_environment("production", inventory)
    static = [
        "SEC-LITERAL-SECRETS",
        "SEC-IMAGE-TAGS",
        "SEC-LIMITS",
        "SEC-HEALTHCHECKS",
        "SEC-TRAEFIK-INSECURE",
        "SEC-TLS",
        "SEC-ES-SECURITY",
        "SEC-DEV-TOOLS",
        "SEC-NETPOL-DEFAULT-DENY",
        "SEC-RUN-AS-NON-ROOT",
        "SEC-READONLY-ROOTFS",
        "PERF-HPA",
        "INF-PDB",
        "INF-PGBOUNCER",
    ]
    result = run_checklist(production, inventory, select(ids=static))
    assert {r.check.id: r.status for r in result.results} == dict.fromkeys(static, "passed")
    # 33 components, PgBouncer and the DR CronJob
    assert "35 workloads" in result.result("SEC-LIMITS").evidence


@pytest.mark.parametrize(
    ("parameters", "says"),
    [
        (["deadline_s=0"], "deadline_s must be a positive number of seconds, not 0"),
        (["deadline_s=10", "poll_s=20"], "poll_s (20) must not exceed deadline_s (10)"),
        (["deadline_s=soon"], "deadline_s"),
    ],
)
def test_bad_parameters_are_refused_before_anything_is_touched(
    sandbox: SandboxState, outputs: Path, parameters: list[str], says: str
) -> None:
    done = run_cli(
        "run",
        "deploy/01-data-layer",
        "--env",
        "sandbox",
        "-p",
        "dry_run=False",
        *[a for p in parameters for a in ("-p", p)],
    )
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert ledger_entries(outputs) == []


def test_production_needs_confirm(outputs: Path) -> None:
    done = run_cli("run", "deploy/06-core-services", "--env", "production", "-p", "dry_run=False")
    assert done.returncode == 2
    assert "pass -p confirm=production" in done.stderr


def test_on_the_sandbox_a_stopped_component_is_started_and_the_rest_left_alone(
    healthy: SandboxState, outputs: Path
) -> None:
    manager.fault("traefik", "down", root=healthy.root)
    done = run_cli("run", "deploy/05-edge", "--env", "sandbox")  # dry run: plans the start, changes nothing
    assert done.returncode == 0, done.stderr
    assert "start, wait until healthy" in notebook_plain_text(Path(done.stdout.split()[-1]))
    assert "traefik" in read_faults(healthy.root)

    done = run_cli("run", "deploy/05-edge", "--env", "sandbox", "-p", "dry_run=False")
    assert done.returncode == 0, done.stderr
    [*_, entry] = ledger_entries(outputs)
    assert entry["summary"]["started"] == 1 and entry["summary"]["healthy"] == 1
    assert "traefik" in entry["summary"]["start_to_healthy_s"]
    assert "traefik" not in read_faults(healthy.root)

    # Phase 6 with phase 1's PostgreSQL down: the preflight stops it, naming postgres.
    manager.fault("postgres", "down", root=healthy.root)
    done = run_cli("run", "deploy/06-core-services", "--env", "sandbox", "-p", "dry_run=False")
    assert done.returncode == 1
    [*_, entry] = ledger_entries(outputs)
    assert "not healthy: postgres (stopped)" in entry["failures"][0]
    assert entry["summary"].get("started") is None
