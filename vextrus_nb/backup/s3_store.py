"""The second store: an S3-compatible bucket each finished set is copied to.

Same contract as the directory store: a set is a prefix holding its files and
a manifest, and the manifest is uploaded last, so a set whose manifest is
missing is unfinished. Restore and drill fetch a set into a local staging
folder and verify it there against its manifest, exactly as a local set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vextrus_nb.backup.manifest import MANIFEST_FILE
from vextrus_nb.config import S3Target
from vextrus_nb.errors import BackupError


@dataclass
class S3Store:
    bucket: str
    prefix: str
    client: Any  # a boto3 S3 client

    @classmethod
    def connect(cls, target: S3Target, access_key: str, secret_key: str) -> S3Store:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise BackupError("the S3 store needs boto3: pip install 'vextrus-nb[s3]'") from None
        client = boto3.client(
            "s3",
            endpoint_url=target.endpoint_url,
            region_name=target.region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10),
        )
        return cls(target.bucket, target.prefix.strip("/"), client)

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self._key()}"

    def put(self, set_dir: Path) -> int:
        """Upload every file of a finished set, the manifest last. Returns the bytes sent."""
        files = sorted(p for p in set_dir.rglob("*") if p.is_file() and p.name != MANIFEST_FILE)
        sent = 0
        for path in [*files, set_dir / MANIFEST_FILE]:
            self.client.upload_file(
                str(path), self.bucket, self._key(set_dir.name, str(path.relative_to(set_dir)))
            )
            sent += path.stat().st_size
        return sent

    def set_ids(self) -> list[str]:
        """Finished sets (those with a manifest), oldest first by name (names start with their time)."""
        paginator = self.client.get_paginator("list_objects_v2")
        prefix = self._key() + "/" if self.prefix else ""
        found = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                set_id = common["Prefix"][len(prefix) :].rstrip("/")
                try:
                    self.client.head_object(Bucket=self.bucket, Key=self._key(set_id, MANIFEST_FILE))
                    found.append(set_id)
                except self.client.exceptions.ClientError:
                    continue  # no manifest: an unfinished upload
        return sorted(found)

    def _objects(self, set_id: str) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        keys = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(set_id) + "/"):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def fetch(self, set_id: str, into: Path) -> Path:
        """Download a set into `into/<set_id>`; verification happens there, as for a local set."""
        keys = self._objects(set_id)
        if not keys:
            raise BackupError(f"no backup set '{set_id}' in {self.location}")
        target = into / set_id
        base = self._key(set_id) + "/"
        for key in keys:
            path = target / key[len(base) :]
            path.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(self.bucket, key, str(path))
        return target

    def delete(self, set_id: str) -> None:
        keys = self._objects(set_id)
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": k} for k in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk})
