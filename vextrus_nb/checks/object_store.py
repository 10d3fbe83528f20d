"""The object store, over S3 (boto3): the platform's buckets exist, the environment's keys may
read them, and their versioning is enabled.

boto3 blocks: each call runs in a thread through `in_thread` (checks/context.py). It is imported
with the module, not inside a check: its first import takes about a second, which inside a check
would block the event loop and spend every running check's deadline.
"""

from __future__ import annotations

import asyncio
from typing import Any

import boto3
from botocore.config import Config

from vextrus_nb.checks.context import CheckContext, describe_error, in_thread
from vextrus_nb.checks.model import Finding, Outcome, check

# The buckets the platform needs in its object store, and who uses each.
PLATFORM_BUCKETS: dict[str, str] = {
    "vextrus-files": "file-storage's documents and uploads",
    "vextrus-backups": "the DR backup sets' second copy",
}


def s3_client(ctx: CheckContext) -> Any:
    """A boto3 client for the object store with the environment's keys: path-style, no retries,
    the probe timeout on connect and read."""
    host, port = ctx.where["minio"]
    store = ctx.env.object_store
    assert store is not None
    return boto3.client(
        "s3",
        endpoint_url=f"http://{host}:{port}",
        aws_access_key_id=ctx.secret(store.access_key_secret),
        aws_secret_access_key=ctx.secret(store.secret_key_secret),
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1},
            connect_timeout=ctx.timeout_s,
            read_timeout=ctx.timeout_s,
        ),
    )


async def shared_s3_client(ctx: CheckContext) -> Any:
    """One client for both object-store checks, built in a thread: boto3 loads its S3 model
    (hundreds of milliseconds of CPU) when a client is made."""
    shared = ctx.once("s3.client", lambda: asyncio.ensure_future(in_thread(ctx, lambda: s3_client(ctx))))
    return await asyncio.shield(shared)


def s3_error(exc: BaseException, ctx: CheckContext) -> tuple[str, int | None]:
    """(one line, HTTP status) for a boto3 error."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": "), status
    return describe_error(exc, ctx.timeout_s), None


def object_store_scope(ctx: CheckContext) -> str | None:
    """Why the object-store checks cannot apply, or None when they can."""
    if not ctx.in_scope("minio"):
        return "the environment runs no object store"
    if ctx.env.object_store is None:
        return "the environment names no object-store keys (object_store)"
    return None


def head_buckets(ctx: CheckContext, client: Any) -> dict[str, str | None]:
    """Each platform bucket: None when it answers HeadBucket, else why not."""
    answers: dict[str, str | None] = {}
    for bucket in PLATFORM_BUCKETS:
        try:
            client.head_bucket(Bucket=bucket)
            answers[bucket] = None
        except Exception as exc:
            detail, status = s3_error(exc, ctx)
            if status == 404:
                answers[bucket] = "bucket missing"
            elif status == 403:
                answers[bucket] = "access denied to the environment's keys (403)"
            elif status is None:
                raise  # the store itself did not answer: one finding for it, not one per bucket
            else:
                answers[bucket] = detail
    return answers


@check(
    "INF-OBJECT-BUCKETS",
    "infrastructure",
    "high",
    title="The object store has the platform's buckets",
    probes=f"S3 HeadBucket for {', '.join(PLATFORM_BUCKETS)} with the environment's keys",
    criterion="every bucket exists and the keys may read it",
    remediation="Create the bucket (mc mb local/<bucket>) and grant the platform's keys a policy on it; "
    "file-storage cannot store documents, nor backups leave the host, without it.",
)
async def object_buckets(ctx: CheckContext) -> Outcome:
    if why := object_store_scope(ctx):
        return Outcome.not_applicable(why)
    try:
        client = await shared_s3_client(ctx)
        answers = await in_thread(ctx, lambda: head_buckets(ctx, client))
    except Exception as exc:
        detail = f"the object store did not answer: {s3_error(exc, ctx)[0]}"
        return Outcome.of(detail, [Finding("minio", detail)])
    findings = [
        Finding(bucket, f"{why} (for {PLATFORM_BUCKETS[bucket]})") for bucket, why in answers.items() if why
    ]
    present = [b for b, why in answers.items() if why is None]
    return Outcome.of(
        f"{len(present)} of {len(answers)} buckets present: {', '.join(present) or 'none'}", findings
    )


def bucket_versioning(ctx: CheckContext, client: Any) -> dict[str, str]:
    """Each existing platform bucket's versioning: Enabled, Suspended, 'never enabled', or
    'not implemented' (the server answers GetBucketVersioning with no status, as S3 does for a
    never-versioned bucket, but has no versions API at all: rclone's `serve s3` does this)."""
    states: dict[str, str] = {}
    for bucket in PLATFORM_BUCKETS:
        try:
            status = client.get_bucket_versioning(Bucket=bucket).get("Status")
        except Exception as exc:
            detail, code = s3_error(exc, ctx)
            if code is None:
                raise
            states[bucket] = "bucket missing" if code == 404 else detail
            continue
        if status:
            states[bucket] = status
            continue
        try:
            client.list_object_versions(Bucket=bucket, MaxKeys=1)
            states[bucket] = "never enabled"
        except Exception as exc:
            detail, code = s3_error(exc, ctx)
            states[bucket] = (
                "not implemented" if code == 501 or "NotImplemented" in detail else "never enabled"
            )
    return states


@check(
    "INF-OBJECT-VERSIONING",
    "infrastructure",
    "medium",
    title="Versioning enabled on the platform's buckets",
    probes="S3 GetBucketVersioning (and ListObjectVersions, to tell 'never enabled' from 'not implemented')",
    criterion="every platform bucket's versioning status is Enabled",
    remediation="mc version enable local/<bucket>: an overwritten or deleted document or backup can then "
    "be recovered; add a lifecycle rule expiring noncurrent versions.",
)
async def object_versioning(ctx: CheckContext) -> Outcome:
    if why := object_store_scope(ctx):
        return Outcome.not_applicable(why)
    try:
        client = await shared_s3_client(ctx)
        states = await in_thread(ctx, lambda: bucket_versioning(ctx, client))
    except Exception as exc:
        detail = f"the object store did not answer: {s3_error(exc, ctx)[0]}"
        return Outcome.of(detail, [Finding("minio", detail)])
    evidence = "; ".join(f"{bucket} {state}" for bucket, state in states.items())
    answered = {state for state in states.values() if state != "bucket missing"}
    if answered == {"not implemented"}:
        return Outcome.not_applicable(
            "this S3 server does not implement versioning (GetBucketVersioning gives no status, "
            f"ListObjectVersions 501 NotImplemented): {evidence}"
        )
    findings = [
        Finding(bucket, f"versioning {state}" if state != "bucket missing" else state)
        for bucket, state in states.items()
        if state != "Enabled"
    ]
    return Outcome.of(f"versioning: {evidence}", findings)
