"""The sandbox's event log: what was started, stopped, broken and healed, and when.

It plays the part of `kubectl get events` or `docker events` for the local
driver, so triage can put "finance was stopped at 02:14" on its timeline. One
JSON object per line, appended under the sandbox's lock.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EVENTS_FILE = "events.jsonl"


def record(root: Path, component: str, reason: str, message: str, kind: str = "Normal") -> None:
    """Append one event; `kind` is Normal or Warning, as Kubernetes events are."""
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "component": component,
        "kind": kind,
        "reason": reason,
        "message": message,
    }
    with open(root / EVENTS_FILE, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def read(root: Path, since: datetime | None = None) -> list[dict[str, Any]]:
    """Events at or after `since` (all when None), oldest first; a torn last line is skipped."""
    path = root / EVENTS_FILE
    if not path.is_file():
        return []
    events = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
            at = datetime.fromisoformat(entry["at"])
        except (ValueError, KeyError):
            continue
        if since is None or at >= since:
            events.append({**entry, "at": at})
    return events
