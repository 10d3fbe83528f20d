"""The layout a newcomer can read (docs/architecture.md), kept true by the import graph itself:
every notebook has its steps module and imports it; production code never imports the sandbox;
no engine imports the runbooks; no two modules import each other, however indirectly."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from vextrus_nb.run.runner import list_runbooks
from vextrus_nb.run.steps import module_name

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "vextrus_nb"
# What a notebook may import of the package besides its own steps module.
NOTEBOOK_ALLOWED = {"vextrus_nb", "vextrus_nb.display"}


def _module_of(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every vextrus_nb module the file imports, at load or inside a function (not for typing only)."""
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= {id(n) for child in node.body for n in ast.walk(child)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("vextrus_nb")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vextrus_nb"):
            for alias in node.names:  # `from vextrus_nb.x import y` imports module x.y when y is one
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if _is_module(candidate) else node.module)
    return found


def _is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (REPO / relative).with_suffix(".py").is_file() or (REPO / relative / "__init__.py").is_file()


GRAPH = {_module_of(p): _imports(p) for p in PACKAGE.rglob("*.py")}


@pytest.mark.parametrize("runbook", list_runbooks())
def test_every_notebook_imports_its_own_steps_module_and_nothing_else(runbook: str) -> None:
    steps = module_name(runbook)
    assert _is_module(steps), f"{runbook}: no steps module {steps}"
    nb = json.loads((REPO / "notebooks" / f"{runbook}.ipynb").read_text())
    source = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    imported = {m for m in _imports_of_source(source)}
    assert steps in imported, f"{runbook} does not import {steps}"
    assert imported <= NOTEBOOK_ALLOWED | {steps}, (
        f"{runbook} imports {imported - NOTEBOOK_ALLOWED - {steps}}"
    )


def _imports_of_source(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("vextrus_nb")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vextrus_nb"):
            found |= {
                f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}") else node.module
                for a in node.names
            }
    return found


def test_every_runbook_module_has_its_notebook() -> None:
    """The other direction: no steps module is left behind when a notebook goes."""
    steps_of_notebooks = {module_name(r) for r in list_runbooks()}
    modules = {m for m in GRAPH if m.startswith("vextrus_nb.runbooks.") and m.count(".") == 3}
    assert modules <= steps_of_notebooks, f"steps modules without a notebook: {modules - steps_of_notebooks}"


def _in_sandbox_package(module: str) -> bool:
    """The sandbox package itself; `vextrus_nb.sandbox_state`, the ground floor's reader of its
    state directory, is not in it."""
    return module == "vextrus_nb.sandbox" or module.startswith("vextrus_nb.sandbox.")


def test_production_code_never_imports_the_sandbox() -> None:
    offenders = {
        module: sorted(i for i in imports if _in_sandbox_package(i))
        for module, imports in GRAPH.items()
        if not _in_sandbox_package(module) and module != "vextrus_nb.cli"
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_no_engine_imports_the_runbooks() -> None:
    machinery = ("vextrus_nb.runbooks", "vextrus_nb.run.", "vextrus_nb.cli")
    offenders = {
        module: sorted(i for i in imports if i.startswith("vextrus_nb.runbooks"))
        for module, imports in GRAPH.items()
        if not module.startswith(machinery)
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_no_import_cycle_between_modules() -> None:
    """Depth-first over the graph; a back edge is a cycle, reported as the modules on it."""
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(GRAPH.get(module, ())):
            if target not in GRAPH or target == module:
                continue
            if state.get(target) == "open":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []
