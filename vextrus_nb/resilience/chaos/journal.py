"""The experiment's journal: JSON on disk, rewritten (atomically) at every step, so a run killed
at any moment leaves what it had injected and not yet undone. One active journal per environment
(the runbook holds the environment's lock, so one experiment at a time): the next run reads it
and undoes what it says is still injected before anything else.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vextrus_nb import paths
from vextrus_nb.resilience.chaos.catalogue import Injected


def active_path(env: str, outputs_dir: Path | None = None) -> Path:
    return (outputs_dir or paths.outputs_dir()) / "chaos" / f"{env}.journal.json"


@dataclass
class Journal:
    path: Path
    data: dict[str, Any]

    @classmethod
    def start(cls, path: Path, **header: Any) -> Journal:
        journal = cls(path, {**header, "open": True, "events": [], "faults": []})
        journal.event("started")
        return journal

    @classmethod
    def load(cls, path: Path) -> Journal | None:
        if not path.is_file():
            return None
        return cls(path, json.loads(path.read_text(encoding="utf-8")))

    def event(self, name: str, **fields: Any) -> None:
        self.data["events"].append(
            {"at": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": name, **fields}
        )
        self._write()

    def note_fault(self, injected: Injected) -> None:
        """Insert or update the fault's entry (its state grows while it is injected)."""
        entry = {k: v for k, v in asdict(injected).items() if k != "injected_at"}
        for existing in self.data["faults"]:
            if existing["id"] == injected.id:
                existing.update(entry)
                break
        else:
            self.data["faults"].append({**entry, "rolled_back": False})
        self._write()

    def rolled_back(self, fault_id: str, detail: str) -> None:
        for entry in self.data["faults"]:
            if entry["id"] == fault_id:
                entry["rolled_back"] = True
        self.event("rolled back", fault=fault_id, detail=detail)

    def still_injected(self) -> list[dict[str, Any]]:
        """What was injected (or half-injected) and not undone, newest first: the undo order."""
        return [f for f in reversed(self.data["faults"]) if not f.get("rolled_back")]

    def close(self, status: str) -> None:
        self.data["open"] = False
        self.event("ended", status=status)

    def archive(self, suffix: str) -> Path:
        """Move the journal aside (it is no longer the environment's active one)."""
        target = self.path.with_name(self.path.name.removesuffix(".json") + f".{suffix}.json")
        os.replace(self.path, target)
        self.path = target
        return target

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(dir=self.path.parent, prefix=".journal-")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(self.data, out, indent=1, default=str)
            out.flush()
            os.fsync(out.fileno())
        os.replace(scratch, self.path)
