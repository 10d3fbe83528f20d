"""The whole checklist over the sandbox with several targets hanging: all
checks at once (ours) against the same checks one at a time, each probe after
the previous one (the baseline: a script ticking the checklist in order)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.common import best_of, report

HANGING = ("finance", "hr", "minio", "prometheus")  # each answers only after 30 s
TIMEOUT_S = 1.0


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="vextrus-bench-checklist-"))
    os.environ["VEXTRUS_SANDBOX_DIR"] = str(root)
    from vextrus_nb import checks
    from vextrus_nb.config import load_environment, load_inventory
    from vextrus_nb.sandbox import manager

    manager.up(root, deployment="hardened")
    try:
        for name in HANGING:
            manager.fault(name, "slow", root=root, delay_s=30)
        inventory = load_inventory()
        env = load_environment("sandbox", inventory)

        def checklist(one_at_a_time: bool) -> checks.ChecklistResult:
            return checks.run_checklist(env, inventory, timeout_s=TIMEOUT_S, one_at_a_time=one_at_a_time)

        sample = checklist(False)
        targets = sum(len(s.health_paths) + 1 for s in inventory.services()) + 12  # + metrics, infra, gateway
        ours, _ = best_of(lambda: checklist(False))
        baseline, _ = best_of(lambda: checklist(True), repeats=1)
        report(
            "checklist_concurrent_vs_one_at_a_time",
            ours,
            baseline,
            checks=len(sample.results),
            targets=targets,
            hanging=len(HANGING),
            probe_timeout_s=TIMEOUT_S,
            within_one_timeout_plus_1s=ours < TIMEOUT_S + 1,
            hanging_named=all(
                name in {f.subject for r in sample.results for f in r.findings} for name in HANGING
            ),
        )
    finally:
        manager.down(root)


if __name__ == "__main__":
    main()
