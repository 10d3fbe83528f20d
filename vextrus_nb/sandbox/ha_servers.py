"""The sandbox's high-availability parts, as real servers: a PostgreSQL primary and a streaming
replica (a replication slot each), PgBouncer in front of them, a Redis replica and three
Sentinels. What the failover runbook acts on; the faults it recovers from (kill -9 of a
primary, a stopped replica, a paused replay) are done to these processes.

The PostgreSQL nodes run the sandbox's binaries with the settings a failover needs:
`wal_log_hints` and `full_page_writes` (pg_rewind refuses a cluster without them), slots, hot
standby. Servers run as the PostgreSQL account when we are root (PostgreSQL and PgBouncer both
refuse root)."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import psycopg

from vextrus_nb.errors import SandboxError
from vextrus_nb.pg_conninfo import conninfo, with_passfile
from vextrus_nb.sandbox import supervisor
from vextrus_nb.sandbox.real_servers import LOOPBACK, RealServer
from vextrus_nb.sandbox.redis_server import find_redis_server
from vextrus_nb.sandbox_state import pid_alive

HA_SETTINGS = (
    "wal_level=replica",
    "max_wal_senders=10",
    "max_replication_slots=10",
    "hot_standby=on",
    "wal_log_hints=on",
    "full_page_writes=on",
    "wal_keep_size=256MB",  # pg_rewind reads the old primary's WAL back to where the timelines split
    "fsync=off",  # a kill -9 loses nothing the kernel holds; only a machine crash would
    "shared_buffers=32MB",
    "max_connections=100",
    "log_min_messages=warning",
)


def _account() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise SandboxError("running as root, and neither a 'postgres' nor a 'nobody' account exists")


def _wait(condition: object, timeout: float, what: str) -> None:
    met, last = supervisor.wait_for(condition, timeout)  # type: ignore[arg-type]
    if not met:
        raise SandboxError(
            f"timed out after {timeout:g} s waiting for {what}" + (f" ({last})" if last else "")
        )


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _own(path: Path) -> None:
    if account := _account():
        os.chown(path, account.pw_uid, account.pw_gid)


@dataclass
class PgNode:
    """One PostgreSQL server of the pair: its data directory, port, and how to stop it."""

    name: str
    bindir: Path
    datadir: Path
    port: int
    superuser: str
    password: str = field(repr=False)

    @property
    def dsn(self) -> str:
        return conninfo(LOOPBACK, self.port, self.superuser, self.password)

    @property
    def conninfo_without_password(self) -> str:
        return f"host={LOOPBACK} port={self.port} user={self.superuser}"

    @property
    def passfile(self) -> Path:
        """The node's libpq password file, beside its data directory and never inside it: what
        a replica's primary_conninfo names instead of the password itself, so neither the
        replica's postgresql.auto.conf nor a backup of it holds a secret."""
        return self.datadir.parent / "pgpass"

    def write_passfile(self) -> Path:
        # libpq's escapes in a password file: a backslash and a colon each take a backslash.
        escaped = self.password.replace("\\", "\\\\").replace(":", "\\:")
        line = f"{LOOPBACK}:*:*:{self.superuser}:{escaped}\n"
        if not self.passfile.exists() or self.passfile.read_text() != line:
            self.passfile.write_text(line)
        self.passfile.chmod(0o600)  # libpq ignores a password file others can read
        _own(self.passfile)
        return self.passfile

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        account = _account()
        self.datadir.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            check=False,
            # A password file, not PGPASSWORD: pg_basebackup -R writes the connection it used
            # into the replica's primary_conninfo, the password with it when given directly.
            env={**os.environ, "PGPASSFILE": str(self.write_passfile())},
            cwd=self.datadir.parent,
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=[] if account else None,
        )
        if check and result.returncode != 0:
            raise SandboxError(f"{args[0]} ({self.name}) failed: {result.stderr.strip()[-600:]}")
        return result

    def start(self) -> None:
        options = " ".join(
            [
                f"-p {self.port}",
                f"-c listen_addresses={LOOPBACK}",
                f"-c unix_socket_directories={self.datadir.parent}",
                f"-c cluster_name={self.name}",
            ]
        )
        log = self.datadir.parent / f"{self.name}.log"
        self.run("pg_ctl", "-D", str(self.datadir), "-l", str(log), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        if self.running():
            self.run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "-t", "60", "stop", check=False)

    def running(self) -> bool:
        return (
            self.datadir.exists()
            and self.run("pg_ctl", "-D", str(self.datadir), "status", check=False).returncode == 0
        )

    def postmaster_pid(self) -> int | None:
        pidfile = self.datadir / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int(pidfile.read_text().split()[0])
        return None

    def kill_hard(self) -> None:
        """kill -9 the postmaster and every backend: the machine died, nothing was flushed."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        # The postmaster first: killed after a backend, it would notice and reinitialise.
        for victim in sorted(supervisor.descendants(pid), key=lambda p: p != pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        # Gone from the process table, not only its port closed: until its zombie is reaped, the
        # pid in postmaster.pid still looks alive, and the next start (or pg_rewind) refuses.
        _wait(lambda: not supervisor.port_open(self.port) and not _exists(pid), 10.0, f"{self.name} to die")

    def in_recovery(self) -> bool:
        with psycopg.connect(self.dsn, connect_timeout=3) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return bool(row and row[0])


def init_primary(home: Path, bindir: Path, port: int, superuser: str, password: str) -> PgNode:
    """initdb a fresh primary under home/primary and start it."""
    home.mkdir(parents=True, exist_ok=True)
    _own(home)
    node = PgNode("primary", bindir, home / "primary" / "data", port, superuser, password)
    node.datadir.parent.mkdir(parents=True, exist_ok=True)
    _own(node.datadir.parent)
    pwfile = node.datadir.parent / "pwfile"
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    _own(pwfile)
    try:
        node.run(
            "initdb", "-D", str(node.datadir), "-U", superuser, f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--no-instructions",
        )  # fmt: skip
    finally:
        pwfile.unlink(missing_ok=True)
    # In postgresql.conf, not on pg_ctl's command line: pg_rewind's crash recovery of a killed
    # primary runs the server without our options, and pg_control then records wal_log_hints off.
    # Replicas inherit the file through pg_basebackup.
    with open(node.datadir / "postgresql.conf", "a") as conf:
        conf.write("\n# vextrus sandbox: high availability\n" + "\n".join(HA_SETTINGS) + "\n")
    node.start()
    return node


def clone_replica(
    primary: PgNode, home: Path, name: str, port: int, start: Callable[[PgNode], None] | None = None
) -> PgNode:
    """pg_basebackup the primary into home/<name>, with its own replication slot and a
    standby.signal (-R), and start it streaming (`start`: how, when not PgNode.start)."""
    node = PgNode(name, primary.bindir, home / name / "data", port, primary.superuser, primary.password)
    node.datadir.parent.mkdir(parents=True, exist_ok=True)
    _own(node.datadir.parent)
    node.run(
        "pg_basebackup", "-h", LOOPBACK, "-p", str(primary.port), "-U", primary.superuser,
        "-D", str(node.datadir), "-R", "-C", "-S", slot_name(name), "-X", "stream", "--checkpoint=fast",
    )  # fmt: skip
    (start or PgNode.start)(node)
    return node


def slot_name(name: str) -> str:
    return f"{name.replace('-', '_')}_slot"


def rejoin_as_replica(
    old: PgNode, new_primary: PgNode, start: Callable[[PgNode], None] | None = None
) -> None:
    """pg_rewind the former primary onto the new one's timeline, point it at the new primary
    through its own slot, and start it as a replica (the step a failover's rejoin takes;
    `start`: how, when not PgNode.start)."""
    old.stop()
    # pg_rewind reads the source's timeline from its control file, which a just-promoted server
    # updates only at its next checkpoint (pg_rewind's documentation): checkpoint it first.
    with psycopg.connect(new_primary.dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    old.run(
        "pg_rewind", "-D", str(old.datadir),
        f"--source-server={new_primary.conninfo_without_password} dbname=postgres", "--progress",
    )  # fmt: skip
    slot = slot_name(old.name)
    with psycopg.connect(new_primary.dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
        if not exists:
            conn.execute("SELECT pg_create_physical_replication_slot(%s)", (slot,))
    auto_conf = old.datadir / "postgresql.auto.conf"
    kept = [
        line
        for line in (auto_conf.read_text().splitlines() if auto_conf.exists() else [])
        # default_transaction_read_only: a planned switchover's fence (ALTER SYSTEM), which must
        # not outlive it: this node is promoted in the next failover.
        if not line.startswith(("primary_conninfo", "primary_slot_name", "default_transaction_read_only"))
    ]
    upstream = with_passfile(
        new_primary.conninfo_without_password, str(old.write_passfile()), application_name=old.name
    )
    # A configuration string: its own quotes doubled, as postgresql.conf reads them.
    quoted = upstream.replace("'", "''")
    kept += [f"primary_conninfo = '{quoted}'", f"primary_slot_name = '{slot}'"]
    auto_conf.write_text("\n".join(kept) + "\n")
    _own(auto_conf)
    (old.datadir / "standby.signal").touch()
    _own(old.datadir / "standby.signal")
    (start or PgNode.start)(old)


# ---------------------------------------------------------------- PgBouncer


def write_pgbouncer_config(
    home: Path,
    port: int,
    backend_port: int,
    users: dict[str, str],
    admin_user: str,
    auth_user: str | None = None,
    daemon: bool = False,
    login_retry_s: float = 1.0,
    pool_size: int = 10,
) -> Path:
    """pgbouncer.ini and its userlist under home. With `auth_user`, only that login is in the
    userlist and every other user's secret is asked of the server (auth_query over pg_shadow),
    so a rotated service password needs no pooler change. `daemon`: a pidfile and a logfile,
    for `pgbouncer -d` (a server that outlives whoever started it). `login_retry_s`: how long a
    pool waits after a failed server login before the next (clients queue meanwhile).
    `pool_size`: server connections per database and user; the auth_query's own pool per
    database counts besides (so a pool per service stays within the server's max_connections)."""
    home.mkdir(parents=True, exist_ok=True)
    _own(home)
    userlist = home / "userlist.txt"
    userlist.write_text("".join(f'"{name}" "{password}"\n' for name, password in sorted(users.items())))
    userlist.chmod(0o600)
    _own(userlist)
    config = home / "pgbouncer.ini"
    auth = f"auth_user = {auth_user}\n" if auth_user else ""
    files = f"pidfile = {home / 'pgbouncer.pid'}\nlogfile = {home / 'pgbouncer.log'}\n" if daemon else ""
    config.write_text(
        "[databases]\n"
        f"* = host={LOOPBACK} port={backend_port}\n\n"
        "[pgbouncer]\n"
        f"listen_addr = {LOOPBACK}\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = scram-sha-256\n"
        f"auth_file = {userlist}\n"
        f"{auth}"
        f"admin_users = {admin_user}\n"
        f"{files}"
        "pool_mode = transaction\n"
        "max_client_conn = 500\n"
        f"default_pool_size = {pool_size}\n"
        # Idle server connections go after a minute, not PgBouncer's ten: the server's
        # connection count then says what is in use.
        "server_idle_timeout = 60\n"
        f"server_login_retry = {login_retry_s:g}\n"
        "server_connect_timeout = 3\n"
        # A query waits this long in the pooler for a server: long enough to ride out a failover
        # (it runs on the new primary once repointed), short of PgBouncer's default 120 s.
        "query_wait_timeout = 30\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
    )
    config.chmod(0o600)
    _own(config)
    return config


def _pgbouncer_command(config: Path, *flags: str) -> list[str]:
    account = _account()
    return ["pgbouncer", *flags, *(["-u", account.pw_name] if account else []), str(config)]


def start_pgbouncer(
    home: Path, port: int, backend_port: int, users: dict[str, str], admin_user: str, timeout: float = 15.0
) -> RealServer:
    """PgBouncer 1.18 on loopback, transaction pooling, every database to one backend; `users`
    (name -> password) may log in, `admin_user` may use the console. server_login_retry is 1 s
    (PgBouncer's default 15 s would hold clients a quarter minute after a failover)."""
    config = write_pgbouncer_config(home, port, backend_port, users, admin_user)
    process = supervisor.start_ready(
        "pgbouncer",
        _pgbouncer_command(config),
        home,
        probe=lambda: supervisor.port_open(port),
        timeout=timeout,
        workdir=home,
    )
    return RealServer("pgbouncer", [process], {"main": port}, home, extra={"config": str(config)})


def start_pgbouncer_daemon(config: Path, port: int, timeout: float = 15.0) -> int:
    """`pgbouncer -d` with a configuration from write_pgbouncer_config(daemon=True); its pid."""
    return start_daemon("pgbouncer", _pgbouncer_command(config, "-d"), config.parent / "pgbouncer.pid",
                        lambda: supervisor.port_open(port), timeout)  # fmt: skip


# ---------------------------------------------------------------- servers that daemonize themselves


def read_pid(pidfile: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(pidfile.read_text().split()[0])
    return None


def start_daemon(name: str, command: list[str], pidfile: Path, probe: object, timeout: float) -> int:
    """Run a server that forks itself into the background (pgbouncer -d, redis-server with
    `daemonize yes`): it outlives the process that started it, as pg_ctl's PostgreSQL does, which
    a supervised child (stopped at our exit) would not. Returns its pid once `probe` holds."""
    pidfile.unlink(missing_ok=True)
    result = subprocess.run(command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SandboxError(f"{name} did not start: {(result.stderr or result.stdout).strip()[-600:]}")
    _wait(lambda: read_pid(pidfile) is not None and probe(), timeout, f"{name} to answer")  # type: ignore[operator]
    pid = read_pid(pidfile)
    assert pid is not None
    return pid


def stop_daemon(pid: int | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it outlives the timeout; returns once it is gone (a zombie
    counts as gone: init reaps a daemon's when it gets round to it)."""
    if not pid or not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)  # a partitioned (stopped) server cannot act on SIGTERM
        os.kill(pid, signal.SIGTERM)
    met, _ = supervisor.wait_for(lambda: not pid_alive(pid), timeout)
    if not met:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait(lambda: not pid_alive(pid), 10.0, f"process {pid} to die")


# ---------------------------------------------------------------- Redis replica and Sentinels


def write_redis_replica_config(
    home: Path, port: int, primary_port: int, password: str, aclfile: Path | None = None, daemon: bool = False
) -> Path:
    """A Redis replica's file: of 127.0.0.1:primary_port, masterauth the primary's default user.
    `aclfile`: the primary's users (ACL is not replicated; a promoted replica must know the
    services' logins); else requirepass. `daemon`: `daemonize yes`, a pidfile and a logfile."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "redis-replica.conf"
    users = f"aclfile {aclfile}\n" if aclfile else f"requirepass {password}\n"
    files = f"daemonize yes\npidfile {home / 'redis.pid'}\nlogfile {home / 'redis.log'}\n" if daemon else ""
    config.write_text(
        f'port {port}\nbind {LOOPBACK}\nprotected-mode yes\ndir {home}\nsave ""\nappendonly no\n{files}'
        f"{users}masterauth {password}\nreplicaof {LOOPBACK} {primary_port}\n"
        # A full sync at once, not after diskless replication's 5 s wait for more replicas.
        "repl-diskless-sync-delay 0\n"
    )
    config.chmod(0o600)
    return config


def redis_replica_synced(port: int, password: str) -> bool:
    import redis

    client = redis.Redis(host=LOOPBACK, port=port, password=password, socket_timeout=1)
    info = cast(dict[str, Any], client.info("replication"))  # sync client: a dict, never an Awaitable
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


def start_redis_replica(
    home: Path, port: int, primary_port: int, password: str, timeout: float = 15.0
) -> RealServer:
    """A Redis replica of 127.0.0.1:primary_port (masterauth: the primary's default user)."""
    config = write_redis_replica_config(home, port, primary_port, password)
    process = supervisor.start_ready(
        "redis-replica",
        [find_redis_server(), str(config)],
        home,
        probe=lambda: redis_replica_synced(port, password),
        timeout=timeout,
        workdir=home,
    )
    return RealServer("redis-replica", [process], {"main": port}, home)


SENTINEL_SERVICE = "vextrus-redis"


def start_sentinels(
    home: Path,
    ports: list[int],
    primary_port: int,
    password: str,
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 10000,
    timeout: float = 15.0,
) -> list[RealServer]:
    """Sentinels (three for a quorum of two) monitoring 127.0.0.1:primary_port as
    SENTINEL_SERVICE. down-after is 1 s here (Sentinel's default 30 s is the anchor the bench
    compares against); each Sentinel rewrites its own file, so each has one."""
    import redis

    quorum = len(ports) // 2 + 1
    started: list[RealServer] = []
    try:
        for index, port in enumerate(ports):
            directory = home / f"sentinel-{index + 1}"
            directory.mkdir(parents=True, exist_ok=True)
            config = write_sentinel_config(
                directory, port, primary_port, password, quorum, down_after_ms, failover_timeout_ms
            )

            def answers(port: int = port) -> bool:
                return bool(redis.Redis(port=port, socket_timeout=1).ping())

            process = supervisor.start_ready(
                f"sentinel-{index + 1}",
                [find_redis_server(), str(config), "--sentinel"],
                directory,
                probe=answers,
                timeout=timeout,
                workdir=directory,
            )
            started.append(RealServer(f"sentinel-{index + 1}", [process], {"main": port}, directory))
    except BaseException:
        for server in started:
            server.stop()
        raise
    return started


def write_sentinel_config(
    directory: Path,
    port: int,
    primary_port: int,
    password: str,
    quorum: int,
    down_after_ms: int,
    failover_timeout_ms: int,
    daemon: bool = False,
    known_replicas: tuple[int, ...] = (),
) -> Path:
    """One Sentinel's file (each rewrites its own as it learns); `daemon`: `daemonize yes` with
    a pidfile and a logfile in its directory. `known_replicas`: replicas' ports it knows from the
    start (a replica started later is then watched at once, not after the primary's next INFO)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "sentinel.conf"
    files = (
        f"daemonize yes\npidfile {directory / 'sentinel.pid'}\nlogfile {directory / 'sentinel.log'}\n"
        if daemon
        else ""
    )
    config.write_text(
        f"port {port}\nbind {LOOPBACK}\nprotected-mode no\ndir {directory}\n{files}"
        f"sentinel monitor {SENTINEL_SERVICE} {LOOPBACK} {primary_port} {quorum}\n"
        f"sentinel auth-pass {SENTINEL_SERVICE} {password}\n"
        f"sentinel down-after-milliseconds {SENTINEL_SERVICE} {down_after_ms}\n"
        f"sentinel failover-timeout {SENTINEL_SERVICE} {failover_timeout_ms}\n"
        f"sentinel parallel-syncs {SENTINEL_SERVICE} 1\n"
        + "".join(f"sentinel known-replica {SENTINEL_SERVICE} {LOOPBACK} {port}\n" for port in known_replicas)
    )
    config.chmod(0o600)
    return config


def wait_for_sentinels_to_see_replicas(ports: list[int], replicas: int, timeout: float = 20.0) -> None:
    """Sentinels learn replicas (and each other) from the primary's INFO and hello messages; a
    failover asked for before then has no replica to promote."""
    import redis

    def all_see() -> bool:
        for port in ports:
            client = redis.Redis(port=port, socket_timeout=1)
            # Raw replies: redis-py 5's parsers for SENTINEL SLAVES/SENTINELS reject its own arguments.
            if len(client.execute_command("SENTINEL", "REPLICAS", SENTINEL_SERVICE)) < replicas:
                return False
            if len(client.execute_command("SENTINEL", "SENTINELS", SENTINEL_SERVICE)) < len(ports) - 1:
                return False
        return True

    _wait(all_see, timeout, "the Sentinels to discover the replica and each other")
