"""A runbook's declared parameters, and validation of what an operator passed.

Declarations come from the notebook's `parameters` cell via papermill's own
inspection; a parameter's type is its annotation, else the type of its
default. A parameter that may be left unset says so with None: it is declared
`name: "Optional[float]" = None` (a string annotation, so the cell needs no
import; papermill's inspection cannot read `float | None`), and None then means
"use the environment's setting", while every other value, 0 included, means
itself. Values are checked before any kernel starts (papermill #396: `-p`
only understands scalars; lists and dicts come through YAML).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from vextrus_nb import paths
from vextrus_nb.config import describe_yaml_error
from vextrus_nb.errors import RunRefused

_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}


# What a bool parameter accepts as text, in any case (`-p dry_run=false`, as typer and kubectl take it).
_BOOL_WORDS = {
    "true": True,
    "yes": True,
    "on": True,
    "1": True,
    "false": False,
    "no": False,
    "off": False,
    "0": False,
}
_OPTIONAL = re.compile(r"^Optional\[(\w+)\]$")


@dataclass(frozen=True)
class DeclaredParameter:
    name: str
    type_name: str  # one of _TYPES, or "any"
    default: Any
    help: str
    nullable: bool = False  # None is a value: "unset, use the environment's setting"


def _declared_type(annotation: str, default: Any) -> tuple[str, bool]:
    """(type name, nullable) from an annotation such as `float` or `Optional[float]`, else the default."""
    nullable = default is None
    if optional := _OPTIONAL.match(annotation):
        annotation, nullable = optional.group(1), True
    type_name = annotation if annotation in _TYPES else type(default).__name__
    return (type_name if type_name in _TYPES else "any"), nullable


def declared_parameters(notebook: Path) -> dict[str, DeclaredParameter]:
    declared = {}
    for name, info in _inspected(notebook).items():
        try:
            default = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            default = info["default"]
        type_name, nullable = _declared_type(str(info.get("inferred_type_name") or "None"), default)
        declared[name] = DeclaredParameter(name, type_name, default, info.get("help") or "", nullable)
    return declared


def _inspected(notebook: Path) -> dict[str, dict[str, Any]]:
    """papermill.inspect_notebook's reading of the parameters cell, kept under the notebook's
    content hash: importing papermill costs 0.4-0.8 s, and a refusal must not wait for it. A
    notebook edited since is a different key; an unwritable cache only costs the time."""
    from importlib.metadata import version

    content = notebook.read_bytes()
    key = hashlib.sha256(content + version("papermill").encode()).hexdigest()
    kept = paths.cache_dir() / "parameters" / f"{key}.json"
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads(kept.read_text()))
    import papermill

    found = {
        name: {key: info.get(key) for key in ("default", "inferred_type_name", "help")}
        for name, info in papermill.inspect_notebook(str(notebook)).items()
    }
    with contextlib.suppress(OSError):
        kept.parent.mkdir(parents=True, exist_ok=True)
        unfinished = kept.with_suffix(f".{os.getpid()}.tmp")
        unfinished.write_text(json.dumps(found))
        unfinished.replace(kept)
    return found


def effective_values(declared: dict[str, DeclaredParameter], given: dict[str, Any]) -> dict[str, Any]:
    """Every declared parameter with the value the run will use: the defaults, then what was given."""
    return {name: spec.default for name, spec in declared.items()} | given


def _coerce(spec: DeclaredParameter, value: Any) -> Any:
    """The value as the declared type, or ValueError saying what was expected."""
    if value is None and spec.nullable:
        return None
    if spec.type_name == "bool" and isinstance(value, str | int) and not isinstance(value, bool):
        word = str(value).strip().lower()
        if word in _BOOL_WORDS:
            return _BOOL_WORDS[word]
        raise ValueError(f"expects bool ({'/'.join(_BOOL_WORDS)}, any case), got {value!r}")
    if spec.type_name == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    try:
        return TypeAdapter(_TYPES[spec.type_name]).validate_python(value, strict=True)
    except ValidationError:
        unset = " or None" if spec.nullable else ""
        raise ValueError(f"expects {spec.type_name}{unset}, got {type(value).__name__} {value!r}") from None


def validate(declared: dict[str, DeclaredParameter], given: dict[str, Any]) -> dict[str, Any]:
    """The given values, checked against the declarations; RunRefused names every problem."""
    problems = []
    clean: dict[str, Any] = {}
    for name, value in given.items():
        if name not in declared:
            problems.append(f"unknown parameter '{name}' (declared: {', '.join(sorted(declared))})")
            continue
        spec = declared[name]
        if spec.type_name == "any":
            clean[name] = value
            continue
        try:
            clean[name] = _coerce(spec, value)
        except ValueError as exc:
            problems.append(f"parameter '{name}' {exc}")
    if problems:
        raise RunRefused("; ".join(problems))
    return clean


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """`-p key=value` the way papermill reads it: bool, None, int, float, else str."""
    parsed = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise RunRefused(f"malformed parameter '{pair}': expected key=value")
        parsed[key.strip()] = papermill_value(raw)
    return parsed


def papermill_value(raw: str) -> Any:
    """papermill.cli's `-p` typing, restated: importing papermill costs a refusal 0.8 s (its I/O
    layer imports boto3), and a refusal must not wait for it. tests/test_parameters.py holds
    the two to agreeing."""
    if raw in _PAPERMILL_CONSTANTS:
        return _PAPERMILL_CONSTANTS[raw]
    for number in (int, float):
        try:
            return number(raw)
        except ValueError:
            pass
    return raw


_PAPERMILL_CONSTANTS: dict[str, Any] = {"True": True, "False": False, "None": None}


def load_file(path: Path) -> dict[str, Any]:
    """A YAML parameters file (how lists and dicts are passed)."""
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise RunRefused(f"cannot read parameters file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise RunRefused(describe_yaml_error(path, exc)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RunRefused(f"parameters file {path} must hold a mapping of name: value")
    return data
