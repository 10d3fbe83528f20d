"""dr/platform-drill's RTO on both recovery paths, in the same run, on the same sandbox and set:
PostgreSQL whole with pgBackRest (repository 1, to the latest archived moment: ours) against the
set's logical dumps (`postgres_from=dumps`: the baseline), with Redis, the bucket's documents and
Kafka's metadata restored on both; each drilled live into a second sandbox, the runbook's own
steps in this process (drill, judge: no kernel, so the figures are the drill's, not papermill's).

Reported: both RTOs (the drill's start to the restored platform's smoke sweep passing) and their
ratio, the pgBackRest path's RPO measured in the restored cluster, each path's phases and, for
each datastore, the seconds from the drill's start to its proof and its own restore and proof;
the set's size; the machine's cores and load averages before and after (os.getloadavg: what
`uptime` prints), since other work on the machine shares its cores.

BENCH_SCALE (default 100: about 1.7 GB) sets the data size; BENCH_SANDBOX_DIR reuses a running
sandbox instead of starting one (its data, whatever scale it was started at).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

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
    from vextrus_nb.runbooks.dr import platform_drill
    from vextrus_nb.sandbox import manager
    from vextrus_nb.sandbox_state import SandboxState

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
        load_before = _load()
        physical = _drill(taken.path.name, "pgbackrest")
        dumps = _drill(taken.path.name, "dumps")
        assert physical.rto_s is not None and dumps.rto_s is not None
        report(
            "platform_drill_rto",
            physical.rto_s,
            dumps.rto_s,
            baseline_is="the same drill with PostgreSQL from the set's logical dumps (postgres_from=dumps)",
            rpo_s=round(physical.rpo_s, 2) if physical.rpo_s is not None else None,
            rto_target_s=platform_drill.RTO_TARGET_S,
            scale=scale,
            set_bytes=taken.manifest.total_bytes,
            databases=len(taken.manifest.databases),
            backup_s=round(backup_s, 2),
            phases={"pgbackrest": physical.phases(), "dumps": dumps.phases()},
            ready_at_s={"pgbackrest": physical.rto_by_datastore(), "dumps": dumps.rto_by_datastore()},
            datastore_seconds={
                name: {r.datastore: round(r.seconds, 2) for r in drilled.recoveries}
                for name, drilled in (("pgbackrest", physical), ("dumps", dumps))
            },
            smoke_attempts={"pgbackrest": physical.smoke_attempts, "dumps": dumps.smoke_attempts},
            restored_score=physical.restored_checklist.score if physical.restored_checklist else None,
            cores=os.cpu_count(),
            load_before=load_before,
            load_after=_load(),
        )
    finally:
        shutil.rmtree(outputs, ignore_errors=True)
        if not reuse:
            manager.down(root)


def _load() -> list[float]:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    return [round(x, 2) for x in os.getloadavg()]


def _drill(set_id: str, postgres_from: str) -> Any:
    """One live drill of the set, the runbook's steps in this process; SystemExit if it failed."""
    import vextrus_nb
    from vextrus_nb.runbooks.dr import platform_drill

    rb = vextrus_nb.start(
        "dr/platform-drill",
        env="sandbox",
        dry_run=False,
        destructive=True,
        set_id=set_id,
        postgres_from=postgres_from,
    )
    try:
        drilled = platform_drill.drill(rb)
        platform_drill.judge(rb, drilled)
    finally:
        if rb.lock is not None:
            rb.lock.release()
    if drilled.failure or rb.failures or drilled.rto_s is None:
        raise SystemExit(f"the {postgres_from} drill failed: {drilled.failure or rb.failures}")
    print(
        f"{postgres_from}: RTO {drilled.rto_s:.1f} s, RPO {drilled.rpo_s}, phases {drilled.phases()}, "
        f"ready at {drilled.rto_by_datastore()}",
        flush=True,
    )
    return drilled


def _seed(root: Path) -> None:
    """Documents in the bucket, sessions in Redis and a consumer group, so every datastore has
    something to restore."""
    import redis
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    from vextrus_nb.sandbox import real_platform, real_servers
    from vextrus_nb.sandbox_state import SandboxState

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
