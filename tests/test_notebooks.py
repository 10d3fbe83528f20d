"""Every committed runbook has the common shape and is committed clean."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").rglob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runbook_shape(path: Path) -> None:
    # Every cell keeps its id in the file (nbformat 4.5): one added by hand without it is
    # patched on every read with a warning, and will be an error in a later nbformat.
    raw = json.loads(path.read_text())
    without_id = [i for i, cell in enumerate(raw["cells"]) if "id" not in cell]
    assert not without_id, without_id
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.cells[0].cell_type == "markdown"
    for heading in ("Purpose", "When to run", "Risk", "Expected duration", "Rollback"):
        assert heading in nb.cells[0].source, heading
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ('env = "sandbox"', "dry_run = True", 'confirm = ""'):
        assert name in tagged[0].source
    start_cell = nb.cells[nb.cells.index(tagged[0]) + 1].source
    assert "vextrus_nb.start(" in start_cell
    # The runner refuses by the metadata, the kernel by the argument: they must agree.
    assert ("destructive=True" in start_cell) == bool(nb.metadata["vextrus"].get("destructive"))
    assert "rb.finish()" in nb.cells[-1].source
    runbook = str(path.relative_to(path.parents[1]).with_suffix(""))
    assert nb.metadata["vextrus"]["runbook"] == runbook
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "commit notebooks stripped"
