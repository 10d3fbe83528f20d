"""The sandbox's second pgBackRest repository (repo2): a bucket on its S3 server, reached over the
server's HTTPS listener (`minio-tls`), since pgBackRest speaks S3 only over TLS.

The S3 server runs in the services process, which starts after the cluster (whose first WAL
segments go to the local repository alone): once the services answer, the bucket is made, the
repository joins the stanza's configuration and the stanza is created in it. From then on every
segment is archived to both, and parameters/environments/sandbox.yaml names the same
repository (backup.pgbackrest.s3), so a runbook writes the same configuration file."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vextrus_nb.backup import pgbackrest
from vextrus_nb.sandbox import real_platform, real_servers

if TYPE_CHECKING:
    from vextrus_nb.sandbox_state import SandboxState

BUCKET = "vextrus-pgbackrest"  # sandbox.yaml backup.pgbackrest.s3.bucket
# The name pgBackRest connects to: it checks the certificate by DNS name, never by IP address.
HOST_NAME = "localhost"
TLS_PORT_NAME = "minio-tls"
# sandbox.yaml backup.pgbackrest.io_timeout_s: with the S3 server faulted down, archiving stalls
# (and `pgbackrest info` waits) about four times this long, not four minutes.
IO_TIMEOUT_S = 10


def s3_repository(state: SandboxState) -> pgbackrest.S3Repository | None:
    """repo2 as the stanza names it, once the sandbox has made it (None before)."""
    if not state.extra.get("pgbackrest", {}).get("s3") or TLS_PORT_NAME not in state.ports:
        return None
    keys = real_platform.credentials(state)["minio"]
    return pgbackrest.S3Repository(
        host=HOST_NAME,
        port=state.ports[TLS_PORT_NAME],
        bucket=BUCKET,
        access_key=keys["access_key"],
        secret_key=keys["secret_key"],
        ca_file=real_platform.s3_certificate(state),
    )


def enable_s3_repository(state: SandboxState) -> None:
    """The bucket made and repo2 recorded in the state (the caller rewrites the configuration and
    creates the stanza there: stanza-create is idempotent for repo1)."""
    client = real_servers.s3_client(real_platform.server_handle(state, "minio"))
    if BUCKET not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=BUCKET)
    state.extra.setdefault("pgbackrest", {})["s3"] = True
    state.save()
