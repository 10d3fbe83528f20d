"""The sandbox's state: ports, processes and injected faults, in one directory."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vextrus_nb.errors import SandboxError

STATE_FILE = "state.json"
FAULTS_FILE = "faults.json"


@dataclass
class SandboxState:
    root: Path
    ports: dict[str, int]
    control_port: int
    pg_bindir: str
    pg_datadir: str
    scale: float
    started_at: str
    services_pid: int | None = None
    redis_pid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def secrets_dir(self) -> Path:
        return self.root / "secrets"

    def save(self) -> None:
        data = asdict(self)
        data["root"] = str(self.root)
        tmp = self.root / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, self.root / STATE_FILE)

    @classmethod
    def load(cls, root: Path) -> SandboxState:
        path = root / STATE_FILE
        if not path.is_file():
            raise SandboxError(f"no sandbox at {root}; start one with `vextrus-nb sandbox up`")
        data = json.loads(path.read_text())
        data["root"] = Path(data["root"])
        return cls(**data)

    def secret(self, name: str) -> str:
        return (self.secrets_dir / name).read_text().strip()

    def write_secret(self, name: str, value: str) -> None:
        self.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.secrets_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)


def read_faults(root: Path) -> dict[str, dict[str, Any]]:
    path = root / FAULTS_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write_faults(root: Path, faults: dict[str, dict[str, Any]]) -> None:
    tmp = root / (FAULTS_FILE + ".tmp")
    tmp.write_text(json.dumps(faults, indent=2, sort_keys=True))
    os.replace(tmp, root / FAULTS_FILE)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
