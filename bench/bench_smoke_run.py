"""The on-call engineer's first command, `vextrus-nb run verify/smoke`, end to end on the sandbox,
against what it cannot do without: importing the libraries it uses, in a plain script, in the same
run. Also timed: a refusal through the CLI (a bad parameter, exit 2 before any kernel) and the
figure cell, read from each output notebook's papermill metadata.

    python -m bench.bench_smoke_run          # starts (and stops) its own sandbox
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import median, report

BIN = Path(sys.executable).parent
REPEATS = 5
PLAIN_IMPORTS = "import pandas, plotly.express, httpx, psycopg, redis"


def _timed(argv: list[str], env: dict[str, str], expect: int = 0) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}, expected {expect}:\n{done.stderr}")
    return seconds


def _figure_cell_seconds(notebook: Path) -> float:
    cells = json.loads(notebook.read_text())["cells"]
    [figure] = [c for c in cells if "".join(c["source"]).startswith("show_figure")]
    return float(figure["metadata"]["papermill"]["duration"])


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="vextrus-bench-smoke-"))
    outputs = root / "outputs"
    env = dict(os.environ, VEXTRUS_SANDBOX_DIR=str(root / "sandbox"), VEXTRUS_OUTPUTS_DIR=str(outputs))
    cli = str(BIN / "vextrus-nb")
    subprocess.run([cli, "sandbox", "up"], env=env, check=True, capture_output=True)
    try:
        smoke = [cli, "run", "verify/smoke", "--env", "sandbox"]
        refusal = [cli, "run", "verify/checklist", "--env", "sandbox", "-p", "threshold=150"]
        _timed(smoke, env)  # warm the page cache and the parameters cache, as a second run finds them
        _timed(refusal, env, expect=2)
        runs, refusals, imports = [], [], []
        for _ in range(REPEATS):  # interleaved, so a change in the machine's load hits all three
            imports.append(_timed([sys.executable, "-c", PLAIN_IMPORTS], env))
            runs.append(_timed(smoke, env))
            refusals.append(_timed(refusal, env, expect=2))
        figures = [_figure_cell_seconds(p) for p in sorted(outputs.rglob("verify-smoke-*.ipynb"))]
        report(
            "smoke_run_vs_plain_imports",
            median(runs),
            median(imports),
            refusal_s=round(median(refusals), 3),
            figure_cell_s=round(median(figures), 3),
            runs_s=[round(s, 2) for s in runs],
            load_average=os.getloadavg()[0],
        )
    finally:
        subprocess.run([cli, "sandbox", "down"], env=env, capture_output=True)


if __name__ == "__main__":
    main()
