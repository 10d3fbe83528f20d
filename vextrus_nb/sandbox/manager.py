"""Start, stop, inspect and break the sandbox. Everything it owns lives under
one directory (paths.sandbox_dir()), except the PostgreSQL data directory,
which must belong to the server's own account when we run as root; its path is
in the state file."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
from psycopg import sql

from vextrus_nb import paths
from vextrus_nb.backup import heartbeat, pgbackrest
from vextrus_nb.config import HA_ENDPOINTS, Component, Inventory, load_inventory
from vextrus_nb.credentials import (
    JWT_KEY_SECRET,
    LOAD_USER_SECRET,
    pg_role_name,
    pg_secret_name,
    redis_secret_name,
)
from vextrus_nb.errors import SandboxError
from vextrus_nb.ports import free_ports
from vextrus_nb.postgres_binaries import find_bindir
from vextrus_nb.sandbox import (
    backup_repositories,
    control_store,
    events,
    ha_topology,
    links,
    real_platform,
    redis_server,
)
from vextrus_nb.sandbox import faults as fault_modes
from vextrus_nb.sandbox.ha_servers import PgNode
from vextrus_nb.sandbox.postgres_cluster import PostgresCluster
from vextrus_nb.sandbox.seed import seed_statements
from vextrus_nb.sandbox_state import SandboxState, pid_alive, read_faults, write_faults

if TYPE_CHECKING:
    from vextrus_nb.drivers.base import PostgresRecovery

ADMIN_USER = "vextrus_admin"
# The services process starts the real servers before it answers: RabbitMQ's ~8-10 s is the
# critical path on an idle machine; a loaded CI runner can take several times that.
SERVICES_START_TIMEOUT_S = 120.0
# A heal restarts real servers inside the reload; the control call waits for them.
RELOAD_TIMEOUT_S = 120.0
# Stopping the services process stops every real server (in parallel, each SIGTERM then SIGKILL).
SERVICES_STOP_TIMEOUT_S = 40.0
# The stanza parameters/environments/sandbox.yaml names (backup.pgbackrest.stanza).
SANDBOX_STANZA = "vextrus"
# WAL is switched and archived at least this often while anything is written: the recovery
# point stays within 60 s (the heartbeat writes every second, so there always is a write).
ARCHIVE_TIMEOUT_S = 10
# While this file is in the sandbox's directory its services process writes no heartbeat: a
# restored cluster's recovery point is being read.
HEARTBEAT_HOLD = "heartbeat.hold"
DEPLOYMENT_VARIANTS = ("planted", "hardened")
DEFAULT_DEPLOYMENT = "planted"


def _root(root: Path | None) -> Path:
    return (root or paths.sandbox_dir()).resolve()


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """Serialise changes to one sandbox (two `fault` commands at once, say)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def cluster(state: SandboxState) -> PostgresCluster:
    """The PostgreSQL primary: whichever node the state's `postgres` names (a failover moves it)."""
    return _node_cluster(state, Path(state.pg_datadir), state.ports["postgres"])


def _node_cluster(state: SandboxState, datadir: Path, port: int) -> PostgresCluster:
    """Either node of the pair, started with the same settings: a replica promoted is then a
    primary like the first (it archives its WAL, it logs hint bits)."""
    settings = {}
    if state.extra.get("pgbackrest"):
        settings = {
            "wal_level": "replica",
            "archive_mode": "on",
            "archive_timeout": str(ARCHIVE_TIMEOUT_S),
            "archive_command": stanza(state).archive_command(),
            # On, over the sandbox's speed default: a restore of some databases only (pgBackRest's
            # --db-include zeroes the others) replays WAL safely only when the first change of a
            # page after a checkpoint carries the whole page.
            "full_page_writes": "on",
            # ... and a hint-bit change (PD_ALL_VISIBLE, say) too: without it, replaying a
            # Heap2/VISIBLE record onto a zeroed page of an excluded database is "WAL contains
            # references to invalid pages" (seen restoring `-p services=finance` to latest).
            "wal_log_hints": "on",
        }
    return PostgresCluster(Path(state.pg_bindir), datadir, port, ADMIN_USER, settings)


def start_node(state: SandboxState) -> ha_topology.StartNode:
    """How the HA topology starts a PostgreSQL node of this sandbox (a clone, a rejoined one)."""

    def start(node: PgNode) -> None:
        _node_cluster(state, node.datadir, node.port).start()

    return start


def stanza(state: SandboxState) -> pgbackrest.Stanza:
    datadir = Path(state.pg_datadir)
    return pgbackrest.Stanza(
        name=SANDBOX_STANZA,
        pg_path=datadir,
        pg_port=state.ports["postgres"],
        pg_socket=datadir.parent,
        pg_user=ADMIN_USER,
        pg_password=state.secret("postgres_password"),
        repo_path=state.root / "backups" / "pgbackrest",
        s3=backup_repositories.s3_repository(state),
        io_timeout_s=backup_repositories.IO_TIMEOUT_S,
    )


def _prepare_repository(state: SandboxState) -> None:
    """The pgBackRest repository at the environment's backup directory + /pgbackrest. When we
    are root the server runs as another account, which cannot reach into our directories
    (the sandbox's is 0700): the repository then lives beside the data directory, in that
    account's own, and the backup directory holds a symbolic link to it."""
    link = state.root / "backups" / "pgbackrest"
    link.parent.mkdir(parents=True, exist_ok=True)
    if pgbackrest.owner_of(Path(state.pg_datadir)) is not None:
        real = Path(state.pg_datadir).parent / "pgbackrest"
        real.mkdir(exist_ok=True)
        link.symlink_to(real)
    state.extra["pgbackrest"] = {"stanza": SANDBOX_STANZA, "repository": str(link)}
    pgbackrest.write_config(stanza(state))


def is_running(root: Path | None = None) -> bool:
    root = _root(root)
    try:
        state = SandboxState.load(root)
    except SandboxError:
        return False
    return pid_alive(state.services_pid)


def up(
    root: Path | None = None,
    scale: float = 1.0,
    inventory: Inventory | None = None,
    deployment: str | None = None,
    control: bool = False,
    postgres: PostgresRecovery | None = None,
    secrets_from: Path | None = None,
) -> SandboxState:
    """Start the sandbox (or return the running one). Idempotent.

    `deployment` picks the deployment files the checklist reads (see
    use_deployment); a fresh sandbox gets the planted variant unless told. `control`: also
    its own control store (sandbox/control_store.py), settings in root/control.yaml.

    A fresh sandbox's PostgreSQL is `postgres`'s recovery when given (no initdb, no seed: it is
    started once restored, recovers, promotes and is proven before the services process starts
    writing to it), and its secrets are those of the sandbox at `secrets_from` when given (a
    second platform recovered from the first takes the first's credentials)."""
    root = _root(root)
    if scale <= 0:
        raise SandboxError(f"--scale must be positive, got {scale}")
    if deployment is not None:
        _deployment_source(deployment)  # refuse an unknown variant before starting anything
    with locked(root):
        fresh = not is_running(root)
        if fresh:
            if (root / "state.json").exists():
                _teardown(root)  # a crashed sandbox's leftovers
            # The variant's files first: the services process reads it to configure Traefik
            # and the platform's topics, buckets and namespace.
            _copy_deployment(root, deployment or DEFAULT_DEPLOYMENT)
            state = _start(root, scale, inventory or load_inventory(), postgres, secrets_from)
        else:
            state = SandboxState.load(root)
        if control:
            control_store.wire_into_sandbox(control_store.for_sandbox(root), state)
    if deployment is not None and not fresh:
        use_deployment(deployment, root)
    return state


def _deployment_source(variant: str) -> Path:
    source = paths.project_root() / "deploy" / "sandbox" / variant
    if variant not in DEPLOYMENT_VARIANTS or not source.is_dir():
        raise SandboxError(
            f"unknown deployment variant '{variant}'; variants: {', '.join(DEPLOYMENT_VARIANTS)}"
        )
    return source


def use_deployment(variant: str, root: Path | None = None) -> Path:
    """Copy a variant of the deployment files (deploy/sandbox/<variant>) into the
    sandbox, where the sandbox environment names them: `planted` carries the
    findings the reference documents describe, `hardened` passes every static check."""
    root = _root(root)
    _deployment_source(variant)
    with locked(root):
        target = _copy_deployment(root, variant)
        if is_running(root):  # the live platform follows: Traefik, topics, namespace, replicas
            state = SandboxState.load(root)
            _control(state, "POST", "/deployment")
            _apply_ha_variant(state, variant)
    return target


def _copy_deployment(root: Path, variant: str) -> Path:
    source = _deployment_source(variant)
    root.mkdir(parents=True, exist_ok=True)
    target = root / "deploy"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    (target / "VARIANT").write_text(variant + "\n")
    return target


def deployment_variant(root: Path | None = None) -> str | None:
    marker = _root(root) / "deploy" / "VARIANT"
    return marker.read_text().strip() if marker.is_file() else None


def _start(
    root: Path,
    scale: float,
    inventory: Inventory,
    recovery: PostgresRecovery | None = None,
    secrets_from: Path | None = None,
) -> SandboxState:
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    names = list(inventory.start_order)
    extra_roles = real_platform.extra_port_roles()
    wanted = [*names, *real_platform.EXTRA_PORT_NAMES, *HA_ENDPOINTS, "__control__"]
    allocated = free_ports(len(wanted) + len(extra_roles))
    ports = dict(zip(wanted, allocated, strict=False))
    control_port = ports.pop("__control__")
    real_ports: dict[str, dict[str, int]] = {}
    for (component, role), port in zip(extra_roles, allocated[len(wanted) :], strict=True):
        real_ports.setdefault(component, {})[role] = port
    services = [c for c in inventory.services()]
    state = SandboxState(
        root=root,
        ports=ports,
        control_port=control_port,
        pg_bindir=str(find_bindir()),
        pg_datadir="",
        scale=scale,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        extra={"inventory": str(paths.parameters_dir() / "inventory.yaml"), "real_ports": real_ports},
    )
    if secrets_from is None:
        _new_secrets(state, services)
    else:
        _copy_secrets(SandboxState.load(secrets_from.resolve()), state)

    if recovery is None:
        created = PostgresCluster.create(
            Path(state.pg_bindir), ports["postgres"], ADMIN_USER, state.secret("postgres_password")
        )
        state.pg_datadir = str(created.datadir)
        ha_topology.prepare_sandbox_primary(created.datadir)
    else:
        # Restored into below: the data directory (and its HA settings) are the backup's.
        state.pg_datadir = str(PostgresCluster.new_home() / "data")
    state.save()
    recovering: ThreadPoolExecutor | None = None
    try:
        if recovery is None:
            _prepare_repository(state)
            state.save()
            cluster(state).start()
            pgbackrest.stanza_create(stanza(state))  # before the first segment is pushed
            with _admin_connect(state, heartbeat.DATABASE) as conn:
                heartbeat.ensure_table(conn)
            _provision_databases(state, inventory, scale)
        else:
            # Restored, recovered and proven while the rest starts: the services process holds
            # its heartbeats (the proof reads the recovery point) until that ends.
            (root / HEARTBEAT_HOLD).touch()
            state.extra["pgbackrest"] = {}  # the keys both threads set, made before they start
            ha_topology.ha_record(state)
            recovering = ThreadPoolExecutor(max_workers=1, thread_name_prefix="postgres-recovery")
            postgres_ready = recovering.submit(_recover_postgres, state, recovery)
        try:
            _start_redis_and_services(state, services)
        finally:
            if recovering is not None:
                recovering.shutdown(wait=True)  # never torn down under a running restore
        if recovering is not None:
            postgres_ready.result()  # its error, if it failed
            (root / HEARTBEAT_HOLD).unlink(missing_ok=True)
            state.save()
        backup_repositories.enable_s3_repository(state)
        pgbackrest.stanza_create(stanza(state))  # in repo2 now: every segment goes to both
        ha_topology.start_sandbox_sentinels(state)
        _apply_ha_variant(state, deployment_variant(root) or DEFAULT_DEPLOYMENT)
        for name in names:
            events.record(root, name, "Started", f"{name} started on port {ports[name]}")
    except psycopg.Error as exc:
        _teardown(root)
        raise SandboxError(f"provisioning the sandbox databases failed: {exc}") from None
    except BaseException:
        _teardown(root)
        raise
    return state


def _recover_postgres(state: SandboxState, recovery: PostgresRecovery) -> None:
    """The cluster restored by `recovery`, started with the sandbox's settings (its WAL archived
    into this sandbox's own stanza), recovered, promoted and proven. Saves no state: the caller's
    thread does, once this has ended."""
    recovery.restore_into(Path(state.pg_datadir))
    _prepare_repository(state)
    cluster(state).start()
    _wait_promoted(state)
    recovery.proven("127.0.0.1", state.ports["postgres"])
    pgbackrest.stanza_create(stanza(state))  # before the first segment is pushed
    with _admin_connect(state, heartbeat.DATABASE) as conn:
        heartbeat.ensure_table(conn)


def _start_redis_and_services(state: SandboxState, services: list[Component]) -> None:
    """Redis (and PgBouncer), then the services process, until it answers."""
    # Redis's files (and its replica's and the Sentinels', which hold its password as Redis
    # requires: masterauth, auth-pass) in a private directory of their own, as PostgreSQL's
    # data directory is, not among the sandbox's operator-facing files.
    redis_home = Path(tempfile.mkdtemp(prefix="vextrus-redis-"))
    ha_topology.ha_record(state)["redis_home"] = str(redis_home)
    state.save()
    conf = redis_server.write_config(
        redis_home,
        state.ports["redis"],
        state.secret("redis_password"),
        {s.name: state.secret(redis_secret_name(s.name)) for s in services},
    )
    _prepare_redis_for_replication(conf, state.secret("redis_password"))
    state.redis_pid = redis_server.start(conf, state.ports["redis"], state.secret("redis_password"))
    ha_topology.start_sandbox_plumbing(state, ADMIN_USER)
    state.save()
    write_faults(state.root, {})
    state.services_pid = _spawn_services(state.root)
    state.save()
    _wait_for_services(state)


def _new_secrets(state: SandboxState, services: list[Component]) -> None:
    state.write_secret("postgres_password", secrets.token_urlsafe(24))
    state.write_secret("redis_password", secrets.token_urlsafe(24))
    state.write_secret(JWT_KEY_SECRET, secrets.token_urlsafe(48))
    state.write_secret(LOAD_USER_SECRET, secrets.token_urlsafe(24))
    for names_by_key in real_platform.CREDENTIAL_SECRETS.values():
        for secret_name in names_by_key.values():
            state.write_secret(secret_name, secrets.token_hex(16))
    for service in services:
        state.write_secret(pg_secret_name(service.name), secrets.token_urlsafe(24))
        state.write_secret(redis_secret_name(service.name), secrets.token_urlsafe(24))


def _copy_secrets(source: SandboxState, state: SandboxState) -> None:
    """Every secret of the sandbox `source` as it holds it now (a rotated one included): the
    secret store a recovered platform reads."""
    for path in sorted(source.secrets_dir.iterdir()):
        if path.is_file():
            state.write_secret(path.name, path.read_text())


def _wait_promoted(state: SandboxState) -> None:
    """Until the restored primary has replayed the archived WAL and promoted (it accepts
    connections, read-only, before that)."""
    pgbackrest.RestoredCluster(
        Path(state.pg_bindir),
        Path(state.pg_datadir),
        state.ports["postgres"],
        ADMIN_USER,
        state.secret("postgres_password"),
    ).wait_promoted()


def _prepare_redis_for_replication(conf: Path, password: str) -> None:
    """The primary's file gains what it needs to be a replica after a failover (Sentinel
    repoints it; it must log in to the new primary) and a full sync without diskless
    replication's 5 s wait for more replicas."""
    with open(conf, "a") as handle:
        handle.write(f"masterauth {password}\nrepl-diskless-sync-delay 0\n")


def redis_conf(state: SandboxState) -> Path:
    """The Redis primary's file (after a failover, the former replica's)."""
    record = ha_topology.ha_record(state)
    return Path(record.get("redis_conf", {}).get("redis", ha_topology.redis_home(state) / "redis.conf"))


def redis_log(state: SandboxState) -> Path:
    """The Redis primary's log file, as its configuration names it."""
    for line in redis_conf(state).read_text().splitlines():
        if line.startswith("logfile "):
            return Path(line.split(None, 1)[1].strip().strip('"'))
    return redis_conf(state).parent / "redis.log"


def _apply_ha_variant(state: SandboxState, variant: str) -> None:
    """The hardened variant runs both replicas; the planted one single instances (critical gap 3).
    The Sentinels must know each other either way: a quorum is counted among them."""
    if variant == "hardened":
        ha_topology.start_sandbox_replicas(state, ADMIN_USER, start_node(state))
    elif ha_topology.ha_record(state).get("replicas"):
        ha_topology.stop_sandbox_replicas(state, ADMIN_USER)
    else:
        ha_topology.publish_replicas(state, deployed=False)
        ha_topology.wait_for_sentinels(state, replicas=0)
    state.save()


def _admin_connect(state: SandboxState, dbname: str = "postgres") -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1",
        port=state.ports["postgres"],
        dbname=dbname,
        user=ADMIN_USER,
        password=state.secret("postgres_password"),
        autocommit=True,
        connect_timeout=5,
    )


def _provision_databases(state: SandboxState, inventory: Inventory, scale: float) -> None:
    with_db = {c.name: c.database for c in inventory.services() if c.database}
    with _admin_connect(state) as conn:
        for name, database in with_db.items():
            role = pg_role_name(name)
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(state.secret(pg_secret_name(name)))
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(role))
            )

    def seed(service_name: str, database: str) -> None:
        with psycopg.connect(
            host="127.0.0.1",
            port=state.ports["postgres"],
            dbname=database,
            user=pg_role_name(service_name),
            password=state.secret(pg_secret_name(service_name)),
        ) as conn:
            for statement in seed_statements(service_name, scale):
                conn.execute(statement)
            conn.execute("ANALYZE")

    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(seed, name, database) for name, database in with_db.items()]:
            future.result()


def _spawn_services(root: Path) -> int:
    log = open(root / "services.log", "ab")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(
        [sys.executable, "-m", "vextrus_nb.sandbox.control", str(root)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    return process.pid


def _control(
    state: SandboxState, method: str, path: str, timeout: float = RELOAD_TIMEOUT_S
) -> dict[str, Any]:
    response = httpx.request(method, f"http://127.0.0.1:{state.control_port}{path}", timeout=timeout)
    response.raise_for_status()
    return response.json()


def _wait_for_services(state: SandboxState) -> None:
    deadline = time.monotonic() + SERVICES_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if not pid_alive(state.services_pid):
            raise SandboxError(f"sandbox services exited at start: {_tail(state.root / 'services.log')}")
        try:
            _control(state, "GET", "/status", timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SandboxError(f"sandbox services did not answer within {SERVICES_START_TIMEOUT_S:g}s")


def _tail(path: Path, chars: int = 800) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def down(root: Path | None = None) -> bool:
    """Stop everything and delete the sandbox's state. False if nothing was there."""
    root = _root(root)
    if not (root / "state.json").exists():
        return False
    with locked(root):
        _teardown(root)
    return True


def _teardown(root: Path) -> None:
    try:
        state = SandboxState.load(root)
    except SandboxError:
        shutil.rmtree(root, ignore_errors=True)
        return
    if state.pg_datadir:
        # Before the S3 server goes (with the services process): the shutdown's last archive-push
        # needs every repository, and would wait on a stopped one.
        with contextlib.suppress(Exception):
            cluster(state).stop()
    if pid_alive(state.services_pid):
        os.kill(state.services_pid, signal.SIGTERM)  # type: ignore[arg-type]
        deadline = time.monotonic() + SERVICES_STOP_TIMEOUT_S
        while pid_alive(state.services_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(state.services_pid):
            os.kill(state.services_pid, signal.SIGKILL)  # type: ignore[arg-type]
    # Whatever real server the services process could not stop (it was killed, or crashed).
    real_platform.kill_recorded(root)
    with contextlib.suppress(Exception):  # a half-started topology: whatever of it there is
        ha_topology.stop_sandbox_ha(state, ADMIN_USER)
    if pid_alive(state.redis_pid):
        redis_server.stop(state.ports["redis"], state.secret("redis_password"))
    if state.pg_datadir:
        cluster(state).destroy()
        # Both nodes live under the first one's directory (a failover may have swapped them).
        if home := ha_topology.ha_record(state).get("pg_home"):
            shutil.rmtree(home, ignore_errors=True)
    if home := ha_topology.ha_record(state).get("redis_home"):
        shutil.rmtree(home, ignore_errors=True)
    if (store := control_store.of_sandbox(root)) is not None:
        with contextlib.suppress(Exception):
            store.remove()
    shutil.rmtree(root, ignore_errors=True)


def status(root: Path | None = None) -> dict[str, Any]:
    """What is running, on which port, with which fault."""
    root = _root(root)
    state = SandboxState.load(root)
    faults = read_faults(root)
    served: dict[str, Any] = {}
    if pid_alive(state.services_pid):
        with contextlib.suppress(httpx.HTTPError):
            served = _control(state, "GET", "/status", timeout=2.0)
    rows = {
        "postgres": {
            "port": state.ports["postgres"],
            "running": cluster(state).is_running(),
            "fault": faults.get("postgres"),
            "real": True,
            "server": "postgres",
        },
        "redis": {
            "port": state.ports["redis"],
            "running": pid_alive(state.redis_pid),
            "fault": faults.get("redis"),
            "real": True,
            "server": "redis-server",
        },
    }
    inventory = load_inventory(Path(state.extra["inventory"]))
    services = {s.name for s in inventory.services()}
    for name, info in served.items():
        rows[name] = {
            "port": info["port"],
            "running": info["listening"],
            "fault": info["fault"],
            "real": info.get("real", False),
            "server": info.get("server") or ("service" if name in services else "simulated"),
        }
        if info.get("real"):
            rows[name]["rss_bytes"] = info.get("rss_bytes", 0)
    order = [n for n in inventory.start_order if n in rows]
    rows = {name: rows[name] for name in [*order, *(n for n in rows if n not in order)]}
    return {
        "root": str(root),
        "real_rss_bytes": sum(r.get("rss_bytes", 0) for r in rows.values()),
        "total_rss_bytes": _total_rss(state),
        "started_at": state.started_at,
        "scale": state.scale,
        "deployment": deployment_variant(root),
        "services_process": pid_alive(state.services_pid),
        "components": rows,
        # High availability's parts beside the inventory's components (config.HA_ENDPOINTS).
        "ha": _ha_rows(state, faults),
        "control": _control_store_row(root, faults),
    }


def _control_store_row(root: Path, faults: dict[str, Any]) -> dict[str, Any] | None:
    """The sandbox's control store (`up --control`), not part of the platform it runs."""
    store = control_store.of_sandbox(root)
    if store is None:
        return None
    return {
        "port": store.postgres.port,
        "running": store.is_up(),
        "fault": faults.get(fault_modes.CONTROL_STORE),
        "server": f"postgres + seaweedfs {store.bucket_endpoint}",
        "settings": str(store.settings_path),
    }


HA_SERVERS = {
    "postgres-replica": "postgres (streaming replica)",
    "pgbouncer": "pgbouncer",
    "redis-replica": "redis-server (replica)",
    **{name: "redis-sentinel" for name in ha_topology.SENTINELS},
}


def _ha_rows(state: SandboxState, faults: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The HA topology's parts; a replica the planted variant does not run says so."""
    if "primary_node" not in ha_topology.ha_record(state):
        return {}
    replicas = ha_topology.ha_record(state).get("replicas")
    rows = {}
    for name, server in HA_SERVERS.items():
        single = name in ha_topology.REPLICAS and not replicas
        rows[name] = {
            "port": ha_topology.port_of(state, name),
            "running": ha_topology.part_running(state, name, ADMIN_USER),
            "fault": faults.get(name),
            "real": True,
            "server": f"{server}: none in the planted variant (single instance)" if single else server,
        }
    return rows


def _total_rss(state: SandboxState) -> int:
    """Resident memory of everything the sandbox runs: PostgreSQL, Redis, and the services
    process with its children (every real server is one)."""
    from vextrus_nb.sandbox.supervisor import rss_tree_bytes

    pids = [state.services_pid, state.redis_pid]
    with contextlib.suppress(OSError, ValueError, IndexError):
        pids.append(int((Path(state.pg_datadir) / "postmaster.pid").read_text().split()[0]))
    return sum(rss_tree_bytes(pid) for pid in pids if pid)


def fault(
    component: str, mode: str, root: Path | None = None, delay_s: float | None = None
) -> dict[str, Any]:
    """Break one component in one of the supported modes (see faults.py)."""
    return fault_many([component], mode, root, delay_s)[component]


def fault_many(
    components: list[str], mode: str, root: Path | None = None, delay_s: float | None = None
) -> dict[str, dict[str, Any]]:
    """Break several components the same way at once: one reload of the services process
    (a driver stopping a whole phase, or every service a rotated key restarts)."""
    root = _root(root)
    inventory = load_inventory()
    if mode not in fault_modes.MODES:
        raise SandboxError(f"unknown fault mode '{mode}'; modes: {', '.join(fault_modes.MODES)}")
    for component in components:
        if component == fault_modes.CONTROL_STORE:
            if mode != "down":
                raise SandboxError(f"the control store can only be made 'down' in the sandbox, not '{mode}'")
            if control_store.of_sandbox(root) is None:
                raise SandboxError("the sandbox runs no control store: start it with `sandbox up --control`")
            continue
        if component in fault_modes.HA_MODES:
            allowed = fault_modes.HA_MODES[component]
            if mode not in allowed:
                raise SandboxError(
                    f"{component} cannot be made '{mode}' in the sandbox; it supports: {', '.join(allowed)}"
                )
            continue
        allowed = fault_modes.supported_modes(inventory.get(component))
        served_by = real_platform.SERVED_BY.get(component, component)
        if not allowed and served_by != component:
            raise SandboxError(
                f"{component} is served by {served_by}'s real server and cannot be faulted alone; "
                f"fault {served_by} instead"
            )
        if mode not in allowed:
            raise SandboxError(
                f"{component} cannot be made '{mode}' in the sandbox; it supports: {', '.join(allowed)}"
            )
    with locked(root):
        state = SandboxState.load(root)
        current = read_faults(root)
        records = {}
        for component in components:
            record: dict[str, Any] = {"mode": mode, "since": datetime.now(UTC).isoformat(timespec="seconds")}
            if mode == "slow":
                record["delay_s"] = delay_s if delay_s is not None else fault_modes.DEFAULT_SLOW_DELAY_S
            if component == fault_modes.CONTROL_STORE:
                control_store.of_sandbox(root).take_down()  # type: ignore[union-attr]
            elif component == "postgres" and mode == "killed":
                ha_topology.kill_primary(state, ADMIN_USER)
            elif component == "postgres":
                cluster(state).stop()
            elif component == "redis" and mode == "killed":
                _kill_redis(state)
            elif component == "redis":
                redis_server.stop(state.ports["redis"], state.secret("redis_password"))
            elif component in fault_modes.HA_MODES:
                ha_topology.break_part(state, component, mode, ADMIN_USER)
            current[component] = records[component] = record
        write_faults(root, current)
        _control(state, "POST", "/reload")
        for component, record in records.items():
            events.record(root, component, *_fault_event(mode, record), kind="Warning")
        return records


HEAL_READY_TIMEOUT_S = 30.0


def _wait_for_database_readiness(state: SandboxState, inventory: Inventory) -> None:
    """Until every service with a database is ready again (or the deadline): through PgBouncer a
    pool that saw its server fail waits, then logs in again, so a service's first check after
    PostgreSQL returns can still time out. A heal returns to a platform serving normally."""
    faults = read_faults(state.root)
    waiting = {
        s.name for s in inventory.services() if s.database and s.name in state.ports and s.name not in faults
    }

    def ready(name: str) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return (
                httpx.get(f"http://127.0.0.1:{state.ports[name]}/health/ready", timeout=3).status_code == 200
            )
        return False

    deadline = time.monotonic() + HEAL_READY_TIMEOUT_S
    with ThreadPoolExecutor(max_workers=8) as pool:
        while waiting and time.monotonic() < deadline:
            waiting = {name for name, ok in zip(waiting, pool.map(ready, waiting), strict=True) if not ok}
            if waiting:
                time.sleep(0.1)


def _kill_redis(state: SandboxState) -> None:
    """kill -9 the Redis primary: no shutdown, no save, as when its machine dies."""
    pid = state.redis_pid
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def _fault_event(mode: str, record: dict[str, Any]) -> tuple[str, str]:
    """The reason and message a real platform would log for what the fault does."""
    if mode == "down":
        return "Stopped", "stopped (sandbox fault: down)"
    if mode == "killed":
        return "Killed", "killed with SIGKILL (sandbox fault: killed)"
    if mode == "slow":
        return "FaultInjected", f"answers delayed by {record['delay_s']:g}s (sandbox fault: slow)"
    return "FaultInjected", f"sandbox fault: {mode}"


def heal(component: str | None = None, root: Path | None = None) -> list[str]:
    """Clear one component's fault, or all of them; returns what was healed."""
    return heal_many(None if component is None else [component], root)


def heal_many(components: list[str] | None = None, root: Path | None = None) -> list[str]:
    """Clear the faults of these components (all of them when None); returns what was healed."""
    root = _root(root)
    if components is not None:
        inventory = load_inventory()
        for component in components:
            if component not in fault_modes.HA_MODES and component != fault_modes.CONTROL_STORE:
                inventory.get(component)  # a clear error for a name that does not exist
    with locked(root):
        state = SandboxState.load(root)
        current = read_faults(root)
        healed = [n for n in current if components is None or n in components]
        for name in healed:
            if name == fault_modes.CONTROL_STORE:
                control_store.of_sandbox(root).bring_back()  # type: ignore[union-attr]
            elif name == "postgres" and not cluster(state).is_running():
                cluster(state).start()  # after a kill -9: crash recovery
                if "pgbouncer" not in current:
                    ha_topology.wait_for_pooler(state, ADMIN_USER)
            elif name == "redis" and not pid_alive(state.redis_pid):
                state.redis_pid = redis_server.start(
                    redis_conf(state), state.ports["redis"], state.secret("redis_password")
                )
                state.save()
            elif name in fault_modes.HA_MODES:
                ha_topology.mend_part(state, name, current[name]["mode"], ADMIN_USER, start_node(state))
            del current[name]
        write_faults(root, current)
        _control(state, "POST", "/reload")
        if components is None and pid_alive(state.services_pid):
            links.restore_all(state.control_port)  # whatever link a chaos run left slow or cut
        if {"postgres", "pgbouncer"} & set(healed):
            _wait_for_database_readiness(state, load_inventory(Path(state.extra["inventory"])))
        for name in healed:
            events.record(root, name, "Healed", "fault cleared; serving normally")
        return healed
