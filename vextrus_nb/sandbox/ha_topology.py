"""A standalone HA topology on real servers, for the tests and the failover bench: a PostgreSQL
primary with a streaming replica behind PgBouncer, and a Redis primary with a replica and three
Sentinels (ha_servers.py starts each). Context managers: whoever uses one owns a fresh one."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

from vextrus_nb.local_platform import free_ports
from vextrus_nb.postgres_binaries import find_bindir
from vextrus_nb.sandbox import ha_servers, supervisor
from vextrus_nb.sandbox.ha_servers import PgNode
from vextrus_nb.sandbox.real_servers import LOOPBACK, RealServer
from vextrus_nb.sandbox.redis_server import find_redis_server

SUPERUSER = "vextrus_admin"


@dataclass
class PgPair:
    primary: PgNode
    replica: PgNode
    pooler: RealServer
    password: str

    @property
    def pooled_dsn(self) -> str:
        where = f"host={LOOPBACK} port={self.pooler.port}"
        return f"{where} user={SUPERUSER} password={self.password} dbname=postgres"

    @property
    def console_dsn(self) -> str:
        return self.pooled_dsn

    @property
    def config(self) -> Path:
        return Path(self.pooler.extra["config"])


@contextlib.contextmanager
def pg_pair() -> Iterator[PgPair]:
    # Not under pytest's own directory: it is private to root, and PostgreSQL runs as its account.
    home = Path(tempfile.mkdtemp(prefix="vextrus-ha-"))
    password = secrets.token_hex(12)
    primary_port, replica_port, pooler_port = free_ports(3)
    primary = replica = pooler = None
    try:
        primary = ha_servers.init_primary(home, find_bindir(), primary_port, SUPERUSER, password)
        with psycopg.connect(primary.dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE heartbeat (id serial PRIMARY KEY, at timestamptz DEFAULT now())")
        replica = ha_servers.clone_replica(primary, home, "replica", replica_port)
        pooler = ha_servers.start_pgbouncer(
            home / "pgbouncer", pooler_port, primary_port, {SUPERUSER: password}, SUPERUSER
        )
        yield PgPair(primary, replica, pooler, password)
    finally:
        if pooler:
            pooler.stop()
        for node in (replica, primary):
            if node:
                node.stop()
        shutil.rmtree(home, ignore_errors=True)


@dataclass
class RedisSet:
    primary: RealServer
    replica: RealServer
    sentinels: list[RealServer]
    password: str

    @property
    def primary_port(self) -> int:
        return self.primary.port

    @property
    def addresses(self) -> list[str]:
        return [f"{LOOPBACK}:{s.port}" for s in self.sentinels]


@contextlib.contextmanager
def redis_set(home: Path) -> Iterator[RedisSet]:
    password = secrets.token_hex(12)
    primary_port, replica_port, *sentinel_ports = free_ports(5)
    config = home / "primary.conf"
    config.write_text(
        f'port {primary_port}\nbind {LOOPBACK}\ndir {home}\nsave ""\n'
        f"requirepass {password}\nmasterauth {password}\n"
    )
    config.chmod(0o600)
    primary_process = supervisor.start_ready(
        "redis-primary",
        [find_redis_server(), str(config)],
        home,
        probe=lambda: redis.Redis(port=primary_port, password=password).ping(),
        timeout=10,
    )
    servers: list[RealServer] = [RealServer("redis-primary", [primary_process], {"main": primary_port}, home)]
    try:
        replica = ha_servers.start_redis_replica(home / "replica", replica_port, primary_port, password)
        servers.append(replica)
        sentinels = ha_servers.start_sentinels(home, sentinel_ports, primary_port, password)
        servers += sentinels
        ha_servers.wait_for_sentinels_to_see_replicas(sentinel_ports, 1)
        yield RedisSet(servers[0], replica, sentinels, password)
    finally:
        for server in reversed(servers):
            server.stop()
