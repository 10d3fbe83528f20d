"""Run every benchmark; results go to stdout and bench/results/<name>.json."""

from __future__ import annotations

from bench import (
    bench_alert,
    bench_backup,
    bench_checklist,
    bench_cli_startup,
    bench_deploy,
    bench_failover,
    bench_fault_proxy,
    bench_k6_overhead,
    bench_ledger,
    bench_pgbackrest,
    bench_real_servers,
    bench_report,
    bench_smoke_run,
    bench_submit,
    bench_sweep,
    bench_triage,
)

for bench in (
    bench_sweep,
    bench_checklist,
    bench_triage,
    bench_backup,
    bench_deploy,
    bench_cli_startup,
    bench_report,
    bench_real_servers,
    bench_failover,
    bench_k6_overhead,
    bench_pgbackrest,
    bench_fault_proxy,
    bench_ledger,
    bench_submit,
    bench_alert,
    bench_smoke_run,
):
    bench.main()
