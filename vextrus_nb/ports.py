"""Loopback ports for servers this project starts, never handed out twice on one machine.

Binding port 0 asks the kernel for a port from its ephemeral range, and the port is let go before
the server binds it: two sandboxes started at once (two pytest workers, a test run beside `make
demo`) can be handed the same one, and any outgoing connection may take it meanwhile. Ports here
come from a range below the ephemeral one, where the kernel never picks, each reserved by an
exclusive flock on a file under the system's temporary directory. The reservation is held by the
process that chose the port until it exits: by then the server has bound it (and a bind test skips
a port that is in use whoever reserved it).
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import socket
import tempfile
import threading
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# How many ports below the ephemeral range are ours to hand out.
RANGE_SIZE = 12_000
LOWEST_PORT = 1024
DEFAULT_EPHEMERAL_LOW = 32768

_held: dict[int, int] = {}  # port -> the file descriptor holding its reservation
_lock = threading.Lock()


def port_range() -> range:
    """The ports handed out: just below the kernel's ephemeral range (VEXTRUS_PORT_RANGE=LOW-HIGH
    overrides)."""
    if override := os.environ.get("VEXTRUS_PORT_RANGE"):
        low, _, high = override.partition("-")
        return range(int(low), int(high) + 1)
    try:
        ephemeral_low = int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = DEFAULT_EPHEMERAL_LOW
    return range(max(LOWEST_PORT, ephemeral_low - RANGE_SIZE), ephemeral_low)


def reservations_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / "vextrus-ports"
    folder.mkdir(mode=0o1777, exist_ok=True)
    return folder


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports, free now and reserved for this process until it exits."""
    candidates = port_range()
    if count <= 0:
        return []
    start = random.randrange(len(candidates))
    chosen: list[int] = []
    with _lock:
        for offset in range(len(candidates)):
            port = candidates[(start + offset) % len(candidates)]
            if port not in _held and _reserve(port):
                chosen.append(port)
                if len(chosen) == count:
                    return chosen
    raise OSError(errno.EADDRINUSE, f"no {count} free ports left in {candidates.start}-{candidates.stop - 1}")


def _reserve(port: int) -> bool:
    path = reservations_dir() / str(port)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    if not _bindable(port):
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        return False
    _held[port] = fd
    return True


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
