"""The smoke sweep over the whole sandbox with hanging targets mixed in:
concurrent (ours) against the same probes one at a time (the baseline, what a
shell loop of curl/pg_isready does)."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from bench.common import best_of, report

HANGING = 3
TIMEOUT_S = 1.0


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="vextrus-bench-sandbox-"))
    os.environ["VEXTRUS_SANDBOX_DIR"] = str(root)
    from vextrus_nb.config import load_environment, load_inventory
    from vextrus_nb.probe_targets import probe_targets
    from vextrus_nb.probes import ProbeTarget, sweep
    from vextrus_nb.sandbox import manager

    manager.up(root)
    hanging = []
    try:
        for _ in range(HANGING):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(8)
            hanging.append(sock)
        inventory = load_inventory()
        env = load_environment("sandbox", inventory)
        targets = probe_targets(env, inventory, all_health_paths=True)
        targets += [
            ProbeTarget(f"hanging-{i}", "http", "127.0.0.1", s.getsockname()[1], path="/health")
            for i, s in enumerate(hanging)
        ]
        ours, _ = best_of(lambda: sweep(targets, timeout=TIMEOUT_S, concurrency=32))
        baseline, _ = best_of(lambda: sweep(targets, timeout=TIMEOUT_S, concurrency=1), repeats=1)
        report(
            "sweep_concurrent_vs_sequential",
            ours,
            baseline,
            targets=len(targets),
            hanging=HANGING,
            probe_timeout_s=TIMEOUT_S,
            within_one_timeout_plus_1s=ours < TIMEOUT_S + 1,
        )
    finally:
        for sock in hanging:
            sock.close()
        manager.down(root)


if __name__ == "__main__":
    main()
