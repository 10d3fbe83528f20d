"""A thin, typed wrapper over the pgbackrest binary: physical backups, WAL archiving and
point-in-time restore. pgBackRest does the work; this module writes its configuration, runs
its commands and reads their answers (`info --output=json`, `verify --output=text`).

pgBackRest must run as the account that owns the data directory (it reads the files and its
repository must stay readable by the server's archive-push), so when we are root every
command runs as that owner. Secrets never reach a command line: the PostgreSQL password goes
by PGPASSWORD. Every error message is built from pgBackRest's own last error line, which
names files and WAL segments but never a secret.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psycopg

from vextrus_nb.errors import BackupError
from vextrus_nb.ports import free_ports

BINARY = "pgbackrest"
REPO_STATUS_OTHER = 99  # `info`'s status for a repository it could not read (not "no backups")
BackupKind = Literal["full", "incr", "diff"]
# pgBackRest's restore leaves these for PostgreSQL to read at start; ours are per restore.
RECOVERY_WAIT_S = 120.0
SYSTEM_DATABASES = frozenset({"postgres", "template0", "template1"})  # pgBackRest always restores these
# pg_controldata's name for each setting a recovering server must not set lower than the primary.
HOT_STANDBY_SETTINGS = {
    "max_connections": "max_connections",
    "max_worker_processes": "max_worker_processes",
    "max_wal_senders": "max_wal_senders",
    "max_prepared_xacts": "max_prepared_transactions",
    "max_locks_per_xact": "max_locks_per_transaction",
}


@dataclass(frozen=True)
class S3Repository:
    """A second repository on an S3 server (repo2): the object store, off the database host.

    pgBackRest speaks S3 only over TLS (no plain-HTTP endpoint exists in any version), so the
    server must serve HTTPS; `ca_file` is the certificate the endpoint is checked against. The
    keys are written into the configuration file (mode 0640, the cluster's account), which is
    where the server's own archive-push reads them: never on a command line."""

    # The name pgBackRest connects to and checks the certificate against: a DNS name, since it
    # matches no IP-address SAN ("localhost" for a loopback server, not "127.0.0.1").
    host: str
    port: int
    bucket: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    ca_file: Path | None = None
    region: str = "us-east-1"
    path: str = "/pgbackrest"

    def config_lines(self, number: int, ca_copy: Path) -> list[str]:
        """repo<number>'s options; `ca_copy`: where write_config puts the CA file for the
        cluster's account to read (the original may be in a directory only we can enter)."""
        repo = f"repo{number}"
        lines = [
            f"{repo}-type=s3",
            f"{repo}-path={self.path}",
            f"{repo}-s3-endpoint={self.host}",
            f"{repo}-storage-port={self.port}",
            f"{repo}-s3-bucket={self.bucket}",
            f"{repo}-s3-region={self.region}",
            f"{repo}-s3-uri-style=path",
            f"{repo}-s3-key={self.access_key}",
            f"{repo}-s3-key-secret={self.secret_key}",
            f"{repo}-retention-full=2",
        ]
        if self.ca_file is not None:
            lines.append(f"{repo}-storage-ca-file={ca_copy}")
        return lines


S3_REPO = 2  # the S3 repository's number: repo1 is always the local directory


@dataclass(frozen=True)
class Stanza:
    """One PostgreSQL cluster as pgBackRest sees it: where its data is, how to log in, and the
    repository its backups and archived WAL go to."""

    name: str
    pg_path: Path  # the cluster's data directory (the server's own `data_directory`)
    pg_port: int
    pg_socket: Path  # the unix socket directory: pgBackRest connects through it
    pg_user: str
    pg_password: str = field(repr=False)
    repo_path: Path = Path("/var/lib/pgbackrest")
    process_max: int = 2
    compress_type: str = "lz4"
    s3: S3Repository | None = None  # repo2, when the environment names one
    # How long pgBackRest waits on a silent connection before a retry (its default: 60 s). With
    # a repository on another server it bounds the stall when that server is down: archive-push
    # needs every repository, and pgBackRest tries four times (measured: 240 s at 60, 20 s at 5).
    io_timeout_s: int = 60

    @property
    def repositories(self) -> list[int]:
        return [1, S3_REPO] if self.s3 is not None else [1]

    def repository_location(self, repo: int) -> str:
        """Where a repository is, for a record: the local directory, or s3://bucket/path at its server."""
        if repo == S3_REPO and self.s3 is not None:
            return f"s3://{self.s3.bucket}{self.s3.path} at {self.s3.host}:{self.s3.port}"
        return str(self.repo_path)

    @property
    def work_dir(self) -> Path:
        """Configuration, logs and locks, beside the repository (its real path: the server's
        account must reach it, even when the repository path is a symbolic link)."""
        real = self.repo_path.resolve()
        return real.parent / f"{real.name}.work"

    @property
    def config_path(self) -> Path:
        return self.work_dir / "pgbackrest.conf"

    @property
    def s3_ca_path(self) -> Path:
        return self.work_dir / f"repo{S3_REPO}-ca.crt"

    def config_text(self) -> str:
        return "\n".join(
            [
                "[global]",
                f"repo1-path={self.repo_path.resolve()}",
                "repo1-retention-full=2",
                *(self.s3.config_lines(S3_REPO, self.s3_ca_path) if self.s3 is not None else []),
                f"compress-type={self.compress_type}",
                f"process-max={self.process_max}",
                f"io-timeout={self.io_timeout_s}",
                f"log-path={self.work_dir / 'log'}",
                f"lock-path={self.work_dir / 'lock'}",
                f"spool-path={self.work_dir / 'spool'}",
                "log-level-console=warn",
                "log-level-stderr=error",
                "log-level-file=info",
                "start-fast=y",
                "archive-check=y",
                "",
                f"[{self.name}]",
                f"pg1-path={self.pg_path}",
                f"pg1-port={self.pg_port}",
                f"pg1-socket-path={self.pg_socket}",
                f"pg1-user={self.pg_user}",
                "",
            ]
        )

    def archive_command(self) -> str:
        """What the server runs for each finished WAL segment (%p: its path)."""
        return f"{BINARY} --config={shlex.quote(str(self.config_path))} --stanza={self.name} archive-push %p"


def owner_of(path: Path) -> tuple[int, int] | None:
    """The (uid, gid) to run pgBackRest as: the data directory's owner when we are root."""
    if os.geteuid() != 0:
        return None
    info = path.stat()
    return info.st_uid, info.st_gid


def write_config(stanza: Stanza) -> Path:
    """The configuration file and the directories it names, owned by the cluster's account."""
    account = owner_of(stanza.pg_path)
    repo = stanza.repo_path.resolve()
    for directory in (repo, stanza.work_dir, stanza.work_dir / "log", stanza.work_dir / "lock"):
        directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        if account:
            os.chown(directory, *account)
    written = [stanza.config_path]
    if stanza.s3 is not None and stanza.s3.ca_file is not None:
        shutil.copyfile(stanza.s3.ca_file, stanza.s3_ca_path)
        written.append(stanza.s3_ca_path)
    stanza.config_path.write_text(stanza.config_text())
    for path in written:
        path.chmod(0o640)  # the S3 keys are in the configuration: not for others to read
        if account:
            os.chown(path, *account)
    return stanza.config_path


def _run(
    stanza: Stanza,
    command: str,
    *options: str,
    check: bool = True,
    pg_path: Path | None = None,
    positional: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    if shutil.which(BINARY) is None:
        raise BackupError("pgbackrest is not installed (Debian: apt-get install pgbackrest)")
    account = owner_of(pg_path or stanza.pg_path)
    env = {**os.environ, "PGPASSWORD": stanza.pg_password, "PGCONNECT_TIMEOUT": "10"}
    args = [BINARY, f"--config={stanza.config_path}", f"--stanza={stanza.name}", *options, command]
    args += positional
    done = subprocess.run(
        args,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        user=account[0] if account else None,
        group=account[1] if account else None,
        extra_groups=[] if account else None,
        cwd="/",
    )
    if check and done.returncode != 0:
        raise BackupError(f"pgbackrest {command} failed (exit {done.returncode}): {_last_error(done)}")
    return done


def _last_error(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (done.stderr + "\n" + done.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line]
    return (errors or lines or ["no output"])[-1][-400:]


# -- the stanza ---------------------------------------------------------------------------------
def stanza_create(stanza: Stanza) -> None:
    write_config(stanza)
    _run(stanza, "stanza-create")


def check(stanza: Stanza) -> None:
    """pgBackRest's own end-to-end check: the server's settings, and a WAL switch archived."""
    _run(stanza, "check")


def _repo_option(stanza: Stanza, repo: int | None) -> list[str]:
    """--repo=N for a command limited to one repository (none: pgBackRest's default), refused
    when the stanza has no such repository."""
    if repo is not None and repo not in stanza.repositories:
        raise BackupError(f"stanza {stanza.name} has no repository {repo} (it has {stanza.repositories})")
    return [f"--repo={repo}"] if repo is not None else []


def info(stanza: Stanza, repo: int | None = None) -> dict[str, Any]:
    """`pgbackrest info --output=json` for this stanza (in one repository, or all): its backups
    and archive range."""
    done = _run(stanza, "info", "--output=json", *_repo_option(stanza, repo))
    parsed = json.loads(done.stdout or "[]")
    if not parsed:
        raise BackupError(f"pgbackrest knows no stanza '{stanza.name}'")
    # info exits 0 when a repository cannot be read (wrong keys, the S3 server down): its
    # status says so, and an unreadable repository must not look like one without backups.
    for repository in parsed[0].get("repo", []):
        status = repository.get("status", {})
        if status.get("code") == REPO_STATUS_OTHER:
            reason = str(status.get("message", "")).splitlines()[0][:300]
            raise BackupError(f"pgbackrest cannot read repository {repository.get('key')}: {reason}")
    return dict(parsed[0])


# -- backups ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PhysicalBackup:
    """One pgBackRest backup as `info` reports it: its label, LSN range, WAL range and times."""

    label: str
    kind: str
    start_lsn: str
    stop_lsn: str
    wal_start: str
    wal_stop: str
    started_at: str  # ISO 8601, UTC
    stopped_at: str
    database_bytes: int
    repository_bytes: int
    prior: str = ""

    @classmethod
    def from_info(cls, entry: dict[str, Any]) -> PhysicalBackup:
        def iso(seconds: int) -> str:
            return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")

        return cls(
            label=entry["label"],
            kind=entry["type"],
            start_lsn=entry["lsn"]["start"],
            stop_lsn=entry["lsn"]["stop"],
            wal_start=entry["archive"]["start"],
            wal_stop=entry["archive"]["stop"],
            started_at=iso(entry["timestamp"]["start"]),
            stopped_at=iso(entry["timestamp"]["stop"]),
            database_bytes=int(entry["info"]["size"]),
            repository_bytes=int(entry["info"]["repository"]["delta"]),
            prior=entry.get("prior") or "",
        )


def backups(stanza: Stanza, repo: int | None = None) -> list[PhysicalBackup]:
    """The stanza's backups (in one repository, or all), oldest first."""
    return [PhysicalBackup.from_info(b) for b in info(stanza, repo).get("backup", [])]


def backup(stanza: Stanza, kind: BackupKind = "full", repo: int | None = None) -> PhysicalBackup:
    """Take a backup (an incremental one needs a full one before it) into one repository
    (pgBackRest's default: repo1) and return what `info` records of it."""
    if kind not in ("full", "incr", "diff"):
        raise BackupError(f"backup kind must be full, incr or diff, not {kind!r}")
    before = {b.label for b in backups(stanza, repo)}
    _run(stanza, "backup", f"--type={kind}", *_repo_option(stanza, repo))
    new = [b for b in backups(stanza, repo) if b.label not in before]
    if not new:
        raise BackupError("pgbackrest backup exited 0 but info lists no new backup")
    return new[-1]


def choose_backup(
    stanza: Stanza, target_time: datetime | None = None, repo: int | None = None
) -> PhysicalBackup:
    """The backup a restore to `target_time` starts from: the newest one that stopped before it
    (a second's margin: info's times are whole seconds); the newest of all for the latest point.
    `repo`: among one repository's backups (a label is the repository's own)."""
    taken = backups(stanza, repo)
    if target_time is not None:
        cutoff = target_time.timestamp() - 1
        taken = [b for b in taken if datetime.fromisoformat(b.stopped_at).timestamp() <= cutoff]
    if not taken:
        when = f"before {target_time.isoformat()}" if target_time else "at all"
        where = f" in repo{repo}" if repo is not None else ""
        raise BackupError(
            f"stanza {stanza.name} has no backup{where} finished {when}: take one with dr/backup"
        )
    return taken[-1]


# -- verify -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RepositoryProblem:
    """One thing `pgbackrest verify` found wrong, naming the file or WAL range."""

    what: str  # the backup label, WAL range or file path
    problem: str

    def __str__(self) -> str:
        return f"{self.what}: {self.problem}"


def verify(stanza: Stanza, repo: int | None = None) -> list[RepositoryProblem]:
    """Every backup file and archived WAL segment of a repository (repo1 unless told) against
    pgBackRest's checksums, and the archived WAL being one unbroken range. An empty list: the
    repository is sound.

    pgBackRest's verify exits 0 whatever it finds; what it finds is in its log lines (a file's
    checksum, a missing file, an unreadable segment) and its WAL ranges (two ranges: a gap)."""
    done = _run(
        stanza,
        "verify",
        "--log-level-console=detail",
        "--job-retry=0",
        *_repo_option(stanza, repo),
        check=False,
    )
    if done.returncode != 0:
        return [RepositoryProblem("repository", _last_error(done))]
    problems = [_named(stanza, what, path) for what, path in FILE_PROBLEM.findall(done.stdout)]
    ranges = WAL_RANGE.findall(done.stdout)
    for (archive_id, _, stop), (next_id, start, _) in itertools.pairwise(ranges):
        # Within one archive and one timeline only: a new timeline starts its own range.
        if archive_id == next_id and start[:8] == stop[:8] and start != next_segment(stop):
            gap = next_segment(stop)
            last = previous_segment(start)
            missing = gap if gap == last else f"{gap}..{last}"
            problems.append(RepositoryProblem(f"archive {archive_id}", f"WAL segment {missing} missing"))
    if not problems and "status: error" in done.stdout:
        problems.append(RepositoryProblem("repository", "pgbackrest verify reports an error"))
    return problems


FILE_PROBLEM = re.compile(r"INFO: (invalid checksum|file missing|invalid size|invalid result) '?([^' :]+)")
WAL_RANGE = re.compile(r"archiveId: (\S+), wal start: ([0-9A-F]{24}), wal stop: ([0-9A-F]{24})")
SEGMENTS_PER_ID = 0x100  # 16 MiB segments: 4 GiB of WAL per log id


def next_segment(name: str) -> str:
    timeline, log, seg = int(name[:8], 16), int(name[8:16], 16), int(name[16:24], 16) + 1
    if seg == SEGMENTS_PER_ID:
        log, seg = log + 1, 0
    return f"{timeline:08X}{log:08X}{seg:08X}"


def previous_segment(name: str) -> str:
    timeline, log, seg = int(name[:8], 16), int(name[8:16], 16), int(name[16:24], 16) - 1
    if seg < 0:
        log, seg = log - 1, SEGMENTS_PER_ID - 1
    return f"{timeline:08X}{log:08X}{seg:08X}"


def _named(stanza: Stanza, what: str, path: str) -> RepositoryProblem:
    """A file verify rejected, told apart: missing, truncated (shorter than the backup's own
    manifest records it in the repository) or corrupted (full size, wrong checksum)."""
    if what == "file missing":
        return RepositoryProblem(path, "missing from the repository")
    on_disk, expected = _repository_sizes(stanza, path)
    if on_disk is not None and expected is not None and on_disk < expected:
        return RepositoryProblem(path, f"truncated: {on_disk} bytes, the backup recorded {expected}")
    if what == "invalid result":
        return RepositoryProblem(path, "unreadable (truncated or corrupted)")
    return RepositoryProblem(path, "corrupted: checksum differs from the backup's manifest")


def _repository_sizes(stanza: Stanza, path: str) -> tuple[int | None, int | None]:
    """A backup file's size in a local repository, and the size its backup.manifest records."""
    label, _, relative = path.partition("/")
    backup_dir = stanza.repo_path.resolve() / "backup" / stanza.name / label
    manifest = backup_dir / "backup.manifest"
    if not manifest.is_file() or not (backup_dir / relative).is_file():
        return None, None
    key = relative.removesuffix("." + stanza.compress_type)
    for line in manifest.read_text().splitlines():
        name, sep, value = line.partition("={")
        if sep and name == key:
            entry = json.loads("{" + value)
            return (backup_dir / relative).stat().st_size, int(entry.get("repo-size", entry["size"]))
    return (backup_dir / relative).stat().st_size, None


# -- restore ------------------------------------------------------------------------------------
@dataclass
class RestoredCluster:
    """A cluster pgBackRest restored into a scratch data directory, started on a free loopback
    port, recovered to its target and promoted. Stop it (and delete it) when done."""

    bindir: Path
    datadir: Path
    port: int
    user: str
    password: str = field(repr=False)
    restore_s: float = 0.0
    start_s: float = 0.0

    @property
    def home(self) -> Path:
        return self.datadir.parent

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            dbname=database,
            user=self.user,
            password=self.password,
            autocommit=True,
            connect_timeout=10,
            application_name="vextrus-nb-pitr",
        )

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        account = owner_of(self.datadir)
        return subprocess.run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args],
            capture_output=True,
            text=True,
            check=False,
            user=account[0] if account else None,
            group=account[1] if account else None,
            extra_groups=[] if account else None,
            cwd=self.home,
        )

    def primary_settings(self) -> dict[str, str]:
        """The settings recovery needs at least as high as the primary had (pg_controldata names
        them): the primary may have set them at start, on its command line, not in a file."""
        done = subprocess.run(
            [str(self.bindir / "pg_controldata"), str(self.datadir)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "LC_ALL": "C"},
        )
        found = {}
        for line in done.stdout.splitlines():
            name, _, value = line.partition(" setting:")
            if value.strip() and name.strip() in HOT_STANDBY_SETTINGS:
                found[HOT_STANDBY_SETTINGS[name.strip()]] = value.strip()
        return found

    def start(self) -> None:
        """Start it: PostgreSQL replays WAL to the target, then pgBackRest's target-action promotes."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.home} "
            "-c archive_mode=off -c shared_buffers=32MB -c fsync=off"
        )
        for name, value in self.primary_settings().items():
            options += f" -c {name}={value}"
        started = time.perf_counter()
        done = self._pg_ctl("-l", str(self.home / "postgres.log"), "-o", options, "-w", "-t", "120", "start")
        if done.returncode != 0:
            raise BackupError(f"the restored cluster did not start: {self.log_tail()}")
        self.wait_promoted()
        self.start_s = time.perf_counter() - started

    def wait_promoted(self, timeout_s: float = RECOVERY_WAIT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with self.connect() as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row and not row[0]:
                    return
            except psycopg.OperationalError:
                # Still replaying (connections are refused until consistency), or dead: a
                # recovery that aborted is not worth waiting out.
                if self._pg_ctl("status").returncode != 0:
                    raise BackupError(
                        f"the restored cluster stopped during recovery: {self.log_tail()}"
                    ) from None
            time.sleep(0.1)
        raise BackupError(
            f"the restored cluster was still recovering after {timeout_s:g}s: {self.log_tail()}"
        )

    def log_tail(self, chars: int = 600) -> str:
        log = self.home / "postgres.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            self._pg_ctl("-m", "immediate", "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.home, ignore_errors=True)


def scratch_home(stanza: Stanza, label: str) -> Path:
    """A fresh directory for a restored cluster, beside the repository's work directory and
    owned by the cluster's account (the server refuses a data directory it does not own)."""
    # Short: the server's unix socket goes in it, and socket paths hold at most 107 bytes.
    home = stanza.work_dir / "r" / label
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True, mode=0o700)
    account = owner_of(stanza.pg_path)
    if account:
        for directory in (stanza.work_dir / "r", home):
            os.chown(directory, *account)
    return home


def restore_files(
    stanza: Stanza,
    into: Path,
    target_time: datetime | None = None,
    backup_label: str = "",
    databases: list[str] | None = None,
    repo: int | None = None,
) -> float:
    """pgBackRest's restore of the data directory into `into` (which must not exist yet; its
    parent must belong to the cluster's account), set to recover to `target_time` (or the end of
    the archived WAL when None) and promote at its first start; nothing is started. Returns the
    seconds it took.

    Archiving is off in the restored files: the copy must never push WAL into the stanza it came
    from (a server that archives elsewhere says so on its command line, which wins).
    `databases` restores only those (and the system databases, `postgres` among them):
    pgBackRest's --db-include leaves the others as empty files the copy cannot open, and is
    that much faster. `repo`: the repository to restore from (pgBackRest's default: the first
    that holds the backup)."""
    if into.exists():
        raise BackupError(f"{into} already exists: a restore goes into a fresh directory")
    from_repo = _repo_option(stanza, repo)  # an unknown repository: refused before anything is made
    into.mkdir(mode=0o700)
    account = owner_of(into.parent)
    if account:
        os.chown(into, *account)
    options = [f"--pg1-path={into}", "--archive-mode=off", *from_repo]
    if backup_label:
        options.append(f"--set={backup_label}")
    for database in sorted(set(databases or ()) - SYSTEM_DATABASES):
        options.append(f"--db-include={database}")
    if target_time is not None:
        stamp = target_time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")
        options += ["--type=time", f"--target={stamp}", "--target-action=promote"]
    else:
        options.append("--type=default")  # replay every archived segment: the newest point
    started = time.perf_counter()
    _run(stanza, "restore", *options, pg_path=into)
    return time.perf_counter() - started


def restore(
    stanza: Stanza,
    into: Path,
    bindir: Path,
    target_time: datetime | None = None,
    backup_label: str = "",
    port: int | None = None,
    databases: list[str] | None = None,
    repo: int | None = None,
) -> RestoredCluster:
    """restore_files into `into`, then start the copy on a free loopback port (a scratch
    server: no archiving, fsync off), recovered to the target and promoted."""
    restore_s = restore_files(stanza, into, target_time, backup_label, databases, repo)
    cluster = RestoredCluster(
        bindir,
        into,
        port or free_ports(1)[0],
        stanza.pg_user,
        stanza.pg_password,
        restore_s=restore_s,
    )
    try:
        cluster.start()
    except BaseException:
        cluster.stop()  # the data directory stays, for whoever reads the error
        raise
    return cluster


# -- the recovery point -------------------------------------------------------------------------
@dataclass(frozen=True)
class ArchiveStatus:
    """How far behind the archive is: the last segment archived, when, and whether archiving is
    failing now (a failure newer than the last success)."""

    last_archived_wal: str
    last_archived_at: datetime | None
    failed_count: int
    failing: bool
    rpo_s: float  # seconds of writes not yet in the repository, at most

    def summary(self) -> dict[str, Any]:
        return {
            "last_archived_wal": self.last_archived_wal,
            "last_archived_at": self.last_archived_at.isoformat() if self.last_archived_at else None,
            "archive_failing": self.failing,
            "rpo_s": round(self.rpo_s, 1),
        }


ARCHIVER = """
SELECT last_archived_wal, last_archived_time, failed_count,
       coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false), now()
FROM pg_stat_archiver
"""


def archive_status(conn: psycopg.Connection, stanza: Stanza | None = None) -> ArchiveStatus:
    """The recovery point: the age of the last archived WAL segment (pg_stat_archiver), checked
    against the repository's own newest segment (`info`) when a stanza is given: a segment the
    server thinks archived but the repository lacks is not a recovery point."""
    row = conn.execute(ARCHIVER).fetchone()
    assert row is not None
    wal, archived_at, failed, failing, now = row
    if stanza is not None and wal:
        archives = info(stanza).get("archive", [])
        newest = max((a.get("max") or "" for a in archives), default="")
        if not repository_holds(newest, wal):
            raise BackupError(
                f"the server archived {wal} but the repository's newest segment is {newest or 'none'}"
            )
    rpo = (now - archived_at).total_seconds() if archived_at else float("inf")
    return ArchiveStatus(wal or "", archived_at, int(failed), bool(failing), rpo)


def repository_holds(newest: str, archived: str) -> bool:
    """Whether a repository whose newest whole segment is `newest` holds the server's last
    archived file. A promotion archives the old timeline's last, unfinished segment as
    `<segment>.partial`, which pgBackRest keeps but leaves out of its `max`: the whole segments
    before it are what must be there."""
    segment = archived[:24]
    if archived.endswith(".partial"):
        segment = _previous_segment(segment)
    return newest >= segment


def _previous_segment(name: str) -> str:
    """The WAL file name before `name` on the same timeline (16 MiB segments: 256 per log)."""
    timeline, log, seg = int(name[:8], 16), int(name[8:16], 16), int(name[16:24], 16)
    log, seg = (log, seg - 1) if seg else (log - 1, 0xFF)
    return f"{timeline:08X}{log:08X}{seg:08X}"


def switch_wal(conn: psycopg.Connection) -> str:
    """Close the current WAL segment so it is archived now (a recovery point at this moment)."""
    row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
    return str(row[0]) if row else ""


def wait_archived(conn: psycopg.Connection, segment: str, timeout_s: float = 60.0) -> None:
    """Until pg_stat_archiver's last archived segment reaches `segment`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = conn.execute("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver").fetchone()
        if row and row[0] >= segment:
            return
        time.sleep(0.1)
    raise BackupError(f"WAL segment {segment} was not archived within {timeout_s:g}s")


def iter_backup_files(stanza: Stanza, label: str) -> Iterator[Path]:
    """The files of one backup in the repository (for a verify test, or a size report)."""
    root = stanza.repo_path.resolve() / "backup" / stanza.name / label
    yield from sorted(p for p in root.rglob("*") if p.is_file())
