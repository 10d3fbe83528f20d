"""Where credentials live, behind one interface: each store keeps a secret's current,
pending and previous versions, and writes them so that a crash mid-write leaves
either the old or the new file, never half of one.

- FilesStore: Docker secrets files, one file per version (`pg_auth`, `pg_auth.pending`,
  `pg_auth.previous`), what compose mounts under /run/secrets and the sandbox's services read.
- EnvFileStore: the compose project's `.env` (`PG_AUTH`, `PG_AUTH_PENDING`, `PG_AUTH_PREVIOUS`),
  rewritten whole through a temporary file, the previous content kept as `.env.bak`.
- KubeSecretStore: one Kubernetes Secret (keys `pg_auth`, `pg_auth.pending`, ...), replaced
  with its resourceVersion so a concurrent change is refused rather than overwritten, and
  annotated with each secret's current fingerprint (its version).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vextrus_nb.config import Environment, resolve_path
from vextrus_nb.errors import StoreUnwritable
from vextrus_nb.secrets.private_file import write_private
from vextrus_nb.secrets.versions import STAGES, Versions, fingerprint


class SecretStore(Protocol):
    @property
    def description(self) -> str: ...

    def read(self, key: str) -> Versions: ...

    def write(self, key: str, versions: Versions) -> None: ...

    def check_writable(self) -> None: ...


def _probe_directory(directory: Path, what: str) -> None:
    if not directory.is_dir():
        raise StoreUnwritable(f"{what}: {directory} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".vextrus-write-probe.")
    except OSError as exc:
        raise StoreUnwritable(f"{what}: cannot write in {directory} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(probe)


@dataclass
class FilesStore:
    directory: Path

    @property
    def description(self) -> str:
        return f"secrets files in {self.directory}"

    def _path(self, key: str, stage: str) -> Path:
        return self.directory / (key if stage == "current" else f"{key}.{stage}")

    def read(self, key: str) -> Versions:
        found: dict[str, str | None] = {}
        for stage in STAGES:
            path = self._path(key, stage)
            found[stage] = path.read_text().strip() if path.is_file() else None
        return Versions(**found)

    def write(self, key: str, versions: Versions) -> None:
        # New values land before old ones go: a crash in between leaves an extra version, never a lost one.
        for stage in ("previous", "pending", "current"):
            value = getattr(versions, stage)
            if value is not None:
                write_private(self._path(key, stage), value)
        for stage in STAGES:
            if getattr(versions, stage) is None:
                self._path(key, stage).unlink(missing_ok=True)

    def check_writable(self) -> None:
        _probe_directory(self.directory, "secret store")


_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def env_variable(key: str, stage: str = "current") -> str:
    base = re.sub(r"[^A-Za-z0-9]+", "_", key).upper()
    return base if stage == "current" else f"{base}_{stage.upper()}"


@dataclass
class EnvFileStore:
    path: Path

    @property
    def description(self) -> str:
        return f"env file {self.path}"

    def _lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.is_file() else []

    def _values(self) -> dict[str, str]:
        values = {}
        for line in self._lines():
            if (match := _ENV_LINE.match(line)) and not line.lstrip().startswith("#"):
                raw = match.group(2)
                if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
                    raw = raw[1:-1]
                values[match.group(1)] = raw
        return values

    def read(self, key: str) -> Versions:
        values = self._values()
        return Versions(**{stage: values.get(env_variable(key, stage)) or None for stage in STAGES})

    def write(self, key: str, versions: Versions) -> None:
        wanted = {env_variable(key, stage): getattr(versions, stage) for stage in STAGES}
        lines, seen = [], set()
        for line in self._lines():
            match = _ENV_LINE.match(line)
            name = match.group(1) if match and not line.lstrip().startswith("#") else None
            if name in wanted:
                seen.add(name)
                if wanted[name] is not None:
                    lines.append(f"{name}={wanted[name]}")
                continue
            lines.append(line)
        lines += [f"{n}={v}" for n, v in wanted.items() if v is not None and n not in seen]
        if self.path.is_file():
            backup = self.path.with_name(self.path.name + ".bak")
            shutil.copy2(self.path, backup)
            backup.chmod(0o600)
        write_private(self.path, "\n".join(lines) + "\n")

    def check_writable(self) -> None:
        if self.path.exists() and not self.path.is_file():
            raise StoreUnwritable(f"env file {self.path} is not a regular file")
        _probe_directory(self.path.parent, f"env file {self.path}")


VERSION_ANNOTATION = "vextrus.io/version."


@dataclass
class KubeSecretStore:
    api: Any  # kubernetes.client.CoreV1Api
    namespace: str
    name: str

    @property
    def description(self) -> str:
        return f"Kubernetes Secret {self.namespace}/{self.name}"

    @staticmethod
    def _data_key(key: str, stage: str) -> str:
        return key if stage == "current" else f"{key}.{stage}"

    def _read_secret(self) -> Any | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.read_namespaced_secret(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def read(self, key: str) -> Versions:
        secret = self._read_secret()
        data = (secret.data or {}) if secret is not None else {}
        found = {}
        for stage in STAGES:
            encoded = data.get(self._data_key(key, stage))
            found[stage] = base64.b64decode(encoded).decode() if encoded else None
        return Versions(**found)

    def write(self, key: str, versions: Versions) -> None:
        from kubernetes import client

        secret = self._read_secret()
        data = dict((secret.data or {}) if secret is not None else {})
        for stage in STAGES:
            value = getattr(versions, stage)
            if value is None:
                data.pop(self._data_key(key, stage), None)
            else:
                data[self._data_key(key, stage)] = base64.b64encode(value.encode()).decode()
        annotations = dict((secret.metadata.annotations or {}) if secret is not None else {})
        annotations[VERSION_ANNOTATION + key] = fingerprint(versions.current)
        metadata = client.V1ObjectMeta(
            name=self.name,
            namespace=self.namespace,
            annotations=annotations,
            resource_version=secret.metadata.resource_version if secret is not None else None,
        )
        body = client.V1Secret(metadata=metadata, data=data, type="Opaque")
        if secret is None:
            self.api.create_namespaced_secret(self.namespace, body)
        else:  # a 409 Conflict if someone changed it since we read it: nothing is overwritten
            self.api.replace_namespaced_secret(self.name, self.namespace, body)

    def check_writable(self) -> None:
        """A server-side dry run of a write: the API server's own authorisation answers."""
        from kubernetes.client.exceptions import ApiException

        try:
            secret = self._read_secret()
            if secret is not None:
                self.api.replace_namespaced_secret(self.name, self.namespace, secret, dry_run="All")
        except ApiException as exc:
            raise StoreUnwritable(f"{self.description}: {exc.status} {exc.reason}") from None


def store_for(env: Environment) -> SecretStore:
    settings = env.rotation_settings().store
    if settings.kind == "files":
        return FilesStore(resolve_path(settings.path or ""))
    if settings.kind == "env_file":
        return EnvFileStore(resolve_path(settings.path or ""))
    from vextrus_nb.drivers.kube import KubeDriver

    driver = KubeDriver.for_environment(env)
    return KubeSecretStore(driver.core, settings.namespace, settings.secret_name)
