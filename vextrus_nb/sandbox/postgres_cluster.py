"""A throwaway PostgreSQL cluster: initdb, pg_ctl start/stop, roles and databases.

The server refuses to run as root, so when we are root the cluster belongs to
the `postgres` system user (or `nobody`) and lives in a temporary directory
that user can reach.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from vextrus_nb.errors import SandboxError


def _server_account() -> pwd.struct_passwd | None:
    """The account to run the server as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise SandboxError("running as root, and neither a 'postgres' nor a 'nobody' account exists")


@dataclass
class PostgresCluster:
    bindir: Path
    datadir: Path
    port: int
    superuser: str
    # Server settings given at every start (WAL archiving, say), so a restart keeps them.
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def logfile(self) -> Path:
        return self.datadir.parent / "postgres.log"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        account = _server_account()
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            check=False,
            user=account.pw_uid if account else None,
            group=account.pw_gid if account else None,
            extra_groups=[] if account else None,
            cwd=self.datadir.parent,
        )
        return result

    @staticmethod
    def new_home() -> Path:
        """A fresh temporary directory for a cluster's data directory (`home/data`, not made
        yet), the server account's own."""
        account = _server_account()
        home = Path(tempfile.mkdtemp(prefix="vextrus-pg-"))
        if account:
            os.chown(home, account.pw_uid, account.pw_gid)
        home.chmod(0o700)
        return home

    @classmethod
    def create(cls, bindir: Path, port: int, superuser: str, password: str) -> PostgresCluster:
        """initdb a new cluster in a fresh temporary directory, scram auth on loopback."""
        account = _server_account()
        home = cls.new_home()
        datadir = home / "data"
        pwfile = home / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if account:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        cluster = cls(bindir=bindir, datadir=datadir, port=port, superuser=superuser)
        result = cluster._run(
            "initdb",
            "-D",
            str(datadir),
            "-U",
            superuser,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "-E",
            "UTF8",
            "--no-instructions",
        )
        pwfile.unlink()
        if result.returncode != 0:
            shutil.rmtree(home, ignore_errors=True)
            raise SandboxError(f"initdb failed: {result.stderr.strip()[-500:]}")
        return cluster

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.datadir.parent} "
            "-c max_connections=200 -c shared_buffers=64MB -c fsync=off -c full_page_writes=off "
            "-c log_min_messages=warning"
        )
        for name, value in self.settings.items():
            options += f" -c {name}={shlex.quote(value)}"  # pg_ctl hands the options to a shell
        result = self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-l",
            str(self.logfile),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )
        if result.returncode != 0:
            tail = self.logfile.read_text()[-800:] if self.logfile.exists() else ""
            raise SandboxError(f"PostgreSQL did not start: {result.stderr.strip()} {tail}")

    def stop(self) -> None:
        if self.is_running():
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "-t", "60", "stop")

    def is_running(self) -> bool:
        if not self.datadir.exists():
            return False
        return self._run("pg_ctl", "-D", str(self.datadir), "status").returncode == 0

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.datadir.parent, ignore_errors=True)
