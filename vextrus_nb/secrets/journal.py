"""The write-ahead record of each credential's rotation (Vault's WAL, in spirit): before
a step touches anything, the record says so; after it, the record says it is done.
A run that finds a record in progress finishes that rotation instead of starting another.

It holds fingerprints, never values, and lives in the environment's
`rotation.state_directory`, never in an output notebook.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vextrus_nb.clock import now_utc
from vextrus_nb.secrets.private_file import write_private

IN_PROGRESS, COMPLETED, ROLLED_BACK = "in progress", "completed", "rolled back"


@dataclass
class JournalEntry:
    credential: str
    rotation_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    status: str = IN_PROGRESS
    step: str = "create"
    step_done: bool = False
    current_fingerprint: str = ""  # the value being replaced
    pending_fingerprint: str = ""  # the value replacing it
    started_at: str = field(default_factory=now_utc)
    updated_at: str = field(default_factory=now_utc)
    finished_at: str = ""
    retire_previous_after: str = ""  # JWT: when the old key stops being accepted
    note: str = ""

    @property
    def in_progress(self) -> bool:
        return self.status == IN_PROGRESS


@dataclass
class Journal:
    directory: Path

    def _path(self, credential: str) -> Path:
        return self.directory / f"{credential}.json"

    def load(self, credential: str) -> JournalEntry | None:
        path = self._path(credential)
        if not path.is_file():
            return None
        return JournalEntry(**json.loads(path.read_text()))

    def save(self, entry: JournalEntry) -> None:
        entry.updated_at = now_utc()
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(self._path(entry.credential), json.dumps(asdict(entry), indent=2))

    def interrupted(self) -> list[JournalEntry]:
        if not self.directory.is_dir():
            return []
        entries = [self.load(p.stem) for p in sorted(self.directory.glob("*.json"))]
        return [e for e in entries if e is not None and e.in_progress]
