"""Ledger append latency, the shared control store (PostgreSQL + a versioned SeaweedFS bucket,
started here) against the embedded file ledger, in the same run: 1, 4 and 8 appenders at once,
each its own process (a host) appending sealed records whose notebook is uploaded (shared) or
already beside the ledger (file). p50 and p95 per concurrency; the ratio is shared over file at
p50. What a run pays once, at sealing: not on the path of any step."""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import report
from vextrus_nb.sandbox import control_store

APPENDS_PER_HOST = 20
CONCURRENCY = (1, 4, 8)


def _host(settings: str, outputs: str, start_at: float) -> list[float]:
    """One appender: its own outputs directory, APPENDS_PER_HOST sealed records, timed each."""
    if settings:
        os.environ["VEXTRUS_CONTROL"] = settings
    else:
        os.environ.pop("VEXTRUS_CONTROL", None)
        os.environ["VEXTRUS_PARAMETERS_DIR"] = outputs  # no parameters/control.yaml there
    os.environ["VEXTRUS_OUTPUTS_DIR"] = outputs
    from vextrus_nb.evidence import chain, ledger

    root = Path(outputs)
    time.sleep(max(0.0, start_at - time.time()))
    timings = []
    for _ in range(APPENDS_PER_HOST):
        run_id = uuid.uuid4().hex[:12]
        notebook = root / "sandbox" / f"bench-{run_id}.ipynb"
        notebook.parent.mkdir(parents=True, exist_ok=True)
        notebook.write_text(json.dumps({"cells": [], "run": run_id, "padding": "x" * 20_000}))
        record = {
            "run_id": run_id,
            "runbook": "verify/smoke",
            "status": "passed",
            "output": str(notebook.relative_to(root)),
            "output_sha256": chain.sha256_file(notebook),
        }
        started = time.perf_counter()
        ledger.append_entry(record, root)
        timings.append(time.perf_counter() - started)
    return timings


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _measure(settings: str, scratch: Path, concurrency: int) -> list[float]:
    shared_outputs = scratch / f"file-{concurrency}"  # one host's ledger: its processes share it
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 2.0  # every process imported and waiting by then
    with context.Pool(concurrency) as pool:
        args = [
            (
                settings,
                str(scratch / f"host-{concurrency}-{n}") if settings else str(shared_outputs),
                start_at,
            )
            for n in range(concurrency)
        ]
        return [t for timings in pool.starmap(_host, args) for t in timings]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as scratch_dir:
        scratch = Path(scratch_dir)
        store = control_store.start(scratch / "control")
        try:
            figures = {}
            for concurrency in CONCURRENCY:
                shared = _measure(str(store.settings_path), scratch, concurrency)
                files = _measure("", scratch, concurrency)
                figures[concurrency] = {
                    "shared_p50_ms": round(_percentile(shared, 0.5) * 1000, 1),
                    "shared_p95_ms": round(_percentile(shared, 0.95) * 1000, 1),
                    "file_p50_ms": round(_percentile(files, 0.5) * 1000, 2),
                    "file_p95_ms": round(_percentile(files, 0.95) * 1000, 2),
                }
        finally:
            store.stop()
    one = figures[1]
    report(
        "ledger_append",
        one["shared_p50_ms"] / 1000,
        one["file_p50_ms"] / 1000,
        appends_per_host=APPENDS_PER_HOST,
        **{f"{k}@{c}": v for c, row in figures.items() for k, v in row.items()},
    )


if __name__ == "__main__":
    main()
