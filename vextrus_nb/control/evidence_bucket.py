"""Sealed notebooks (and their JSON/JUnit exports) in the shared store's versioned S3 bucket.

Each object is uploaded under its outputs path and the ledger entry names bucket, key and the
version the upload made. Versioning keeps what was sealed even when the key is overwritten or
deleted, so `ledger verify` can tell an intact object from a changed or deleted one by version.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vextrus_nb.control.settings import Control
from vextrus_nb.errors import ControlStoreError, ControlStoreUnavailable, first_line


def where(control: Control) -> str:
    assert control.shared is not None
    return f"control store bucket s3://{control.shared.s3.bucket} at {control.shared.s3.endpoint}"


_clients: dict[tuple[str, str, str], Any] = {}
_clients_lock = threading.Lock()


def client(control: Control) -> Any:
    """The bucket's S3 client, one per process and settings: making one costs more than an
    upload (boto3 loads its service model), and clients are safe to share across threads."""
    import boto3
    from botocore.config import Config

    assert control.shared is not None
    s3 = control.shared.s3
    access_key = control.secret(s3.access_key, "s3.access_key")
    secret_key = control.secret(s3.secret_key, "s3.secret_key")
    key = (s3.endpoint, access_key, secret_key)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = boto3.client(
                "s3",
                endpoint_url=s3.endpoint,
                region_name=s3.region,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                config=Config(
                    s3={"addressing_style": "path"},
                    connect_timeout=3,
                    read_timeout=10,
                    retries={"max_attempts": 2, "mode": "standard"},
                ),
            )
        return _clients[key]


def _unavailable(control: Control, exc: Exception) -> ControlStoreUnavailable:
    return ControlStoreUnavailable(f"{where(control)} cannot be reached: {first_line(exc)}")


@dataclass(frozen=True)
class StoredObject:
    bucket: str
    key: str
    version_id: str

    def as_record(self) -> dict[str, str]:
        return {"bucket": self.bucket, "key": self.key, "version_id": self.version_id}


def ensure_bucket(control: Control) -> None:
    """Create the bucket with versioning on (the sandbox's and a new deployment's first step)."""
    from botocore.exceptions import ClientError

    assert control.shared is not None
    s3, name = client(control), control.shared.s3.bucket
    try:
        s3.head_bucket(Bucket=name)
    except ClientError:
        s3.create_bucket(Bucket=name)
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})


def upload(control: Control, path: Path, key: str) -> StoredObject:
    """Put one file under `key`; refuses a bucket whose versioning is off (nothing could then
    prove the object is what was sealed)."""
    from botocore.exceptions import BotoCoreError, ClientError

    assert control.shared is not None
    name = control.shared.s3.bucket
    try:
        answer = client(control).put_object(Bucket=name, Key=key, Body=path.read_bytes())
    except (BotoCoreError, ClientError) as exc:
        raise _unavailable(control, exc) from None
    version = answer.get("VersionId")
    if not version or version == "null":
        raise ControlStoreError(f"{where(control)} has versioning off: enable it before sealing into it")
    return StoredObject(name, key, version)


def check(control: Control, stored: dict[str, str], sha256: str) -> str:
    """ "" when the sealed version is in the bucket, still the key's current version and hashes
    to `sha256`; else what happened to it."""
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = client(control)
    bucket, key, version = stored["bucket"], stored["key"], stored["version_id"]
    try:
        body = s3.get_object(Bucket=bucket, Key=key, VersionId=version)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "NoSuchVersion", "404"):
            return f"object s3://{bucket}/{key} version {version} was deleted"
        raise _unavailable(control, exc) from None
    except BotoCoreError as exc:
        raise _unavailable(control, exc) from None
    if hashlib.sha256(body).hexdigest() != sha256:
        return f"object s3://{bucket}/{key} version {version} does not hash to what was sealed"
    try:
        current = s3.head_object(Bucket=bucket, Key=key).get("VersionId")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404", "NotFound"):
            raise _unavailable(control, exc) from None
        return f"object s3://{bucket}/{key} was deleted (a delete marker hides version {version})"
    except BotoCoreError as exc:
        raise _unavailable(control, exc) from None
    if current != version:
        return (
            f"object s3://{bucket}/{key} was changed after the run "
            f"(current version {current}, sealed {version})"
        )
    return ""


def download(control: Control, stored: dict[str, str], target: Path) -> None:
    """The sealed version into `target` (written beside and renamed: never half a notebook)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        body = (
            client(control)
            .get_object(Bucket=stored["bucket"], Key=stored["key"], VersionId=stored["version_id"])["Body"]
            .read()
        )
    except (BotoCoreError, ClientError) as exc:
        raise _unavailable(control, exc) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.download")
    partial.write_bytes(body)
    partial.replace(target)
