"""A small supervisor for real servers on loopback (issue 18).

Why it looks like this (docs/research/real-servers.md, "Supervision advice"):
- every server runs in its own process group (`start_new_session`), so one killpg reaches the
  shell wrappers, JVMs and Erlang helpers it forks, and a Ctrl+C in our terminal does not;
- each has a private working directory and log file under a root we are given, so nothing is
  written to /etc, /var or $HOME, and a failure can quote the server's own words;
- readiness is a protocol-level probe (a Kafka metadata call, `srvr`, an AMQP login), polled
  until a deadline: a listening port is not a server that answers;
- stopping is SIGTERM to the group, then SIGKILL after a grace period; Java, rclone and epmd
  exit 143/-15 on SIGTERM, which is a clean stop, not a failure;
- a context manager and an atexit hook stop whatever was started, so a crash in the caller
  never leaves a server behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from vextrus_nb.errors import ProcessExited, ServerNotReady
from vextrus_nb.ports import free_ports

POLL_INTERVAL_S = 0.05
DEFAULT_GRACE_S = 15.0
CLEAN_EXIT_CODES = frozenset({0, 143, -signal.SIGTERM})
LOG_TAIL_CHARS = 1500

Probe = Callable[[], object]
"""A readiness probe: truthy means ready; False, None or an exception means not yet."""

_live: set[ServerProcess] = set()
_live_lock = threading.Lock()


def free_port() -> int:
    """One free loopback port, reserved for this process (vextrus_nb.ports)."""
    return free_ports(1)[0]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def group_alive(pgid: int) -> bool:
    """Whether any process is left in the process group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_table() -> dict[int, int]:
    """pid -> parent pid of every process, from one pass over /proc/<pid>/stat (cheaper than
    walking every thread's children file: the JVM, Erlang and Go servers run hundreds)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces
    return parents


def descendants(pid: int, parents: dict[int, int] | None = None) -> set[int]:
    """pid and every process below it."""
    parents = _process_table() if parents is None else parents
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(children.get(current, ()))
    return found


PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def rss_tree_bytes(pid: int, parents: dict[int, int] | None = None) -> int:
    """Resident memory of pid and all its descendants, from /proc (0 once it is gone)."""
    total = 0
    for member in descendants(pid, parents):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int(Path(f"/proc/{member}/statm").read_text().split()[1]) * PAGE_BYTES
    return total


def wait_for(
    condition: Callable[[], object], timeout: float, interval: float = POLL_INTERVAL_S
) -> tuple[bool, BaseException | None]:
    """Poll condition until it is truthy or the deadline passes; (met, last exception seen)."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            if condition():
                return True, None
        except ProcessExited:
            raise
        except Exception as exc:  # a probe that raises simply is not ready yet
            last = exc
        if time.monotonic() >= deadline:
            return False, last
        time.sleep(interval)


@dataclass(eq=False)
class ServerProcess:
    """One supervised server process (and its process group)."""

    name: str
    command: list[str]
    workdir: Path
    log_path: Path
    popen: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)
    ready_after_s: float | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def pgid(self) -> int:
        """start_new_session makes the server its own group leader: pgid == pid."""
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def returncode(self) -> int | None:
        return self.popen.poll()

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - chars))
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def rss_bytes(self) -> int:
        return rss_tree_bytes(self.pid) if self.running() else 0

    def wait_ready(self, probe: Probe, timeout: float) -> float:
        """Wait until probe() is truthy; seconds since start. Raises ServerNotReady, naming the
        server and quoting its log, if the deadline passes or the process exits first."""

        def ready() -> object:
            if not self.running():
                raise ProcessExited(self.popen.returncode)
            return probe()

        try:
            met, last = wait_for(ready, timeout)
        except ProcessExited as exited:
            met, last = False, exited
        if met:
            self.ready_after_s = time.monotonic() - self.started_at
            return self.ready_after_s
        if isinstance(last, ProcessExited):
            why = f"exited with code {last.code} before it was ready"
        else:
            why = f"was not ready within {timeout:g}s" + (f" (last probe: {last!r})" if last else "")
        raise ServerNotReady(f"{self.name} {why}; log {self.log_path}:\n{self.log_tail()}")

    def stop(self, grace: float = DEFAULT_GRACE_S) -> int | None:
        """SIGTERM to the group, SIGKILL after grace; waits until the group is empty.
        Returns the leader's exit code (143/-15 count as clean: see CLEAN_EXIT_CODES)."""
        with _live_lock:
            _live.discard(self)
        if group_alive(self.pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGTERM)

            def gone() -> bool:
                self.popen.poll()
                return self.popen.returncode is not None and not group_alive(self.pgid)

            if not wait_for(gone, grace)[0]:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pgid, signal.SIGKILL)
                wait_for(gone, 10.0)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        return self.popen.returncode

    def stopped_cleanly(self) -> bool:
        return self.popen.returncode in CLEAN_EXIT_CODES

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start(
    name: str,
    command: Sequence[str],
    root: Path,
    env: Mapping[str, str] | None = None,
    workdir: Path | None = None,
) -> ServerProcess:
    """Start command in its own session, cwd a private directory (root/name unless given),
    stdout and stderr to root/name/<name>.log; registered so atexit stops it."""
    workdir = (workdir or root / name).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    full_env = {**os.environ, **(env or {})}
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(
            list(command),
            cwd=workdir,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process = ServerProcess(name=name, command=list(command), workdir=workdir, log_path=log_path, popen=popen)
    with _live_lock:
        _live.add(process)
    return process


def start_ready(
    name: str,
    command: Sequence[str],
    root: Path,
    probe: Probe,
    timeout: float,
    env: Mapping[str, str] | None = None,
    workdir: Path | None = None,
) -> ServerProcess:
    """start() then wait_ready(); a server that never gets ready is stopped before the error."""
    process = start(name, command, root, env=env, workdir=workdir)
    try:
        process.wait_ready(probe, timeout)
    except BaseException:
        process.stop(grace=5.0)
        raise
    return process


@contextlib.contextmanager
def supervised(process: ServerProcess) -> Iterator[ServerProcess]:
    """`with supervised(start(...)) as p:` stops p however the block ends."""
    try:
        yield process
    finally:
        process.stop()


def live_processes() -> list[ServerProcess]:
    with _live_lock:
        return list(_live)


@atexit.register
def _stop_all_at_exit() -> None:
    for process in live_processes():
        process.stop(grace=5.0)


def disown(process: ServerProcess) -> int:
    """Let the server outlive this process (the sandbox's daemons): no longer stopped at exit.
    Returns its pid, which whoever stops it later must keep."""
    with _live_lock:
        _live.discard(process)
    return process.pid
