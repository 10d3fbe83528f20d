"""Load and validate the inventory and an environment.

The inventory (`parameters/inventory.yaml`) is the catalogue of the platform;
an environment (`parameters/environments/<env>.yaml`) says where it runs, with
which driver, and where its secrets come from: by reference, never by value.
Both are validated with pydantic, and the dependency graph is checked for
dangling references, cycles and phase inversions, each named in the error.
"""

from __future__ import annotations

import graphlib
import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vextrus_nb import paths
from vextrus_nb.errors import ConfigError, SecretUnavailable

ComponentKind = Literal["service", "infrastructure", "dev_tool"]
# http/tcp/postgres/redis, and the real servers' own protocols (issue 18): a Kafka metadata
# request, an S3 ListBuckets, Temporal's DescribeNamespace, an AMQP login, ZooKeeper's `srvr`.
ProbeKind = Literal["http", "tcp", "postgres", "redis", "kafka", "s3", "temporal", "amqp", "zookeeper"]
Criticality = Literal["critical", "high", "medium", "low", "none"]
# How grave a finding is: a check's (checks/model.py) and a triage rule's (triage/rules.py).
Severity = Literal["critical", "high", "medium", "low"]

# Keys of an environment's `deployment:` that name files the static checks read.
DEPLOYMENT_FILE_KEYS = ("compose_file", "kube_manifests")

# Traefik's public entrypoints, addressed like components (`where["traefik-web"]`): the
# inventory's traefik port is its internal one (ping, API); these are what users reach.
EDGE_ENTRYPOINTS = {"traefik-web": 80, "traefik-websecure": 443}

HA_ENDPOINTS = {
    "postgres-replica": 5432,
    "pgbouncer": 6432,
    "redis-replica": 6379,
    "sentinel-1": 26379,
    "sentinel-2": 26379,
    "sentinel-3": 26379,
}
"""The high-availability parts beside the inventory's datastores (`ha:` in an environment): their
default ports; an environment names their hosts and ports like any component's."""

TERMINUS_PATHS = {"health": "/health", "ready": "/health/ready", "live": "/health/live"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Component(_Strict):
    name: str = ""
    kind: ComponentKind
    description: str = ""
    port: Annotated[int, Field(ge=1, le=65535)]
    probe: ProbeKind = "http"
    health_path: str | None = None
    depends_on: tuple[str, ...] = ()
    phase: Annotated[int, Field(ge=1, le=8)] | None = None
    database: str | None = None
    criticality: Criticality = "medium"
    subgraphs: tuple[str, ...] = ()
    metrics_path: str | None = None

    @model_validator(mode="after")
    def _service_defaults(self) -> Component:
        if self.kind == "service":
            # NestJS services all follow the Terminus convention; say so once, here.
            object.__setattr__(self, "health_path", self.health_path or TERMINUS_PATHS["health"])
            object.__setattr__(self, "metrics_path", self.metrics_path or "/metrics")
        if self.kind != "dev_tool" and self.phase is None:
            raise ValueError("every non-dev-tool component needs a deployment phase (1-8)")
        if self.probe == "http" and not self.health_path:
            raise ValueError("an http-probed component needs a health_path")
        return self

    @property
    def health_paths(self) -> dict[str, str]:
        """All health endpoints: the Terminus three for services, else the one."""
        if self.kind == "service":
            return dict(TERMINUS_PATHS)
        return {"health": self.health_path} if self.health_path else {}


class Inventory(_Strict):
    version: int = 1
    components: dict[str, Component]

    @model_validator(mode="after")
    def _check_graph(self) -> Inventory:
        for name, component in self.components.items():
            object.__setattr__(component, "name", name)
            for dep in (*component.depends_on, *component.subgraphs):
                if dep not in self.components:
                    raise ValueError(f"component '{name}' depends on unknown component '{dep}'")
                dep_phase = self.components[dep].phase
                if component.phase and dep_phase and dep_phase > component.phase:
                    raise ValueError(
                        f"component '{name}' (phase {component.phase}) depends on '{dep}' "
                        f"which starts later (phase {dep_phase})"
                    )
        try:
            self._static_order()
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise ValueError(f"dependency cycle: {cycle}") from None
        return self

    def _static_order(self) -> list[str]:
        sorter = graphlib.TopologicalSorter({n: c.depends_on for n, c in self.components.items()})
        return list(sorter.static_order())

    @cached_property
    def start_order(self) -> list[str]:
        """All components, dependencies first, phase by phase, stable by name within a phase."""
        rank = {name: i for i, name in enumerate(self._static_order())}
        return sorted(
            self.components,
            key=lambda n: (self.components[n].phase or 99, self._depth(n), rank[n]),
        )

    def _depth(self, name: str) -> int:
        deps = self.components[name].depends_on
        return 0 if not deps else 1 + max(self._depth(d) for d in deps)

    def phase(self, number: int) -> list[Component]:
        return [self.components[n] for n in self.start_order if self.components[n].phase == number]

    def services(self) -> list[Component]:
        return [c for c in self.components.values() if c.kind == "service"]

    def get(self, name: str) -> Component:
        try:
            return self.components[name]
        except KeyError:
            raise ConfigError(
                f"unknown component '{name}'; known: {', '.join(sorted(self.components))}"
            ) from None

    def infrastructure_dependencies(self, name: str) -> list[Component]:
        """The datastores and brokers a service reports as its readiness indicators."""
        return [
            self.components[d]
            for d in self.components[name].depends_on
            if self.components[d].kind == "infrastructure"
        ]


class SecretRef(_Strict):
    """Where a secret comes from. Exactly one of env (a variable name) or file."""

    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret reference needs exactly one of 'env' or 'file'")
        return self

    def describe(self) -> str:
        return f"env:{self.env}" if self.env else f"file:{self.file}"


class DatastoreLogin(_Strict):
    user: str
    password_secret: str


class ObjectStoreLogin(_Strict):
    """The S3 keys the platform's object store (MinIO) takes, by secret name."""

    access_key_secret: str
    secret_key_secret: str


class ProbeSettings(_Strict):
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 2.0
    concurrency: Annotated[int, Field(ge=1, le=512)] = 32
    latency_budget_ms: Annotated[float, Field(gt=0)] = 500.0


class S3Target(_Strict):
    """A second, S3-compatible store each finished set is copied to (MinIO, AWS S3, Ceph RGW)."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None  # None: AWS itself
    region: str = "us-east-1"
    access_key_secret: str  # names of entries in the environment's secrets, never values
    secret_key_secret: str


class PgBackRestS3Settings(_Strict):
    """pgBackRest's second repository (repo2) on an S3 server, off the database host. pgBackRest
    speaks S3 only over HTTPS, and checks the server's certificate against a DNS name."""

    bucket: str
    # Where the server listens: "host:port", or the name of an endpoint of the environment
    # (a component, or the sandbox's `minio-tls`) whose host and port are used.
    endpoint: str
    host_name: str = (
        ""  # the DNS name to connect to and check the certificate against; empty: the endpoint's host
    )
    ca_file: str | None = None  # the certificate to trust (`{sandbox_dir}` works); None: the system's
    region: str = "us-east-1"
    path: str = "/pgbackrest"  # the repository's folder in the bucket
    access_key_secret: str  # names of entries in the environment's secrets, never values
    secret_key_secret: str


class PgBackRestSettings(_Strict):
    """The physical backups: pgBackRest's stanza for the environment's cluster, its repository
    (the backup directory + /pgbackrest unless named) and, when `s3` is set, a second one on an
    S3 server: WAL is archived to both, and dr/backup backs up into each."""

    stanza: str
    repository: str = ""  # empty: {backup.directory}/pgbackrest
    s3: PgBackRestS3Settings | None = None
    process_max: Annotated[int, Field(ge=1, le=64)] = 2
    compress_type: Literal["lz4", "zst", "gz", "none"] = "lz4"
    kind: Literal["full", "incr", "diff"] = "full"  # what dr/backup takes unless told
    # pgBackRest's io-timeout: a silent connection is retried after this long (four tries); it
    # bounds how long archiving stalls, and a restore waits, while the S3 repository is down.
    io_timeout_s: Annotated[int, Field(ge=1, le=3600)] = 60


class BackupSettings(_Strict):
    """Where backup sets go and how long they are kept; `{sandbox_dir}` and checkout-relative paths work."""

    directory: str
    keep_last: Annotated[int, Field(ge=1)] = 7
    keep_days: Annotated[float, Field(gt=0)] = 14.0
    jobs: Annotated[int, Field(ge=1, le=64)] = 2
    s3: S3Target | None = None
    pgbackrest: PgBackRestSettings | None = None

    def pgbackrest_repository(self) -> Path:
        if self.pgbackrest is None:
            raise ConfigError("backup.pgbackrest is not set: the environment takes no physical backups")
        return resolve_path(self.pgbackrest.repository or f"{self.directory}/pgbackrest")


class SecretStoreSettings(_Strict):
    """Where the rotated credentials live: Docker secrets files (one file per secret in
    `path`), the compose `.env` file at `path`, or a Kubernetes Secret."""

    kind: Literal["files", "env_file", "kube_secret"]
    path: str | None = None
    namespace: str = "vextrus"
    secret_name: str = "vextrus-credentials"

    @model_validator(mode="after")
    def _path_where_needed(self) -> SecretStoreSettings:
        if self.kind in ("files", "env_file") and not self.path:
            raise ValueError(f"a '{self.kind}' secret store needs a path")
        return self


class JwtSettings(_Strict):
    """The JWT signing key: one service signs, every service verifies."""

    secret: str = "jwt_signing_key"
    signer: str = "auth"
    grace_s: Annotated[float, Field(ge=0)] = 3600.0  # the old key still verifies this long after a switch


class RotationSettings(_Strict):
    store: SecretStoreSettings
    # The write-ahead records of rotations in progress: never in an output notebook.
    state_directory: str
    jwt: JwtSettings = JwtSettings()
    # Services whose database login rotates with alternating users (two roles, the secret
    # names which one is current), so the old login keeps working while the services roll.
    alternating_users: list[str] = []


class PostgresHA(_Strict):
    """A streaming replica and the pooler every service connects through (HA_ENDPOINTS names)."""

    replica: str = "postgres-replica"
    pooler: str = "pgbouncer"
    pooler_config: str = ""  # PgBouncer's ini, rewritten to repoint it ({sandbox_dir} works)
    max_lag_bytes: Annotated[int, Field(ge=0)] = 16 * 2**20
    max_replay_lag_s: Annotated[float, Field(ge=0)] = 30.0


class RedisHA(_Strict):
    """A Redis replica and the Sentinels the services discover the primary through."""

    replica: str = "redis-replica"
    service: str = "vextrus-redis"  # `sentinel monitor <service> ...`
    sentinels: tuple[str, ...] = ("sentinel-1", "sentinel-2", "sentinel-3")
    min_sentinels: Annotated[int, Field(ge=1)] = 3


class HASettings(_Strict):
    postgres: PostgresHA | None = None
    redis: RedisHA | None = None


class ApprovalPolicy(_Strict):
    """Four eyes (or more) on this environment's changes: a run that needs approval waits for
    `required` signed approvals of distinct approvers, none of them the requester, within
    `timeout_s` (docs/service.md). `approvers`: name -> their Ed25519 public key (PEM file;
    `{sandbox_dir}` is the sandbox's directory). `runbooks`: which need it; unset, every
    destructive runbook's live run."""

    required: Annotated[int, Field(ge=1)]
    approvers: dict[str, str]
    timeout_s: Annotated[float, Field(gt=0)] = 3600.0
    runbooks: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _enough_approvers(self) -> ApprovalPolicy:
        if self.required > len(self.approvers):
            raise ValueError(
                f"approvals.required is {self.required} but only {len(self.approvers)} approvers"
            )
        return self

    def needs(self, runbook: str, destructive: bool, live: bool) -> bool:
        if self.runbooks is not None:
            return runbook in self.runbooks
        return destructive and live

    def key_path(self, approver: str) -> Path:
        return Path(self.approvers[approver].format(sandbox_dir=paths.sandbox_dir()))


class Environment(_Strict):
    name: str
    description: str = ""
    driver: Literal["local", "compose", "kube"]
    production: bool = False
    sandbox: bool = False
    default_host: str = "127.0.0.1"
    hosts: dict[str, str] = {}
    ports: dict[str, Annotated[int, Field(ge=1, le=65535)]] = {}
    simulated: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    secrets: dict[str, SecretRef] = {}
    postgres: DatastoreLogin | None = None
    redis: DatastoreLogin | None = None
    rabbitmq: DatastoreLogin | None = None
    object_store: ObjectStoreLogin | None = None
    probe: ProbeSettings = ProbeSettings()
    deployment: dict[str, str] = {}
    rpo_hours: Annotated[float, Field(gt=0)] = 24.0
    backup: BackupSettings | None = None
    rotation: RotationSettings | None = None
    ha: HASettings | None = None
    approvals: ApprovalPolicy | None = None

    @field_validator("secrets", mode="before")
    @classmethod
    def _no_literal_secrets(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key, ref in value.items():
                if not isinstance(ref, dict):
                    raise ValueError(
                        f"secret '{key}' must be a reference ({{env: VAR}} or {{file: PATH}}), "
                        "never a literal value"
                    )
        return value

    @model_validator(mode="after")
    def _logins_reference_known_secrets(self) -> Environment:
        for login in (self.postgres, self.redis, self.rabbitmq):
            if login and login.password_secret not in self.secrets:
                raise ValueError(f"login '{login.user}' names undeclared secret '{login.password_secret}'")
        store = self.object_store
        for name in (store.access_key_secret, store.secret_key_secret) if store else ():
            if name not in self.secrets:
                raise ValueError(f"object_store names undeclared secret '{name}'")
        s3 = self.backup.s3 if self.backup else None
        for name in (s3.access_key_secret, s3.secret_key_secret) if s3 else ():
            if name not in self.secrets:
                raise ValueError(f"backup.s3 names undeclared secret '{name}'")
        return self

    def resolve_secret(self, name: str) -> str:
        """The secret's value. Register it with the run's redactor before showing anything."""
        ref = self.secrets.get(name)
        if ref is None:
            raise SecretUnavailable(f"environment '{self.name}' declares no secret '{name}'")
        if ref.env:
            value = os.environ.get(ref.env)
            if value is None:
                raise SecretUnavailable(f"secret '{name}': environment variable {ref.env} is not set")
            return value
        path = Path(ref.file.format(sandbox_dir=paths.sandbox_dir()))  # type: ignore[union-attr]
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise SecretUnavailable(f"secret '{name}': cannot read {path} ({exc.strerror})") from None

    def deployment_files(self) -> dict[str, Path]:
        """The deployment files this environment names (compose_file, kube_manifests),
        as paths: `{sandbox_dir}` is the sandbox's directory, relative paths are the checkout's."""
        found = {}
        for key in DEPLOYMENT_FILE_KEYS:
            if key in self.deployment:
                path = Path(self.deployment[key].format(sandbox_dir=paths.sandbox_dir()))
                found[key] = path if path.is_absolute() else paths.project_root() / path
        return found

    def backup_directory(self) -> Path:
        """The environment's backup store: one folder per backup set below it."""
        if self.backup is None:
            raise ConfigError(f"environment '{self.name}' names no backup directory (backup.directory)")
        return resolve_path(self.backup.directory)

    def rotation_settings(self) -> RotationSettings:
        if self.rotation is None:
            raise ConfigError(
                f"environment '{self.name}' names no secret store for rotation (rotation.store)"
            )
        return self.rotation

    def resolve_all_secrets(self) -> dict[str, str]:
        """Every secret this environment can resolve (the ones it cannot are skipped)."""
        values = {}
        for name in self.secrets:
            try:
                values[name] = self.resolve_secret(name)
            except SecretUnavailable:
                continue
        return values


def resolve_path(text: str) -> Path:
    """A path from an environment file: `{sandbox_dir}` is the sandbox's directory,
    a relative path is the checkout's."""
    path = Path(text.format(sandbox_dir=paths.sandbox_dir()))
    return path if path.is_absolute() else paths.project_root() / path


def describe_yaml_error(path: Path, exc: yaml.YAMLError) -> str:
    """'malformed YAML in FILE at line L, column C: PROBLEM', as precise as the parser allows."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return f"malformed YAML in {path}{where}: {problem}"


# libyaml's safe loader when PyYAML has it: ten times the pure-Python one, and every command
# reads the inventory (a platform's manifests run to thousands of lines).
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise ConfigError(describe_yaml_error(path, exc)) from None


def validation_message(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"  {where}: {err['msg'].removeprefix('Value error, ')}")
    return f"invalid {path}:\n" + "\n".join(lines)


def load_inventory(path: Path | None = None) -> Inventory:
    path = path or paths.parameters_dir() / "inventory.yaml"
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"invalid {path}: expected a mapping with 'components'")
    try:
        return Inventory.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(path, exc)) from None


def available_environments(parameters_dir: Path | None = None) -> list[str]:
    env_dir = (parameters_dir or paths.parameters_dir()) / "environments"
    return sorted(p.stem for p in env_dir.glob("*.yaml"))


def load_environment(name: str, inventory: Inventory | None = None) -> Environment:
    """Load `parameters/environments/<name>.yaml` and check it against the inventory."""
    known = available_environments()
    if name not in known:
        raise ConfigError(f"unknown environment '{name}'; known: {', '.join(known) or '(none)'}")
    path = paths.parameters_dir() / "environments" / f"{name}.yaml"
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"invalid {path}: expected a mapping")
    data.setdefault("name", name)
    try:
        env = Environment.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_message(path, exc)) from None
    if env.name != name:
        raise ConfigError(f"invalid {path}: its name '{env.name}' does not match the file name '{name}'")
    inventory = inventory or load_inventory()
    named = {*env.hosts, *env.ports, *env.simulated, *env.exclude}
    unknown = sorted(named - set(inventory.components) - set(EDGE_ENTRYPOINTS) - set(HA_ENDPOINTS))
    if unknown:
        raise ConfigError(f"invalid {path}: unknown component(s) {', '.join(unknown)}")
    return env
