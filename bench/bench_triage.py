"""The full triage collection over the sandbox with several components
hanging: every collector at once (ours) against the same collectors awaited
one after another, each probing one target at a time (the baseline: an
engineer's script gathering the facts in order). The issue asks for under
5 seconds with components hanging."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.common import best_of, report

HANGING = ("finance", "hr", "minio", "prometheus")  # each answers only after 30 s
TIMEOUT_S = 1.0


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="vextrus-bench-triage-"))
    os.environ["VEXTRUS_SANDBOX_DIR"] = str(root)
    from vextrus_nb import triage
    from vextrus_nb.config import load_environment, load_inventory
    from vextrus_nb.sandbox import manager

    manager.up(root)
    try:
        for name in HANGING:
            manager.fault(name, "slow", root=root, delay_s=30)
        inventory = load_inventory()
        env = load_environment("sandbox", inventory)
        settings = triage.TriageSettings(timeout_s=TIMEOUT_S, latency_budget_ms=4000)

        def collect(one_after_another: bool) -> triage.TriageResult:
            return triage.triage(env, inventory, settings, one_after_another=one_after_another)

        sample = collect(False)
        ours, _ = best_of(lambda: collect(False))
        baseline, _ = best_of(lambda: collect(True), repeats=1)
        hung = {f.component for f in sample.findings if f.symptom == "hung"}
        report(
            "triage_concurrent_vs_one_after_another",
            ours,
            baseline,
            collectors=len(sample.reports),
            health_endpoints=len(sample.report("health").data["results"]),
            hanging=len(HANGING),
            probe_timeout_s=TIMEOUT_S,
            under_5s=ours < 5,
            hanging_named=hung == set(HANGING),
        )
    finally:
        manager.down(root)


if __name__ == "__main__":
    main()
