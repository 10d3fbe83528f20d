"""The ledger in formats auditors read: JSONL as chained (verifiable offline), JSON, CSV (flattened)."""

from __future__ import annotations

import json
from typing import Any, Literal

from vextrus_nb.evidence.chain import to_line

ExportFormat = Literal["jsonl", "json", "csv"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("jsonl", "json", "csv")


def export(entries: list[dict[str, Any]], fmt: ExportFormat) -> str:
    if fmt == "jsonl":  # each entry as chained: `vextrus-nb ledger verify --file` checks it offline
        return "".join(to_line(entry) + "\n" for entry in entries)
    if fmt == "json":
        return json.dumps(entries, indent=2, sort_keys=True, default=str) + "\n"
    import pandas as pd

    if not entries:
        return ""
    rows = []
    for entry in entries:
        row = {k: v for k, v in entry.items() if k not in ("summary", "steps", "parameters", "failures")}
        # Nested fields stay one JSON cell each; summary figures get a column each, for filtering.
        row["parameters"] = json.dumps(entry.get("parameters", {}), sort_keys=True)
        row["failures"] = json.dumps(entry.get("failures", []))
        row["steps"] = json.dumps(entry.get("steps", []))
        for key, value in (entry.get("summary") or {}).items():
            row[f"summary.{key}"] = json.dumps(value) if isinstance(value, list | dict) else value
        rows.append(row)
    return pd.DataFrame(rows).to_csv(index=False)
