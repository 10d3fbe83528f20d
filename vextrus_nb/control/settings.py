"""Which control store a deployment uses, configured once for all its environments.

Found in the file `$VEXTRUS_CONTROL` names, else `parameters/control.yaml`, else the embedded
default: files under the outputs directory (`outputs/ledger.jsonl`, flocks under
`outputs/locks/`), which a single host needs nothing more for. The shared store is a PostgreSQL
database (ledger, leases) and a versioned S3 bucket (sealed notebooks), neither inside the
platform it operates. Credentials are secret references, as everywhere: `{env: VAR}` or
`{file: PATH}` (a relative path is the settings file's directory's).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vextrus_nb import paths
from vextrus_nb.config import SecretRef
from vextrus_nb.errors import ConfigError, SecretUnavailable

CONTROL_VAR = "VEXTRUS_CONTROL"
DEFAULT_LEASE_TTL_S = 30.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LedgerDatabase(_Strict):
    host: str
    port: Annotated[int, Field(gt=0, lt=65536)]
    dbname: str = "vextrus_control"
    user: str
    password: SecretRef
    connect_timeout_s: Annotated[int, Field(ge=1, le=60)] = 3


class EvidenceBucket(_Strict):
    endpoint: str
    bucket: str
    region: str = "us-east-1"
    access_key: SecretRef
    secret_key: SecretRef


class TemporalService(_Strict):
    """Where workers poll and runs are submitted (vextrus_nb/service/)."""

    address: str  # host:port of the frontend
    namespace: str = "vextrus-runbooks"


class Paging(_Strict):
    """Where a failed submitted or scheduled run is announced: the platform's Alertmanager, whose
    existing routes reach the on-call (API v2)."""

    alertmanager_url: str


class SharedStoreSettings(_Strict):
    store: Literal["shared"]
    postgres: LedgerDatabase
    s3: EvidenceBucket
    lease_ttl_s: Annotated[float, Field(ge=2, le=3600)] = DEFAULT_LEASE_TTL_S
    temporal: TemporalService | None = None
    paging: Paging | None = None


@dataclass(frozen=True)
class Control:
    """The control settings in force: `shared` is None for the embedded files."""

    source: str  # the settings file, or "embedded default"
    shared: SharedStoreSettings | None
    base: Path  # what relative secret files are relative to

    @property
    def is_shared(self) -> bool:
        return self.shared is not None

    def describe(self) -> str:
        if self.shared is None:
            return f"files under {paths.outputs_dir()} (embedded default)"
        db, bucket = self.shared.postgres, self.shared.s3
        return f"PostgreSQL {db.host}:{db.port}/{db.dbname}, bucket s3://{bucket.bucket} at {bucket.endpoint}"

    def secret(self, ref: SecretRef, what: str) -> str:
        if ref.env:
            value = os.environ.get(ref.env)
            if value is None:
                raise SecretUnavailable(f"control store {what}: environment variable {ref.env} is not set")
            return value
        path = Path(ref.file or "")
        path = path if path.is_absolute() else self.base / path
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise SecretUnavailable(f"control store {what}: cannot read {path} ({exc.strerror})") from None


def settings_file() -> Path | None:
    if named := os.environ.get(CONTROL_VAR):
        return Path(named)
    default = paths.parameters_dir() / "control.yaml"
    return default if default.is_file() else None


def load() -> Control:
    """The control settings in force; a named file that is missing or invalid is an error, never
    a silent fall-back to the files (a team's run must not quietly leave the shared chain)."""
    path = settings_file()
    if path is None:
        return Control("embedded default", None, paths.outputs_dir())
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"control settings {path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"control settings {path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict) or raw.get("store") not in ("files", "shared"):
        raise ConfigError(
            f"control settings {path}: say `store: shared` (with postgres and s3) or `store: files`"
        )
    if raw["store"] == "files":
        if extra := sorted(set(raw) - {"store"}):
            raise ConfigError(f"control settings {path}: `store: files` takes no {', '.join(extra)}")
        return Control(str(path), None, path.parent)
    try:
        shared = SharedStoreSettings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"control settings {path}: {problems}") from None
    return Control(str(path), shared, path.parent.resolve())
