"""Every refusal is decided before a kernel starts: no kernel process, no output notebook, no
ledger line, and it costs a fraction of a second (tested in-process, papermill replaced by a
tripwire so that reaching it fails the test)."""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest

from vextrus_nb.run import runner

REFUSALS = [
    ("verify/smokey", {}, "unknown runbook 'verify/smokey'"),
    ("verify/smoke", {"colour": "red"}, "unknown parameter 'colour'"),
    ("verify/smoke", {"dry_run": "maybe"}, "'dry_run' expects bool"),
    ("verify/smoke", {"timeout_s": 0}, "timeout_s must be positive"),
    ("verify/checklist", {"report_format": "pdf"}, "report_format must be one of"),
    ("verify/checklist", {"threshold": 120.0}, "threshold must be between 0 and 100"),
    ("verify/checklist", {"only": "NO-SUCH-CHECK"}, "NO-SUCH-CHECK"),
    ("incident/triage", {"service": "payroll"}, "unknown component 'payroll'"),
    ("incident/triage", {"kafka_lag_max": -1}, "kafka_lag_max must not be negative"),
    ("dr/backup", {"services": "payroll"}, "unknown service(s)"),
    ("dr/restore", {"target": "elsewhere"}, "target must be one of"),
    ("dr/restore", {"from_store": "tape"}, "from_store must be one of"),
    ("dr/drill", {"from_store": "tape"}, "from_store must be one of"),
    ("dr/restore", {"set_id": "no-such-set"}, "no backup set 'no-such-set'"),
    ("secrets/rotate", {"rotate": "no-such-credential"}, "unknown credential(s): no-such-credential"),
    ("secrets/rotate", {"deadline_s": -1.0}, "deadline_s must be a positive number"),
    ("deploy/01-data-layer", {"poll_s": 900.0}, "poll_s (900) must not exceed deadline_s"),
]


@pytest.fixture
def tripwire(monkeypatch: pytest.MonkeyPatch) -> None:
    def kernel_started(*args: object, **kwargs: object) -> None:
        raise AssertionError("a kernel was started for a run that should have been refused")

    monkeypatch.setattr(papermill, "execute_notebook", kernel_started)


@pytest.mark.parametrize(("runbook", "given", "says"), REFUSALS)
def test_refused_before_any_kernel_starts(
    tripwire: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runbook: str, given: dict, says: str
) -> None:
    outputs = tmp_path / "outputs"
    monkeypatch.setenv("VEXTRUS_OUTPUTS_DIR", str(outputs))
    outcome = runner.run(runbook, "sandbox", given, outputs_dir=outputs)
    assert (outcome.exit_code, outcome.status) == (runner.EXIT_REFUSED, "refused")
    assert says in outcome.message
    assert outcome.output_path is None and not outputs.exists()  # no notebook, no ledger line


def test_a_live_production_run_without_confirm_is_refused_before_any_kernel(
    tripwire: None, tmp_path: Path
) -> None:
    outcome = runner.run("dr/backup", "production", {"dry_run": "false"}, outputs_dir=tmp_path / "outputs")
    assert outcome.exit_code == runner.EXIT_REFUSED and "pass -p confirm=production" in outcome.message


# What a refusal must not wait for: each takes 0.1-0.8 s to import on the 2-core machine, and
# none is needed to tell an operator that a parameter is wrong.
HEAVY = ("papermill", "boto3", "httpx", "psycopg", "redis", "pandas", "plotly", "nbclient", "cryptography")
REFUSE_IN_A_FRESH_PROCESS = """
import json, sys
from vextrus_nb.run import runner
outcome = runner.run("verify/checklist", "sandbox", {"threshold": 150})
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[1].split(",")))
print(json.dumps({"exit": outcome.exit_code, "message": outcome.message, "heavy": heavy}))
"""


def test_a_refusal_imports_none_of_the_heavy_libraries(tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, VEXTRUS_CACHE_DIR=str(tmp_path / "cache"), VEXTRUS_OUTPUTS_DIR=str(tmp_path))
    argv = [sys.executable, "-c", REFUSE_IN_A_FRESH_PROCESS, ",".join(HEAVY)]
    first, second = (json.loads(subprocess.check_output(argv, env=env, text=True)) for _ in range(2))
    for outcome in (first, second):
        assert outcome["exit"] == runner.EXIT_REFUSED and "threshold must be between" in outcome["message"]
    # The first reads the notebook's declarations through papermill and keeps them; after that,
    # nothing heavy is imported at all.
    assert "papermill" in first["heavy"]
    assert second["heavy"] == []


def test_the_kept_declarations_follow_an_edit_of_the_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vextrus_nb.run.parameters import declared_parameters

    from .helpers import write_runbook

    monkeypatch.setenv("VEXTRUS_CACHE_DIR", str(tmp_path / "cache"))
    notebook = write_runbook(tmp_path, "kept", 'env = "sandbox"\nlimit = 5\n')
    assert declared_parameters(notebook)["limit"].default == 5
    assert declared_parameters(notebook)["limit"].default == 5  # from the cache this time
    write_runbook(tmp_path, "kept", 'env = "sandbox"\nlimit = 7\nlabel = "x"\n')
    declared = declared_parameters(notebook)
    assert declared["limit"].default == 7 and declared["label"].type_name == "str"
