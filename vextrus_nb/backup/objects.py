"""The object store (MinIO: the ERP's uploaded documents): every object of the platform's
buckets copied into the set, and restored into a bucket and proven.

Copied into the set rather than streamed to the second store: the set stays self-contained
(the same file manifest, sizes and sha256, proves every object before a restore, and the S3
copy of the set carries them off the host with the rest), and a set does not depend on a store
that may be the one lost. The price is the set's size; the sandbox's documents are small, and
a production bucket of terabytes wants the store's own replication instead (said in docs/dr.md).

A restore goes into a scratch bucket (`<bucket>-restore-<run id>`) by default; `target=live`
first copies the live bucket's objects to `<bucket>-before-<run id>` (the rollback), then puts
the set's objects and removes the ones the set does not hold. Either way each restored object
is read back and its size and sha256 compared with the manifest's.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from vextrus_nb.backup.manifest import ObjectEntry, sha256_of
from vextrus_nb.errors import BackupError

OBJECTS_DIR = "objects"
BACKED_UP_BUCKETS = ("vextrus-files",)
"""The platform's buckets whose objects a set holds (vextrus-backups holds the sets' copies)."""
_CHUNK = 1 << 20


def s3_client(endpoint_url: str, access_key: str, secret_key: str, timeout_s: float = 30.0) -> Any:
    """A boto3 client for the platform's object store: path-style (MinIO and its stand-ins)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
        ),
    )


def _error_text(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
    return f"{type(exc).__name__}: {exc}"


def list_keys(client: Any, bucket: str) -> Iterator[str]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            yield item["Key"]


def _safe_relative(key: str) -> PurePosixPath:
    """The key as a path inside the set; a key that would climb out of it is refused."""
    path = PurePosixPath(key)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise BackupError(f"object key {key!r} cannot be stored as a file of the set")
    return path


def copy_buckets(
    client: Any, set_dir: Path, buckets: tuple[str, ...] = BACKED_UP_BUCKETS
) -> list[ObjectEntry]:
    """Every object of `buckets` into `set_dir/objects/<bucket>/<key>`, with its size and sha256."""
    entries = []
    for bucket in buckets:
        try:
            keys = sorted(list_keys(client, bucket))
        except Exception as exc:
            raise BackupError(f"object store: cannot list bucket {bucket} ({_error_text(exc)})") from None
        for key in keys:
            relative = PurePosixPath(OBJECTS_DIR, bucket) / _safe_relative(key)
            target = set_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(target))
            entries.append(
                ObjectEntry(
                    bucket=bucket,
                    key=key,
                    file=str(relative),
                    bytes=target.stat().st_size,
                    sha256=sha256_of(target),
                )
            )
    return entries


def object_digest(client: Any, bucket: str, key: str) -> tuple[int, str]:
    """(size, sha256) of an object as the store serves it, read back in full."""
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    digest, size = hashlib.sha256(), 0
    while chunk := body.read(_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def scratch_bucket(bucket: str, run_id: str, role: str = "restore") -> str:
    # S3 bucket names hold 63 characters of [a-z0-9-]; a run id is 12 hex digits.
    return f"{bucket[:40]}-{role}-{run_id}"


@dataclass
class BucketRestore:
    bucket: str  # the bucket the set's objects came from
    into: str  # where they are now
    objects: int = 0
    bytes: int = 0
    seconds: float = 0.0
    removed: int = 0  # live objects the set does not hold (kept in `kept_as`)
    kept_as: str = ""
    mismatches: list[str] = field(default_factory=list)

    @property
    def proven(self) -> bool:
        return not self.mismatches

    def row(self) -> dict[str, Any]:
        return {
            "datastore": f"objects ({self.bucket})",
            "restored into": self.into,
            "objects": self.objects,
            "MiB": round(self.bytes / 2**20, 2),
            "seconds": self.seconds,
            "proven": self.proven,
            "mismatches": "; ".join(self.mismatches[:5]),
            "old data kept as": self.kept_as,
        }


def prove(client: Any, bucket: str, entries: list[ObjectEntry], exact: bool = True) -> list[str]:
    """Each object's size and sha256 in `bucket` against the manifest; with `exact`, an object
    the manifest does not list is a mismatch too."""
    mismatches = []
    for entry in entries:
        try:
            size, digest = object_digest(client, bucket, entry.key)
        except Exception as exc:
            mismatches.append(f"{entry.key}: not readable ({_error_text(exc)})")
            continue
        if size != entry.bytes:
            mismatches.append(f"{entry.key}: {size} bytes, manifest says {entry.bytes}")
        elif digest != entry.sha256:
            mismatches.append(f"{entry.key}: same size, sha256 differs from the manifest")
    if exact:
        extra = sorted(set(list_keys(client, bucket)) - {e.key for e in entries})
        mismatches += [f"{key}: not in the manifest" for key in extra]
    return mismatches


def _ensure_bucket(client: Any, bucket: str) -> None:
    try:
        client.head_bucket(Bucket=bucket)
    except Exception:
        client.create_bucket(Bucket=bucket)


def restore_bucket(
    client: Any, set_dir: Path, bucket: str, entries: list[ObjectEntry], run_id: str, live: bool
) -> BucketRestore:
    """The set's objects of `bucket` into a scratch bucket, or (live) into the bucket itself with
    its previous objects kept in a `-before-` bucket; then every object proven."""
    started = time.perf_counter()
    into = bucket if live else scratch_bucket(bucket, run_id)
    outcome = BucketRestore(bucket, into, len(entries), sum(e.bytes for e in entries))
    _ensure_bucket(client, into)
    if live:
        outcome.kept_as = scratch_bucket(bucket, run_id, "before")
        _ensure_bucket(client, outcome.kept_as)
        current = list(list_keys(client, bucket))
        for key in current:
            client.copy_object(Bucket=outcome.kept_as, Key=key, CopySource={"Bucket": bucket, "Key": key})
        doomed = sorted(set(current) - {e.key for e in entries})
        for start in range(0, len(doomed), 1000):
            chunk = [{"Key": k} for k in doomed[start : start + 1000]]
            client.delete_objects(Bucket=bucket, Delete={"Objects": chunk})
        outcome.removed = len(doomed)
    for entry in entries:
        client.upload_file(str(set_dir / entry.file), into, entry.key)
    outcome.mismatches = prove(client, into, entries)
    outcome.seconds = round(time.perf_counter() - started, 3)
    return outcome


def remove_bucket(client: Any, bucket: str) -> None:
    """A scratch bucket and its objects, once its proof is on record."""
    keys = list(list_keys(client, bucket))
    for start in range(0, len(keys), 1000):
        client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]}
        )
    client.delete_bucket(Bucket=bucket)


def buckets_of(entries: list[ObjectEntry]) -> dict[str, list[ObjectEntry]]:
    grouped: dict[str, list[ObjectEntry]] = {}
    for entry in entries:
        grouped.setdefault(entry.bucket, []).append(entry)
    return grouped
