"""What the runner and the kernel both need to know of a run: its id, where its output
notebook goes, and the variables through which the runner tells the kernel.

Kept apart from runner and session so that neither imports the other.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from pathlib import Path

RECORD_PATH_VAR = "VEXTRUS_RECORD_PATH"
# Where the runner will write the output notebook; files a run exports go beside it.
OUTPUT_PATH_VAR = "VEXTRUS_OUTPUT_PATH"
RUN_ID_VAR = "VEXTRUS_RUN_ID"
# A private file the runner reads before its final scrub: every secret value the kernel saw.
SPILL_PATH_VAR = "VEXTRUS_SCRUB_SPILL_PATH"


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def output_path_for(outputs_dir: Path, env: str, runbook: str, run_id: str, when: datetime) -> Path:
    """`outputs/<env>/<date>/<runbook>-<utc time>-<run id>.ipynb` (DESIGN's interface)."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", runbook.removesuffix(".ipynb"))
    name = f"{slug}-{when.strftime('%H%M%SZ')}-{run_id}.ipynb"
    return outputs_dir / env / when.strftime("%Y-%m-%d") / name
