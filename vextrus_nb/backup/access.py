"""How a backup run reaches what it works on: the environment's PostgreSQL and Redis logins,
its backup store (and second, S3 store), and the sets in them, verified before use; and what a
run's parameters choose of them (services, set, store, pgBackRest repository, target time)."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import redis

from vextrus_nb.backup import pgbackrest, sets
from vextrus_nb.backup.manifest import Manifest
from vextrus_nb.backup.postgres import PostgresLogin
from vextrus_nb.backup.s3_store import S3Store
from vextrus_nb.config import Component, Environment, Inventory, load_inventory, resolve_path
from vextrus_nb.errors import BackupError, ConfigError, RunRefused
from vextrus_nb.postgres_binaries import find_bindir
from vextrus_nb.probe_targets import endpoints
from vextrus_nb.run_context import RunContext

TARGETS = ("scratch", "live")
STORES = ("local", "s3")


# -- input ------------------------------------------------------------------------------------
def choose_services(inventory: Inventory, services: str) -> list[Component]:
    """Services named in a comma-separated list (all with a database when empty)."""
    with_database = [c for c in inventory.services() if c.database]
    names = [n.strip() for n in services.split(",") if n.strip()]
    if not names:
        return with_database
    unknown = [n for n in names if n not in {c.name for c in with_database}]
    if unknown:
        raise RunRefused(
            f"unknown service(s) or service(s) without a database: {', '.join(unknown)}; "
            f"known: {', '.join(c.name for c in with_database)}"
        )
    return [c for c in with_database if c.name in names]


def target_time_of(parameters: dict[str, Any]) -> datetime | None:
    """The `target_time` parameter as an aware datetime (None when not given); RunRefused when
    it is not ISO 8601 with a UTC offset (a time without one means a different moment per host)."""
    text = str(parameters.get("target_time", "") or "").strip()
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RunRefused(f"target_time {text!r} is not ISO 8601 (e.g. 2026-12-01T15:10:00Z)") from None
    if when.tzinfo is None:
        raise RunRefused(f"target_time {text!r} has no UTC offset: add Z or +HH:MM")
    return when


def repo_of(parameters: dict[str, Any]) -> int:
    """The `repo` parameter: 1 (the local repository, the default) or 2 (the S3 one)."""
    repo = parameters.get("repo", 1)
    if isinstance(repo, str) and repo.strip().isdigit():
        repo = int(repo)
    if isinstance(repo, bool) or repo not in (1, pgbackrest.S3_REPO):
        raise RunRefused(f"repo must be 1 (the backup directory) or 2 (the S3 repository), not {repo!r}")
    return int(repo)


def postgres_login(run: RunContext) -> PostgresLogin:
    if run.env.postgres is None:
        raise BackupError(f"environment '{run.env.name}' has no PostgreSQL login")
    host, port = endpoints(run.env, run.inventory)["postgres"]
    return PostgresLogin(
        host, port, run.env.postgres.user, run.secret(run.env.postgres.password_secret), find_bindir()
    )


def redis_client(run: RunContext) -> redis.Redis | None:
    if run.env.redis is None:
        return None
    host, port = endpoints(run.env, run.inventory)["redis"]
    return redis.Redis(
        host=host,
        port=port,
        username=run.env.redis.user,
        password=run.secret(run.env.redis.password_secret),
        socket_timeout=30,
    )


def object_store_client(run: RunContext) -> Any | None:
    """A client for the platform's object store (MinIO) with the environment's keys; None where
    the environment names no keys or runs no object store."""
    from vextrus_nb.backup import objects

    where = endpoints(run.env, run.inventory).get("minio")
    keys = run.env.object_store
    if where is None or keys is None or "minio" in run.env.simulated:
        return None
    return objects.s3_client(
        f"http://{where[0]}:{where[1]}",
        run.secret(keys.access_key_secret),
        run.secret(keys.secret_key_secret),
    )


def kafka_bootstrap(run: RunContext) -> str | None:
    """The broker whose metadata a set exports; None where the environment has none that speaks
    the Kafka protocol (a simulated one serves only the REST Proxy API)."""
    where = endpoints(run.env, run.inventory).get("kafka")
    if where is None or "kafka" in run.env.simulated:
        return None
    return f"{where[0]}:{where[1]}"


def physical_stanza(run: RunContext) -> pgbackrest.Stanza | None:
    """The environment's pgBackRest stanza (None when it takes no physical backups). Where the
    cluster keeps its data and socket is asked of the server itself: pgBackRest runs beside it
    and must name exactly the directory the server uses."""
    settings = run.env.backup.pgbackrest if run.env.backup else None
    if settings is None or run.env.backup is None:
        return None
    login = postgres_login(run)
    with login.connect("postgres") as conn:
        row = conn.execute(
            "SELECT current_setting('data_directory'), current_setting('unix_socket_directories')"
        ).fetchone()
    assert row is not None
    stanza = pgbackrest.Stanza(
        name=settings.stanza,
        pg_path=Path(row[0]),
        pg_port=login.port,
        pg_socket=Path(str(row[1]).split(",")[0].strip()),
        pg_user=login.user,
        pg_password=login.password,
        repo_path=run.env.backup.pgbackrest_repository(),
        process_max=settings.process_max,
        compress_type=settings.compress_type,
        s3=s3_repository(run),
        io_timeout_s=settings.io_timeout_s,
    )
    pgbackrest.write_config(stanza)
    return stanza


def s3_repository(run: RunContext) -> pgbackrest.S3Repository | None:
    """The stanza's second repository on an S3 server (backup.pgbackrest.s3), when named."""
    settings = run.env.backup.pgbackrest.s3 if run.env.backup and run.env.backup.pgbackrest else None
    if settings is None:
        return None
    host, port = s3_repository_endpoint(run.env, run.inventory, settings.endpoint)
    return pgbackrest.S3Repository(
        host=settings.host_name or host,
        port=port,
        bucket=settings.bucket,
        access_key=run.secret(settings.access_key_secret),
        secret_key=run.secret(settings.secret_key_secret),
        ca_file=resolve_path(settings.ca_file) if settings.ca_file else None,
        region=settings.region,
        path=settings.path,
    )


def s3_repository_endpoint(env: Environment, inventory: Inventory, endpoint: str) -> tuple[str, int]:
    """ "host:port" as given, or the host and port of the environment's endpoint of that name."""
    if ":" in endpoint:
        host, _, port = endpoint.rpartition(":")
        if not port.isdigit():
            raise BackupError(f"backup.pgbackrest.s3.endpoint {endpoint!r}: the port is not a number")
        return host, int(port)
    where = endpoints(env, inventory)
    if endpoint not in where:
        raise BackupError(
            f"backup.pgbackrest.s3.endpoint {endpoint!r} is neither host:port nor an endpoint of "
            f"environment '{env.name}' ({', '.join(sorted(where))})"
        )
    return where[endpoint]


def store(env: Environment) -> Path:
    return env.backup_directory() / env.name


def s3_store(run: RunContext) -> S3Store | None:
    """The environment's second store, when it names one."""
    target = run.env.backup.s3 if run.env.backup else None
    if target is None:
        return None
    return S3Store.connect(target, run.secret(target.access_key_secret), run.secret(target.secret_key_secret))


def find_set(run: RunContext, set_id: str = "", from_store: str = "local") -> Path:
    """The named set, or the newest finished one; from S3, fetched into a staging folder first."""
    root = store(run.env)
    if from_store == "s3":
        second = s3_store(run)
        if second is None:
            raise BackupError(f"environment '{run.env.name}' has no S3 store (backup.s3)")
        chosen = set_id or (second.set_ids() or [""])[-1]
        if not chosen:
            raise BackupError(f"no finished backup set in {second.location}")
        staging = root.parent / f".staging-{run.run_id}"
        shutil.rmtree(staging, ignore_errors=True)
        return second.fetch(chosen, staging)
    if set_id:
        path = root / set_id
        if not path.is_dir():
            known = ", ".join(s.set_id for s in sets.list_sets(root)) or "none"
            raise BackupError(f"no backup set '{set_id}' in {root}; sets: {known}")
        return path
    found = sets.newest(root)
    if found is None:
        raise BackupError(f"no finished backup set in {root}; run dr/backup first")
    return found.path


def verify_set(path: Path) -> Manifest:
    """Every file against the manifest before anything is restored; a problem stops the run, naming it."""
    manifest, problems = sets.verify(path)
    if problems or manifest is None:
        named = "; ".join(str(p) for p in problems)
        raise BackupError(f"backup set {path.name} failed verification, nothing was restored: {named}")
    return manifest


def discard_staging(run: RunContext) -> None:
    """A set fetched from S3 for this run is a working copy: it goes when the run is done with it."""
    shutil.rmtree(store(run.env).parent / f".staging-{run.run_id}", ignore_errors=True)


def check_set_choice(env: Environment, parameters: dict[str, Any]) -> None:
    """The services, the store and the set a run names exist; RunRefused (exit 2) when not."""
    check_services_and_store(env, parameters.get("services", ""))
    from_store, set_id = parameters.get("from_store", "local"), parameters.get("set_id", "")
    if from_store not in STORES:
        raise RunRefused(f"from_store must be one of {', '.join(STORES)}, not {from_store!r}")
    if from_store == "s3" and (env.backup is None or env.backup.s3 is None):
        raise RunRefused(f"environment '{env.name}' has no S3 store (backup.s3)")
    if set_id and from_store == "local" and not (store(env) / set_id).is_dir():
        known = ", ".join(s.set_id for s in sets.list_sets(store(env))) or "none"
        raise RunRefused(f"no backup set '{set_id}' in {store(env)}; sets: {known}")


def check_services_and_store(env: Environment, services: str) -> None:
    """The services named have databases, and the environment has a backup store."""
    choose_services(load_inventory(), services)
    try:
        env.backup_directory()
    except ConfigError as exc:
        raise RunRefused(str(exc)) from None
