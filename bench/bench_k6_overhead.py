"""The load generator's own overhead: k6 (through vextrus_nb.resilience.k6, as the runbook runs
it) against a trivial loopback server at the target rate, and in the same run a direct client
(asyncio over raw keep-alive sockets, the same open model: each request starts on its schedule)
against the same server. What k6 adds: its achieved rate against the target, its p99 above the
direct one.

The server runs in its own process, so neither client shares an interpreter with it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import report
from vextrus_nb.ports import free_ports

TARGET_RATE = 200  # iterations per second: the engine's ceiling per target
DURATION_S = 10

_SERVER = """
import sys
from aiohttp import web

async def graphql(request):
    await request.read()
    return web.json_response({"data": {"_gateway": {"subgraphs": []}}})

app = web.Application()
app.router.add_post("/graphql", graphql)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def _free_port() -> int:
    return free_ports(1)[0]


def _wait_listening(port: int, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the trivial server did not listen on {port} within {deadline_s:g} s")


_BODY = b'{"query": "{ _gateway { subgraphs { name } } }"}'


async def _direct(port: int, rate: int, duration_s: int) -> tuple[list[float], float]:
    """Open model by hand, over raw keep-alive sockets (an HTTP client library would cost more
    than k6 does): request i starts at t0 + i/rate whatever the earlier ones are doing."""
    request = (
        f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(_BODY)}\r\n\r\n"
    ).encode() + _BODY
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: list[float] = []

    async def one() -> None:
        started = time.perf_counter()
        reader, writer = idle.pop() if idle else await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        latencies.append((time.perf_counter() - started) * 1000)
        idle.append((reader, writer))

    loop = asyncio.get_running_loop()
    t0 = loop.time()
    tasks = []
    for i in range(rate * duration_s):
        await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - t0
    for _, writer in idle:
        writer.close()
    return latencies, elapsed


def main() -> None:
    from vextrus_nb.resilience import k6
    from vextrus_nb.resilience.results import percentile, read_result

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(port)])
    try:
        _wait_listening(port)
        url = f"http://127.0.0.1:{port}/graphql"
        plan = k6.LoadPlan(
            (k6.GraphqlQuery(url),),
            k6.Arrival(TARGET_RATE, DURATION_S, pre_allocated_vus=20, max_vus=200),
            loopback_only=True,
        )
        with tempfile.TemporaryDirectory(prefix="vextrus-bench-k6-") as scratch:
            result = read_result(plan, k6.run_k6(plan, Path(scratch)))
        figures = result.endpoint("graphql")
        direct, elapsed = asyncio.run(_direct(port, TARGET_RATE, DURATION_S))
        direct_p99 = percentile(direct, 99)
        report(
            "k6_overhead_p99_vs_direct_client",
            figures.k6_ms[99] / 1000,
            direct_p99 / 1000,
            target_rate=TARGET_RATE,
            duration_s=DURATION_S,
            k6_achieved_rate=round(figures.requests / DURATION_S, 1),
            k6_requests=figures.requests,
            k6_dropped_iterations=result.dropped_iterations,
            direct_achieved_rate=round(len(direct) / elapsed, 1),
            k6_p50_ms=round(figures.k6_ms[50], 3),
            direct_p50_ms=round(percentile(direct, 50), 3),
            k6_p99_ms=round(figures.k6_ms[99], 3),
            direct_p99_ms=round(direct_p99, 3),
            p99_added_ms=round(figures.k6_ms[99] - direct_p99, 3),
            percentiles_agree=result.percentiles_agree,
        )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
