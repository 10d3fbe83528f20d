"""Physical backup and restore through vextrus_nb.backup.pgbackrest against the raw pgbackrest
commands on the same sandbox cluster in the same run (the issue asks for at most 1.10x each),
and against today's logical path (pg_dump -Fd -j2 of every database; createdb + pg_restore -j2).

Our backup: pgbackrest.backup() (the command, plus `info --output=json` before and after to
name the new backup). Raw: `pgbackrest --type=full backup`. Our restore: pgbackrest.restore()
(the command, then start on a free port, recover, promote). Raw: `pgbackrest restore`, then
pg_ctl start and a poll until the copy is out of recovery. Runs alternate, best of REPEATS.

BENCH_SCALE (default 100: about 1.7 GB) sets the data size; BENCH_SANDBOX_DIR reuses a
running sandbox instead of starting one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from bench.common import report

JOBS = 2
REPEATS = 2


def main() -> None:
    reuse = os.environ.get("BENCH_SANDBOX_DIR")
    root = Path(reuse or tempfile.mkdtemp(prefix="vextrus-bench-pgbackrest-"))
    os.environ["VEXTRUS_SANDBOX_DIR"] = str(root)
    from vextrus_nb.backup import pgbackrest
    from vextrus_nb.backup.access import physical_stanza
    from vextrus_nb.config import load_environment, load_inventory
    from vextrus_nb.ports import free_ports
    from vextrus_nb.run.session import Runbook
    from vextrus_nb.sandbox import manager

    scale = float(os.environ.get("BENCH_SCALE", "100"))
    if not reuse:
        manager.up(root, scale=scale)
    work = Path(tempfile.mkdtemp(prefix="vextrus-bench-pgbackrest-work-"))
    try:
        inventory = load_inventory()
        env = load_environment("sandbox", inventory)
        rb = Runbook(name="dr/backup", env=env, inventory=inventory, parameters={"dry_run": True})
        stanza = physical_stanza(rb)
        assert stanza is not None
        account = pgbackrest.owner_of(stanza.pg_path)
        as_server = (
            {"user": account[0], "group": account[1], "extra_groups": []} if account else {}
        )  # the raw command runs as pgBackRest must: the data directory's owner
        secret_env = {**os.environ, "PGPASSWORD": stanza.pg_password}

        def raw(*args: str) -> None:
            subprocess.run(
                ["pgbackrest", f"--config={stanza.config_path}", f"--stanza={stanza.name}", *args],
                env=secret_env,
                check=True,
                capture_output=True,
                cwd="/",
                **as_server,  # type: ignore[arg-type]
            )

        backup_raw, backup_ours = [], []
        for _ in range(REPEATS):
            began = time.perf_counter()
            raw("--type=full", "backup")
            backup_raw.append(time.perf_counter() - began)
            began = time.perf_counter()
            taken = pgbackrest.backup(stanza, "full")
            backup_ours.append(time.perf_counter() - began)

        label = taken.label
        restore_raw, restore_ours = [], []
        for attempt in range(REPEATS):
            home = pgbackrest.scratch_home(stanza, f"raw{attempt}")
            began = time.perf_counter()
            (home / "data").mkdir(mode=0o700)
            if account:
                os.chown(home / "data", *account)
            raw(f"--pg1-path={home / 'data'}", "--archive-mode=off", f"--set={label}", "restore")
            copy = pgbackrest.RestoredCluster(
                Path(env_bindir()), home / "data", free_ports(1)[0], stanza.pg_user, stanza.pg_password
            )
            _raw_start(copy, account)
            restore_raw.append(time.perf_counter() - began)
            copy.destroy()

            home = pgbackrest.scratch_home(stanza, f"ours{attempt}")
            began = time.perf_counter()
            ours = pgbackrest.restore(stanza, home / "data", Path(env_bindir()), backup_label=label)
            restore_ours.append(time.perf_counter() - began)
            ours.destroy()

        logical_dump_s, logical_restore_s = _logical(env, inventory, work)
        report(
            "pgbackrest_backup_vs_raw",
            min(backup_ours),
            min(backup_raw),
            scale=scale,
            process_max=stanza.process_max,
            compress=stanza.compress_type,
            database_bytes=taken.database_bytes,
            repository_bytes=taken.repository_bytes,
            within_1_10=min(backup_ours) <= 1.10 * min(backup_raw),
            logical_dump_s=round(logical_dump_s, 2),
            physical_vs_logical=round(min(backup_ours) / logical_dump_s, 3),
        )
        report(
            "pgbackrest_restore_vs_raw",
            min(restore_ours),
            min(restore_raw),
            scale=scale,
            includes="restore + start + recover + promote",
            within_1_10=min(restore_ours) <= 1.10 * min(restore_raw),
            logical_restore_s=round(logical_restore_s, 2),
            physical_vs_logical=round(min(restore_ours) / logical_restore_s, 3),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not reuse:
            manager.down(root)


def env_bindir() -> str:
    from vextrus_nb.postgres_binaries import find_bindir

    return str(find_bindir())


def _raw_start(copy: object, account: tuple[int, int] | None) -> None:
    """pg_ctl start, then a poll until the restored copy has left recovery (the same work our
    restore() does after the pgbackrest command)."""
    from vextrus_nb.backup.pgbackrest import RestoredCluster

    assert isinstance(copy, RestoredCluster)
    subprocess.run(
        [
            str(copy.bindir / "pg_ctl"),
            "-D",
            str(copy.datadir),
            "-l",
            str(copy.home / "postgres.log"),
            "-o",
            f"-p {copy.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={copy.home} "
            "-c archive_mode=off -c shared_buffers=32MB -c fsync=off "
            + " ".join(f"-c {k}={v}" for k, v in copy.primary_settings().items()),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
        cwd=copy.home,
        user=account[0] if account else None,
        group=account[1] if account else None,
        extra_groups=[] if account else None,
    )
    while True:
        try:
            with copy.connect() as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row and not row[0]:
                return
        except psycopg.OperationalError:
            pass
        time.sleep(0.1)


def _logical(env: object, inventory: object, work: Path) -> tuple[float, float]:
    """Today's logical path on the same cluster: pg_dump -Fd -j2 of every database, then
    createdb + pg_restore -j2 of each into a fresh database (dropped after)."""
    from vextrus_nb.backup import postgres as pg
    from vextrus_nb.config import Environment, Inventory
    from vextrus_nb.postgres_binaries import find_bindir
    from vextrus_nb.probe_targets import endpoints

    assert isinstance(env, Environment) and isinstance(inventory, Inventory)
    host, port = endpoints(env, inventory)["postgres"]
    login = pg.PostgresLogin(
        host, port, "vextrus_admin", env.resolve_secret("postgres_password"), find_bindir()
    )
    services = [s for s in inventory.services() if s.database]
    began = time.perf_counter()
    for service in services:
        subprocess.run(
            [str(login.bindir / "pg_dump"), "-Fd", "-j", str(JOBS), "-f", str(work / service.name),
             *login.tool_args(service.database or "")],
            env=login.tool_env(), check=True,
        )  # fmt: skip
    dump_s = time.perf_counter() - began
    began = time.perf_counter()
    for service in services:
        target = f"bench_logical_{service.database}"
        subprocess.run([str(login.bindir / "createdb"), *login.tool_args("postgres")[:-2], target],
                       env=login.tool_env(), check=True)  # fmt: skip
        subprocess.run([str(login.bindir / "pg_restore"), "-j", str(JOBS), *login.tool_args(target),
                        str(work / service.name)], env=login.tool_env(), check=True)  # fmt: skip
    restore_s = time.perf_counter() - began
    for service in services:
        pg.drop_database(login, f"bench_logical_{service.database}")
    return dump_s, restore_s


if __name__ == "__main__":
    main()
