"""Rendering 200 runs into the auditor's report (ours: one exporter per process,
all cores) against the naive way, `jupyter nbconvert --to html` logic in one
process with a fresh exporter per notebook, on the same 200 notebooks.
The issue's target: under a minute for 200 runs."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bench.common import best_of, report

RUNS = 200


def _seed_outputs(source: Path, outputs: Path) -> list[Path]:
    from vextrus_nb.evidence import ledger

    notebooks = []
    for i in range(RUNS):
        target = outputs / "sandbox" / "2026-11-22" / f"verify-smoke-{i:04d}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        ledger.append_entry(
            {
                "run_id": f"bench{i:04d}",
                "runbook": "verify/smoke",
                "env": "sandbox",
                "status": "passed" if i % 7 else "failed",
                "started_at": f"2026-11-{1 + i % 22:02d}",
                "summary": {"up": 32},
                "output": str(target.relative_to(outputs)),
                "output_sha256": ledger.sha256_file(target),
            },
            outputs,
        )
        notebooks.append(target)
    return notebooks


def main() -> None:
    from vextrus_nb.evidence import report as reporting

    work = Path(tempfile.mkdtemp(prefix="vextrus-bench-report-"))
    os.environ["VEXTRUS_SANDBOX_DIR"] = str(work / "sandbox")
    from vextrus_nb.run import runner
    from vextrus_nb.sandbox import manager

    manager.up(work / "sandbox")
    try:
        outcome = runner.run("verify/smoke", "sandbox", outputs_dir=work / "seed")
        notebooks = _seed_outputs(outcome.output_path, work / "outputs")
    finally:
        manager.down(work / "sandbox")

    def naive() -> None:
        import warnings

        from nbconvert import HTMLExporter

        # Plain nbconvert cannot show plotly's JSON output and warns once per figure; it drops them.
        warnings.filterwarnings("ignore", message="Your element with mimetype")
        for notebook in notebooks:
            body, _ = HTMLExporter(template_name="lab").from_filename(str(notebook))
            (work / "naive.html").write_text(body)

    ours, _ = best_of(lambda: reporting.build(work / "report", outputs_dir=work / "outputs"), repeats=1)
    baseline, _ = best_of(naive, repeats=1)
    report(
        "report_200_runs_vs_naive_nbconvert",
        ours,
        baseline,
        runs=RUNS,
        cores=os.cpu_count(),
        under_a_minute=ours < 60,
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
