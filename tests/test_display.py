"""Progress in an executed notebook: one line updated in place that ends saying what was done,
never a red stderr box per step."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
from nbformat.v4 import new_code_cell, new_notebook

from vextrus_nb.display import Progress

STEPS = """
from vextrus_nb.display import Progress


def restore(names, fail_at=None):
    bar = Progress(len(names), f"restoring {len(names)} databases")
    try:
        for name in names:
            if name == fail_at:
                raise RuntimeError(f"{name} would not restore")
            bar.step(f"{name}: proven")
    finally:
        bar.close()
"""


def _execute(tmp_path: Path, *cells: str) -> nbformat.NotebookNode:
    nb = new_notebook(
        cells=[new_code_cell(code) for code in cells],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    source, executed = tmp_path / "progress.ipynb", tmp_path / "progress-out.ipynb"
    nbformat.write(nb, source)
    papermill.execute_notebook(
        str(source), str(executed), kernel_name="python3", progress_bar=False, cwd=str(tmp_path)
    )
    return nbformat.read(executed, as_version=4)


def test_progress_keeps_one_display_with_the_final_state_and_no_stderr(tmp_path: Path) -> None:
    nb = _execute(
        tmp_path,
        STEPS,
        'restore([f"db{i:02d}" for i in range(17)])',
        'try:\n    restore(["a", "b", "c"], fail_at="c")\nexcept RuntimeError:\n    pass',
    )
    done_cell, stopped_cell = nb.cells[1], nb.cells[2]
    for cell in nb.cells:
        assert [o for o in cell.outputs if o.output_type == "stream"] == [], cell.outputs
        assert all(o.output_type == "display_data" for o in cell.outputs), cell.outputs

    assert len(done_cell.outputs) == 1
    done = done_cell.outputs[0].data
    assert done["text/plain"].startswith("restoring 17 databases: 17/17 done in ")
    assert done["text/plain"].endswith(" s (last: db16: proven)")
    assert '<progress value="17" max="17"' in done["text/html"]

    assert len(stopped_cell.outputs) == 1
    stopped = stopped_cell.outputs[0].data["text/plain"]
    assert stopped.startswith("restoring 3 databases: 2/3 stopped in ") and "(last: b: proven)" in stopped


def test_progress_outside_a_kernel_is_a_terminal_bar(capsys: object) -> None:
    bar = Progress(2, "copying")
    assert bar._bar is not None and bar._handle is None
    bar.step("one")
    bar.step("two")
    bar.close()
    assert bar.done == 2


def test_a_table_holds_what_pandas_would_print_aligned_and_escapes_what_it_shows() -> None:
    import pandas as pd

    from vextrus_nb.display import table

    rows = [
        {"component": "auth", "status": "down", "latency_ms": 2001.5, "detail": "<script>alert(1)</script>"},
        {"component": "finance-long-name", "status": "up", "latency_ms": 3.2, "detail": None},
    ]
    columns = ["component", "status", "latency_ms", "detail"]
    shown = table(rows, columns, {"status": lambda v: "background-color: red" if v == "down" else ""})
    expected = pd.DataFrame(rows, columns=columns).to_string()
    assert [line.split() for line in repr(shown).splitlines()] == [
        line.split() for line in expected.splitlines()
    ]
    assert len({len(line) for line in repr(shown).splitlines()}) == 1  # every column right-aligned
    assert "<script>" not in shown.html and "&lt;script&gt;" in shown.html
    assert '<td style="background-color: red">down</td>' in shown.html
    assert "<td>up</td>" in shown.html  # no style: no attribute


def test_a_header_lists_each_name_with_its_value() -> None:
    from vextrus_nb.display import key_values

    shown = key_values({"runbook": "verify/smoke", "started (UTC)": "2026-12-07T12:00:00+00:00"})
    assert repr(shown).splitlines() == [
        "runbook        verify/smoke",
        "started (UTC)  2026-12-07T12:00:00+00:00",
    ]
    assert "<th>started (UTC)</th><td>2026-12-07T12:00:00+00:00</td>" in shown.html
