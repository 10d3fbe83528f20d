"""The sandbox's real servers started as `sandbox up` starts them, all at once (ours), against
one after another (the baseline: what a start script of `service start` lines does); both ready
by each server's own protocol. Also records each server's ready time and resident memory."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from bench.common import best_of, report

REPEATS = 2


def main() -> None:
    from vextrus_nb.config import load_inventory
    from vextrus_nb.ports import free_ports
    from vextrus_nb.sandbox.real_platform import REAL_COMPONENTS, RealPlatform, extra_port_roles

    names = list(REAL_COMPONENTS)
    # The services' ports too: Traefik routes them and Prometheus scrapes them (nothing answers).
    port_names = sorted(
        {n for c in REAL_COMPONENTS.values() for n in c.component_ports.values()}
        | {s.name for s in load_inventory().services()}
    )
    credentials = {"minio": {"access_key": "benchkey", "secret_key": "bench-secret-0123456789"}}
    credentials["rabbitmq"] = {"user": "bench", "password": "bench-password-0123"}
    ready: dict[str, float] = {}
    rss: dict[str, int] = {}

    def start(parallel: bool) -> None:
        root = Path(tempfile.mkdtemp(prefix="vextrus-bench-real-"))
        roles = extra_port_roles()
        allocated = free_ports(len(port_names) + len(roles))
        ports = dict(zip(port_names, allocated, strict=False))
        extra: dict[str, dict[str, int]] = {}
        for (component, role), port in zip(roles, allocated[len(port_names) :], strict=True):
            extra.setdefault(component, {})[role] = port
        (root / "deploy").mkdir()
        (root / "deploy" / "VARIANT").write_text("hardened\n")
        options = {
            "prometheus": lambda: {"platform_ports": ports},
            "traefik": lambda: {"platform_ports": ports, "variant": "hardened"},
        }
        platform = RealPlatform(root, ports, extra, credentials, options)  # type: ignore[arg-type]
        try:
            if parallel:
                ready.update(platform.start_all(names))
                rss.update({n: s["rss_bytes"] for n, s in platform.status().items()})
            else:
                for name in names:
                    platform.start(name)
        finally:
            platform.stop_all(grace=2.0)
            shutil.rmtree(root, ignore_errors=True)

    ours, _ = best_of(lambda: start(parallel=True), repeats=REPEATS)
    baseline, _ = best_of(lambda: start(parallel=False), repeats=1)
    report(
        "real_servers_parallel_vs_sequential",
        ours,
        baseline,
        servers=len(names),
        ready_s={n: round(s, 2) for n, s in ready.items()},
        rss_mb={n: round(b / 2**20) for n, b in rss.items()},
        rss_total_mb=round(sum(rss.values()) / 2**20),
    )


if __name__ == "__main__":
    main()
