"""What the fault proxy (vextrus_nb/sandbox/fault_proxy.py) adds in `pass` mode: Redis PING round
trips over one kept-open connection, directly and through the proxy, in the same run, against one
real redis-server started here. The proxy's thread and the client share one interpreter, as in a
test; the services process would run it on its own loop."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time

import redis

from bench.common import median, report
from vextrus_nb.ports import free_ports
from vextrus_nb.sandbox.fault_proxy import FaultProxy

ROUND_TRIPS = 5000


def _free_port() -> int:
    return free_ports(1)[0]


def _round_trips(port: int) -> list[float]:
    client = redis.Redis(port=port, socket_timeout=5)
    client.ping()  # connected before the clock starts
    timings = []
    for _ in range(ROUND_TRIPS):
        started = time.perf_counter()
        client.ping()
        timings.append(time.perf_counter() - started)
    client.close()
    return sorted(timings)


def main() -> None:
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as scratch:
        process = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", scratch],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    redis.Redis(port=port).ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            with FaultProxy("127.0.0.1", port).running() as proxy:
                direct = _round_trips(port)
                proxied = _round_trips(proxy.port)
        finally:
            process.terminate()
            process.wait(10)
    p99 = int(0.99 * ROUND_TRIPS)
    report(
        "fault_proxy_round_trip_vs_direct",
        median(proxied),
        median(direct),
        round_trips=ROUND_TRIPS,
        p50_added_ms=round((median(proxied) - median(direct)) * 1000, 3),
        p99_direct_ms=round(direct[p99] * 1000, 3),
        p99_proxied_ms=round(proxied[p99] * 1000, 3),
    )


if __name__ == "__main__":
    main()
