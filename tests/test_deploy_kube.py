"""The deployment phases on Kubernetes, through the kube driver and the official client.

No API server can run here: tests/kube_api.py is an in-test HTTP server speaking
the part of the Kubernetes REST API the driver uses (workloads, scale, pods,
logs, events), playing the controllers. The workloads come from the committed
deploy/k8s manifests. The components' own endpoints, which the verify step
probes, are the sandbox's: the same phase tests as on compose.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

import vextrus_nb
from vextrus_nb.config import load_environment, load_inventory
from vextrus_nb.deploy.phase_plan import load_phases, phase_components
from vextrus_nb.runbooks.deploy import phases as deploy
from vextrus_nb.sandbox_state import SandboxState

from .helpers import REPO, notebook_plain_text, run_cli
from .kube_api import FakeCluster, KubeApiServer

ENV = "kube-sandbox"
PLANTED = "api-gateway"


@pytest.fixture(scope="module")
def cluster(
    sandbox: SandboxState, own_parameters: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeCluster]:
    fake = FakeCluster(ready_after_s=0.3)
    fake.never_ready.add(PLANTED)
    folder = tmp_path_factory.mktemp("kube")
    with KubeApiServer(fake) as server:
        server.kubeconfig(folder / "kubeconfig")
        environment = yaml.safe_load((REPO / "parameters" / "environments" / "sandbox.yaml").read_text())
        environment.update(
            name=ENV,
            description="The sandbox's endpoints, deployed through the Kubernetes API (an in-test server)",
            driver="kube",
            deployment={
                "kubeconfig": str(folder / "kubeconfig"),
                "namespace": "vextrus",
                "kube_manifests": str(REPO / "deploy" / "k8s"),
            },
        )
        (own_parameters / "environments" / f"{ENV}.yaml").write_text(yaml.safe_dump(environment))
        yield fake


def phase_names(number: int) -> list[str]:
    inventory = load_inventory()
    return [c.name for c in phase_components(load_environment(ENV, inventory), inventory, number)]


def run_in_process(number: int, deadline_s: float = 30.0) -> dict[str, Any]:
    """The notebook's cells, called directly (the CLI path is exercised for phase 8 below)."""
    spec = load_phases()[number]
    rb = vextrus_nb.start(
        spec.runbook, env=ENV, dry_run=False, destructive=True, deadline_s=deadline_s, poll_s=0.1
    )
    phase = deploy.open_phase(rb, number)
    for title, call in (
        ("preflight", lambda: deploy.preflight(phase)),
        ("plan", lambda: deploy.plan(phase)),
        ("start and wait for health", lambda: deploy.start(phase)),
        ("tasks", lambda: deploy.tasks(phase)),
        ("verify", lambda: deploy.verify(phase)),
    ):
        with rb.step(title):
            call()
    deploy.judge(phase)
    rb.finish()
    return rb.summary


def record(output: Path) -> dict[str, Any]:
    return nbformat.read(output, as_version=4).metadata["vextrus"]["record"]


def run_phase_cli(number: int, *parameters: str) -> tuple[int, Path]:
    runbook = load_phases()[number].runbook
    done = run_cli("run", runbook, "--env", ENV, *[a for p in parameters for a in ("-p", p)])
    return done.returncode, Path(done.stdout.strip().splitlines()[-1])


def test_dry_run_writes_nothing_to_the_api(cluster: FakeCluster, outputs: Path) -> None:
    code, output = run_phase_cli(1)
    assert code == 0
    assert cluster.writes == [] and cluster.workloads == {}
    assert "start, wait until healthy" in notebook_plain_text(output)


def test_phases_1_to_8_on_kubernetes_with_a_planted_fault(
    cluster: FakeCluster, healthy: SandboxState, outputs: Path
) -> None:
    for number in range(1, 8):
        summary = run_in_process(number)
        names = phase_names(number)
        assert summary["healthy"] == summary["started"] == len(names), summary
        assert set(summary["start_to_healthy_s"]) == set(names)
        for name in names:  # created from the committed manifests, scaled as they say
            assert any(f"create {p}/{name}" in cluster.writes for p in ("deployments", "statefulsets")), name
    earlier = [n for p in range(1, 8) for n in phase_names(p)]

    # The gateway's readiness never passes: phase 8 fails within its deadline and names it,
    # with its last log lines and its Warning events' effect; the earlier phases stay scaled up.
    code, output = run_phase_cli(8, "dry_run=False", "deadline_s=3", "poll_s=0.2")
    assert code == 1
    rec = record(output)
    assert rec["summary"]["not_healthy"] == [PLANTED]
    text = notebook_plain_text(output)
    assert f"Not healthy within 3 s: {PLANTED}." in text and "Health Check has failed!" in text
    assert "0/2 ready" in text
    for name in earlier:
        workload = next(w for (p, n), w in cluster.workloads.items() if n == name)
        assert workload["spec"]["replicas"] >= 1, name

    # With rollback the gateway is scaled back to zero; the fault fixed, phase 8 passes.
    code, output = run_phase_cli(8, "dry_run=False", "deadline_s=3", "poll_s=0.2", "rollback_on_failure=True")
    assert code == 1 and record(output)["summary"]["rolled_back"] == [PLANTED]
    assert cluster.workloads[("deployments", PLANTED)]["spec"]["replicas"] == 0
    assert "scale deployments/api-gateway 0" in cluster.writes
    cluster.never_ready.discard(PLANTED)
    code, output = run_phase_cli(8, "dry_run=False", "deadline_s=30", "poll_s=0.2")
    assert code == 0, notebook_plain_text(output)[-2000:]
    rec = record(output)
    assert rec["summary"]["healthy"] == 1 and "api-gateway" in rec["summary"]["start_to_healthy_s"]
    assert "FED-SUBGRAPHS" in notebook_plain_text(output)
    assert "scale deployments/api-gateway 2" in cluster.writes  # the manifest's replica count


def test_an_unreachable_api_fails_the_preflight_by_name(
    cluster: FakeCluster, own_parameters: Path, outputs: Path, tmp_path: Path
) -> None:
    environment = yaml.safe_load((own_parameters / "environments" / f"{ENV}.yaml").read_text())
    dead = tmp_path / "kubeconfig"
    shutil.copy(environment["deployment"]["kubeconfig"], dead)
    config = yaml.safe_load(dead.read_text())
    config["clusters"][0]["cluster"]["server"] = "http://127.0.0.1:9"  # discard: nothing listens there
    dead.write_text(yaml.safe_dump(config))
    environment.update(name="kube-dead", deployment={**environment["deployment"], "kubeconfig": str(dead)})
    (own_parameters / "environments" / "kube-dead.yaml").write_text(yaml.safe_dump(environment))
    done = run_cli("run", "deploy/01-data-layer", "--env", "kube-dead")
    assert done.returncode == 1
    output = Path(done.stdout.strip().splitlines()[-1])
    assert "cannot reach the Kubernetes API" in record(output)["failures"][0]
