"""`vextrus-nb list` against the bare cost of importing papermill, which the
CLI avoids for every command but `run`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.common import best_of, report

BIN = Path(sys.executable).parent


def main() -> None:
    ours, _ = best_of(
        lambda: subprocess.run([str(BIN / "vextrus-nb"), "list"], check=True, capture_output=True)
    )
    baseline, _ = best_of(lambda: subprocess.run([sys.executable, "-c", "import papermill"], check=True))
    report("cli_list_vs_papermill_import", ours, baseline)


if __name__ == "__main__":
    main()
