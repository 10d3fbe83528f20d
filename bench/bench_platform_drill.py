"""dr/platform-drill's RTO per datastore: a set of every database (at BENCH_SCALE), Redis, the
bucket's documents and Kafka's metadata, drilled live into a second sandbox, the runbook's own
steps in this process (drill, judge: no kernel, so the figures are the drill's, not papermill's).

Reported: RTO (the drill's start to the restored platform's smoke sweep passing) against the
reference documents' objective of 4 h, and for each datastore the seconds from the drill's start
to its proof and its own restore and proof; the second platform's start; the set's size. The
PostgreSQL figure compares with bench_pgbackrest's logical restore (createdb + pg_restore -j2 of
every database) of the same scale.

BENCH_SCALE (default 100: about 1.7 GB) sets the data size; BENCH_SANDBOX_DIR reuses a running
sandbox instead of starting one (its data, whatever scale it was started at).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import report

DOCUMENTS = 20  # objects of 64 KiB in the platform bucket
SESSIONS = 1000  # Redis keys


def main() -> None:
    reuse = os.environ.get("BENCH_SANDBOX_DIR")
    root = Path(reuse or tempfile.mkdtemp(prefix="vextrus-bench-platform-drill-"))
    outputs = Path(tempfile.mkdtemp(prefix="vextrus-bench-platform-drill-outputs-"))
    os.environ["VEXTRUS_SANDBOX_DIR"] = str(root)
    os.environ["VEXTRUS_OUTPUTS_DIR"] = str(outputs)
    import vextrus_nb
    from vextrus_nb.backup.take import back_up
    from vextrus_nb.local_platform import SandboxState
    from vextrus_nb.runbooks.dr import platform_drill
    from vextrus_nb.sandbox import manager

    scale = float(os.environ.get("BENCH_SCALE", "100"))
    if reuse:
        scale = SandboxState.load(root).scale
    else:
        began = time.perf_counter()
        manager.up(root, scale=scale)
        print(f"sandbox at scale {scale:g} up in {time.perf_counter() - began:.1f} s")
    try:
        _seed(root)
        began = time.perf_counter()
        taken = back_up(vextrus_nb.start("dr/backup", env="sandbox", writes="a backup set"), "", "")
        backup_s = time.perf_counter() - began
        rb = vextrus_nb.start(
            "dr/platform-drill", env="sandbox", dry_run=False, destructive=True, set_id=taken.path.name
        )
        try:
            drilled = platform_drill.drill(rb)
            platform_drill.judge(rb, drilled)
        finally:
            if rb.lock is not None:
                rb.lock.release()
        if drilled.failure or rb.failures or drilled.rto_s is None:
            raise SystemExit(f"the drill failed: {drilled.failure or rb.failures}")
        figures = drilled.rto_by_datastore()
        report(
            "platform_drill_rto",
            drilled.rto_s,
            platform_drill.RTO_TARGET_S,
            baseline_is="the reference documents' RTO objective (4 h)",
            scale=scale,
            set_bytes=taken.manifest.total_bytes,
            databases=len(taken.manifest.databases),
            backup_s=round(backup_s, 2),
            provision_s=round(drilled.provision_s, 2),
            ready_at_s=figures,
            datastore_seconds={r.datastore: round(r.seconds, 2) for r in drilled.recoveries},
            smoke_attempts=drilled.smoke_attempts,
            restored_score=drilled.restored_checklist.score if drilled.restored_checklist else None,
        )
    finally:
        shutil.rmtree(outputs, ignore_errors=True)
        if not reuse:
            manager.down(root)


def _seed(root: Path) -> None:
    """Documents in the bucket, sessions in Redis and a consumer group, so every datastore has
    something to restore."""
    import redis
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    from vextrus_nb.local_platform import SandboxState
    from vextrus_nb.sandbox import real_platform, real_servers

    state = SandboxState.load(root)
    s3 = real_servers.s3_client(real_platform.server_handle(state, "minio"))
    for index in range(DOCUMENTS):
        s3.put_object(Bucket="vextrus-files", Key=f"bench/doc-{index:03}.pdf", Body=os.urandom(64 * 1024))
    sessions = redis.Redis(port=state.ports["redis"], password=state.secret("redis_password"))
    sessions.mset({f"bench:session:{i}": os.urandom(32).hex() for i in range(SESSIONS)})
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{state.ports['kafka']}", "log_level": 0})
    topic = sorted(t for t in admin.list_topics(timeout=10).topics if not t.startswith("__"))[0]
    group = ConsumerGroupTopicPartitions("bench-platform-drill", [TopicPartition(topic, 0, 1)])
    [done] = admin.alter_consumer_group_offsets([group]).values()
    done.result(timeout=10)


if __name__ == "__main__":
    main()
