"""A runbook's declared parameters, and validation of what an operator passed.

Declarations come from the notebook's `parameters` cell via papermill's own
inspection; a parameter's type is its annotation, else the type of its
default. Values are checked before any kernel starts (papermill #396: `-p`
only understands scalars; lists and dicts come through YAML).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from vextrus_nb.config import describe_yaml_error
from vextrus_nb.errors import RunRefused

_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}


@dataclass(frozen=True)
class DeclaredParameter:
    name: str
    type_name: str  # one of _TYPES, or "any"
    default: Any
    help: str


def declared_parameters(notebook: Path) -> dict[str, DeclaredParameter]:
    import papermill

    declared = {}
    for name, info in papermill.inspect_notebook(str(notebook)).items():
        try:
            default = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            default = info["default"]
        annotated = str(info.get("inferred_type_name") or "None")
        type_name = annotated if annotated in _TYPES else type(default).__name__
        declared[name] = DeclaredParameter(
            name, type_name if type_name in _TYPES else "any", default, info.get("help") or ""
        )
    return declared


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
            clean[name] = TypeAdapter(_TYPES[spec.type_name]).validate_python(value, strict=True)
        except ValidationError:
            if spec.type_name == "float" and isinstance(value, int) and not isinstance(value, bool):
                clean[name] = float(value)
                continue
            problems.append(
                f"parameter '{name}' expects {spec.type_name}, got {type(value).__name__} {value!r}"
            )
    if problems:
        raise RunRefused("; ".join(problems))
    return clean


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """`-p key=value` the way papermill reads it: bool, None, int, float, else str."""
    from papermill.cli import _resolve_type  # papermill's own -p semantics

    parsed = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise RunRefused(f"malformed parameter '{pair}': expected key=value")
        parsed[key.strip()] = _resolve_type(raw)
    return parsed


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
