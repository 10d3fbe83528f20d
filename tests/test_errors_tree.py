"""One error tree: every exception class of the package is defined in vextrus_nb/errors.py,
drawn in that module's docstring under its base, and imported from there. A newcomer reads one
file to know what can go wrong and what to catch; these tests keep that file the whole story."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import types
from pathlib import Path

import vextrus_nb
from vextrus_nb import errors

REPO = Path(__file__).resolve().parent.parent
# A line of the drawn tree: "  * LinkError (also ValueError)"; two spaces a level.
TREE_LINE = re.compile(r"^(?P<indent> *)\* (?P<name>\w+)(?: \(also (?P<also>\w+(?:, \w+)*)\))?$")


def package_modules() -> list[types.ModuleType]:
    """Every module of the package, imported (walk_packages imports each package to walk it)."""
    return [
        importlib.import_module(info.name)
        for info in pkgutil.walk_packages(vextrus_nb.__path__, f"{vextrus_nb.__name__}.")
    ]


def exceptions_defined_outside_errors(modules: list[types.ModuleType]) -> list[str]:
    """module.Class for each exception class a module defines itself (not one it imports)."""
    return sorted(
        f"{module.__name__}.{name}"
        for module in modules
        if module.__name__ != errors.__name__
        for name, value in vars(module).items()
        if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__
    )


def error_classes() -> dict[str, type[BaseException]]:
    return {
        name: value
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == errors.__name__
    }


def drawn_tree(docstring: str) -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """Each class the tree draws: (the class drawn one level out above it, or None for the root;
    the other bases its "(also ...)" names)."""
    drawn: dict[str, tuple[str | None, tuple[str, ...]]] = {}
    above: list[tuple[int, str]] = []  # (indent, name) of the open branches
    for line in docstring.splitlines():
        match = TREE_LINE.match(line)
        if match is None:
            continue
        indent = len(match["indent"])
        while above and above[-1][0] >= indent:
            above.pop()
        also = tuple(match["also"].split(", ")) if match["also"] else ()
        drawn[match["name"]] = (above[-1][1] if above else None, also)
        above.append((indent, match["name"]))
    return drawn


def tree_problems(docstring: str, classes: dict[str, type[BaseException]]) -> list[str]:
    """How the drawn tree differs from the classes: one missing, one drawn that is not a class,
    one drawn under the wrong base or without its other bases."""
    drawn = drawn_tree(docstring)
    problems = [f"{name} is not in the tree" for name in classes if name not in drawn]
    problems += [f"{name} is drawn but is no class of errors.py" for name in drawn if name not in classes]
    for name, cls in classes.items():
        if name not in drawn:
            continue
        parent, also = drawn[name]
        first, *others = cls.__bases__
        wanted_parent = None if first is Exception else first.__name__
        if parent != wanted_parent:
            problems.append(f"{name} is drawn under {parent}, but its base is {first.__name__}")
        other_bases = tuple(b.__name__ for b in others)
        if also != other_bases:
            problems.append(f"{name} is drawn with other bases {also}, but has {other_bases}")
    return problems


def imports_of_errors_elsewhere(paths: list[Path], names: set[str], root: Path = REPO) -> list[str]:
    """file:line for each error class reached through another module than vextrus_nb.errors:
    imported from it (a re-export) or read as an attribute of it (`postgres.ReplicationError`)."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
            if (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("vextrus_nb")
                and node.module != errors.__name__
                and any(a.name in names for a in node.names)
            ):
                found.append(f"{where} from {node.module}")
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Load)
                and node.attr in names
                and not (isinstance(node.value, ast.Name) and node.value.id == "errors")
            ):
                found.append(f"{where} {ast.unparse(node)}")
    return found


def test_every_exception_class_of_the_package_is_defined_in_errors() -> None:
    assert exceptions_defined_outside_errors(package_modules()) == []


def test_every_error_class_is_in_the_docstring_tree_under_its_base() -> None:
    assert errors.__doc__
    assert tree_problems(errors.__doc__, error_classes()) == []


def test_errors_are_imported_from_errors_itself() -> None:
    paths = sorted((REPO / "vextrus_nb").rglob("*.py")) + sorted((REPO / "tests").rglob("*.py"))
    assert imports_of_errors_elsewhere(paths, set(error_classes())) == []


# The checks above pass vacuously if they cannot see a stray; these show they do.


def test_an_exception_class_defined_elsewhere_is_found() -> None:
    stray = types.ModuleType("vextrus_nb.stray")
    stray.StrayError = type("StrayError", (ValueError,), {"__module__": stray.__name__})
    stray.ConfigError = errors.ConfigError  # imported from errors: not a stray
    stray.Helper = type("Helper", (), {"__module__": stray.__name__})  # not an exception
    assert exceptions_defined_outside_errors([stray, errors]) == ["vextrus_nb.stray.StrayError"]


def test_a_class_missing_from_the_tree_or_drawn_under_the_wrong_base_is_found() -> None:
    assert errors.__doc__
    without = errors.__doc__.replace("    * LoadPlanRefused\n", "")
    assert tree_problems(without, error_classes()) == ["LoadPlanRefused is not in the tree"]
    moved = errors.__doc__.replace("    * LoadPlanRefused\n", "  * LoadPlanRefused\n")
    assert tree_problems(moved, error_classes()) == [
        "LoadPlanRefused is drawn under VextrusError, but its base is LoadError"
    ]
    bare = errors.__doc__.replace("* LinkError (also ValueError)", "* LinkError")
    assert tree_problems(bare, error_classes()) == [
        "LinkError is drawn with other bases (), but has ('ValueError',)"
    ]
    new = {**error_classes(), "NewError": type("NewError", (errors.VextrusError,), {})}
    assert tree_problems(errors.__doc__, new) == ["NewError is not in the tree"]


def test_an_error_reached_through_another_module_is_found(tmp_path: Path) -> None:
    importer = tmp_path / "importer.py"
    importer.write_text(
        "from vextrus_nb.backup.manifest import BackupError\n"
        "from vextrus_nb.errors import ConfigError\n"
        "from vextrus_nb.ha import postgres\n"
        "from vextrus_nb import errors\n"
        "postgres.ReplicationError, errors.SentinelError, ConfigError, BackupError\n"
    )
    assert imports_of_errors_elsewhere([importer], set(error_classes()), root=tmp_path) == [
        "importer.py:1 from vextrus_nb.backup.manifest",
        "importer.py:5 postgres.ReplicationError",
    ]
