"""What must never reach the evidence: secret values, wherever they appear, and
parameters whose names say they are secrets (papermill #271, #706)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REDACTED = "***REDACTED***"
# Parameter names whose values are secrets by convention.
SECRET_NAME = re.compile(
    r"pass(word|wd|phrase)?|secret|token|credential|api[_-]?key|private[_-]?key|^key$|_key$", re.IGNORECASE
)
# Shorter values would be scrubbed out of ordinary words; a real secret is longer.
MIN_SCRUB_LENGTH = 6


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def redact_parameters(parameters: dict[str, Any]) -> dict[str, Any]:
    return {k: (REDACTED if is_secret_name(k) and v not in (None, "") else v) for k, v in parameters.items()}


class Scrubber:
    """Replaces every known secret value, wherever it appears in a JSON-like tree."""

    def __init__(self, values: Iterable[str] = (), spill: Path | None = None):
        self._values: set[str] = set()
        # Under the runner, every value the kernel learns is also appended to this private
        # file, so the runner's final scrub knows secrets it could not resolve itself
        # (a rotated value, a withdrawn one): see runner._execute.
        self.spill = spill
        self.add(values)

    def add(self, values: Iterable[str]) -> None:
        new = [
            v for v in values if isinstance(v, str) and len(v) >= MIN_SCRUB_LENGTH and v not in self._values
        ]
        self._values.update(new)
        if new and self.spill is not None:
            with self.spill.open("a") as handle:
                handle.writelines(json.dumps(v) + "\n" for v in new)

    def add_spilled(self, path: Path) -> None:
        """The values a kernel spilled to `path` (one JSON string per line)."""
        if path.exists():
            self.add(json.loads(line) for line in path.read_text().splitlines() if line.strip())

    def text(self, text: str) -> str:
        # Longest first, so a secret containing another is replaced whole.
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def tree(self, node: Any) -> Any:
        if isinstance(node, str):
            return self.text(node)
        if isinstance(node, list):
            return [self.tree(item) for item in node]
        if isinstance(node, dict):
            return {key: self.tree(value) for key, value in node.items()}
        return node
