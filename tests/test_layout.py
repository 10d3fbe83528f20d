"""The layout a newcomer can read (docs/architecture.md), kept true by the import graph itself:
every notebook has its steps module and imports it; production code never imports the sandbox;
no engine imports the runbooks or the run machinery; no steps module imports another; the ground
floor imports nothing above it; no two modules import each other, however indirectly. An import
for typing only counts: it is a dependency all the same, and hiding one hides a cycle."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from vextrus_nb.run.runner import list_runbooks
from vextrus_nb.steps_location import module_name

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "vextrus_nb"
ARCHITECTURE = REPO / "docs" / "architecture.md"
# What a notebook may import of the package besides its own steps module.
NOTEBOOK_ALLOWED = {"vextrus_nb", "vextrus_nb.display"}


def _module_of(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every vextrus_nb module the file imports: at load, inside a function, or for typing only."""
    return _imports_of_source(path.read_text())


def _imports_of_source(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("vextrus_nb")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vextrus_nb"):
            # `from vextrus_nb.x import y` imports module x.y when y is one
            found |= {
                f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}") else node.module
                for a in node.names
            }
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
    imported = _imports_of_source(source)
    assert steps in imported, f"{runbook} does not import {steps}"
    assert imported <= NOTEBOOK_ALLOWED | {steps}, (
        f"{runbook} imports {imported - NOTEBOOK_ALLOWED - {steps}}"
    )


def test_an_import_for_typing_only_counts() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from vextrus_nb.run.session import Runbook\n"
    )
    assert _imports_of_source(source) == {"vextrus_nb.run.session"}


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


def _offenders(
    graph: Mapping[str, set[str]], importer: Callable[[str], bool], forbidden: Callable[[str, str], bool]
) -> dict[str, list[str]]:
    """Each module `importer` picks, with what it imports that `forbidden` rules out for it."""
    offenders = {
        module: sorted(i for i in imports if forbidden(module, i))
        for module, imports in graph.items()
        if importer(module)
    }
    return {m: i for m, i in offenders.items() if i}


def _engine_imports_of_runbooks(graph: Mapping[str, set[str]]) -> dict[str, list[str]]:
    machinery = ("vextrus_nb.runbooks", "vextrus_nb.run.", "vextrus_nb.cli")
    return _offenders(
        graph, lambda m: not m.startswith(machinery), lambda _, i: i.startswith("vextrus_nb.runbooks")
    )


def test_no_engine_imports_the_runbooks() -> None:
    assert _engine_imports_of_runbooks(GRAPH) == {}


def _engine_imports_of_the_run_machinery(graph: Mapping[str, set[str]]) -> dict[str, list[str]]:
    """Only what starts runs may import run/: the package's `start`, the steps, the CLI and the
    service; an engine acting for a run takes a `run_context.RunContext`."""
    machinery = ("vextrus_nb.runbooks.", "vextrus_nb.run.", "vextrus_nb.cli", "vextrus_nb.service.")
    return _offenders(
        graph,
        lambda m: m != "vextrus_nb" and not m.startswith(machinery),
        lambda _, i: i == "vextrus_nb.run" or i.startswith("vextrus_nb.run."),
    )


def test_no_engine_imports_the_run_machinery() -> None:
    assert _engine_imports_of_the_run_machinery(GRAPH) == {}


def _is_steps_module(module: str) -> bool:
    """vextrus_nb.runbooks.<family>.<name> (test_every_runbook_module_has_its_notebook holds them
    to their notebooks)."""
    return module.startswith("vextrus_nb.runbooks.") and module.count(".") == 3


def _steps_imports_of_steps(graph: Mapping[str, set[str]]) -> dict[str, list[str]]:
    return _offenders(graph, _is_steps_module, lambda m, i: _is_steps_module(i) and i != m)


def test_no_steps_module_imports_another() -> None:
    """What two runbooks share is an engine's: a steps module that imports another's steps
    borrows a runbook's parameters and record, not just its logic."""
    assert _steps_imports_of_steps(GRAPH) == {}


def _ground_floor() -> set[str]:
    """The modules docs/architecture.md's layout block lists under the ground floor."""
    text = ARCHITECTURE.read_text()
    start = text.index("the ground floor, which imports nothing above it:")
    listed = text[start : text.index("vextrus_nb/sandbox/", start)]
    return {f"vextrus_nb.{name}" for name in re.findall(r"(\w+)\.py", listed)}


GROUND_FLOOR = _ground_floor()


def test_the_ground_floor_is_listed_and_exists() -> None:
    assert "vextrus_nb.config" in GROUND_FLOOR and "vextrus_nb.paths" in GROUND_FLOOR
    assert {m for m in GROUND_FLOOR if m not in GRAPH} == set()


def _ground_floor_imports_from_above(
    graph: Mapping[str, set[str]], ground_floor: set[str]
) -> dict[str, list[str]]:
    return _offenders(graph, lambda m: m in ground_floor, lambda _, i: i not in ground_floor)


def test_the_ground_floor_imports_nothing_above_it() -> None:
    assert _ground_floor_imports_from_above(GRAPH, GROUND_FLOOR) == {}


def _cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Depth-first over the graph; a back edge is a cycle, reported as the modules on it."""
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if target not in graph or target == module:
                continue
            if state.get(target) == "open":
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return cycles


def test_no_import_cycle_between_modules() -> None:
    assert _cycles(GRAPH) == []


# Each rule above, shown to catch what it forbids (a rule that never fails proves nothing).
def test_the_rules_catch_what_they_forbid() -> None:
    assert _engine_imports_of_runbooks({"vextrus_nb.backup.take": {"vextrus_nb.runbooks.dr.backup"}}) == {
        "vextrus_nb.backup.take": ["vextrus_nb.runbooks.dr.backup"]
    }
    assert _engine_imports_of_the_run_machinery(
        {
            "vextrus_nb.backup.access": {"vextrus_nb.run.session", "vextrus_nb.run_context"},
            "vextrus_nb.service.activities": {"vextrus_nb.run.runner"},
            "vextrus_nb": {"vextrus_nb.run.session"},
        }
    ) == {"vextrus_nb.backup.access": ["vextrus_nb.run.session"]}
    assert _steps_imports_of_steps(
        {
            "vextrus_nb.runbooks.dr.platform_drill": {
                "vextrus_nb.runbooks.verify.smoke",
                "vextrus_nb.runbooks.dr",
                "vextrus_nb.smoke_sweep",
            },
            "vextrus_nb.runbooks.verify.smoke": {"vextrus_nb.smoke_sweep"},
        }
    ) == {"vextrus_nb.runbooks.dr.platform_drill": ["vextrus_nb.runbooks.verify.smoke"]}
    floor = {"vextrus_nb.config", "vextrus_nb.paths"}
    assert _ground_floor_imports_from_above(
        {
            "vextrus_nb.config": {"vextrus_nb.paths", "vextrus_nb.probes"},
            "vextrus_nb.probes": {"vextrus_nb.config"},
        },
        floor,
    ) == {"vextrus_nb.config": ["vextrus_nb.probes"]}
    assert _cycles(
        {
            "vextrus_nb.checks.model": {"vextrus_nb.checks.context"},
            "vextrus_nb.checks.context": {"vextrus_nb.checks.model"},
        }
    ) == [["vextrus_nb.checks.context", "vextrus_nb.checks.model", "vextrus_nb.checks.context"]]
