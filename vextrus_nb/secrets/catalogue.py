"""Which credentials there are to rotate, derived from the inventory (a new service
is a new YAML entry, and its credentials follow):

- `<service>-db`: the service's PostgreSQL role password (role svc_<service>), store key pg_<service>;
  with alternating users (rotation.alternating_users) the value is `user:password` and each
  rotation moves to the other of svc_<service> and svc_<service>_alt;
- `<service>-redis`: the service's Redis ACL user password (user svc-<service>), store key redis_<service>;
- `jwt-signing`: the HS256 key the signer (auth) signs with and every service verifies with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vextrus_nb.config import Environment, Inventory
from vextrus_nb.credentials import (
    acl_user_name,
    pg_alternate_role_name,
    pg_role_name,
    pg_secret_name,
    redis_secret_name,
    split_login,
)
from vextrus_nb.errors import ConfigError

Kind = Literal["postgres", "redis", "jwt"]
Strategy = Literal["single", "alternating"]
JWT_CREDENTIAL = "jwt-signing"


@dataclass(frozen=True)
class Credential:
    name: str
    kind: Kind
    store_key: str
    login: str  # the PostgreSQL role or Redis ACL user; "" for a signing key
    database: str | None  # where a PostgreSQL login is tried
    owner: str  # the service that uses (or, for a JWT key, signs with) it
    restart_after_finish: tuple[str, ...]  # who must restart to pick the new value up
    publish_to: tuple[str, ...] = ()  # JWT: who must learn the new key before signing switches
    grace_s: float = 0.0  # JWT: how long the old key still verifies
    strategy: Strategy = "single"
    alternate_login: str = ""  # alternating users: the other role

    @property
    def what(self) -> str:
        if self.kind == "postgres" and self.strategy == "alternating":
            return f"PostgreSQL roles {self.login} / {self.alternate_login} ({self.database}, alternating)"
        if self.kind == "postgres":
            return f"PostgreSQL role {self.login} ({self.database})"
        if self.kind == "redis":
            return f"Redis ACL user {self.login}"
        return f"JWT signing key (signed by {self.owner}, verified by {len(self.publish_to)} services)"

    def login_of(self, value: str) -> tuple[str, str]:
        """(user, password) of a database value: `user:password`, or a bare password of `login`."""
        return split_login(value, self.login)

    def next_value(self, current: str | None, password: str) -> str:
        """The value a rotation writes: the password, or with alternating users the
        other role's name and the password."""
        if self.strategy != "alternating":
            return password
        user = self.login_of(current)[0] if current else self.alternate_login
        return f"{self.alternate_login if user == self.login else self.login}:{password}"


def catalogue(env: Environment, inventory: Inventory) -> dict[str, Credential]:
    present = [s for s in inventory.services() if s.name not in env.exclude]
    alternating = set(env.rotation.alternating_users) if env.rotation is not None else set()
    with_database = {s.name for s in present if s.database}
    if alternating - with_database:
        unknown = ", ".join(sorted(alternating - with_database))
        raise ConfigError(f"rotation.alternating_users names no service with a database: {unknown}")
    found: dict[str, Credential] = {}
    for service in present:
        if service.database:
            found[f"{service.name}-db"] = Credential(
                name=f"{service.name}-db",
                kind="postgres",
                store_key=pg_secret_name(service.name),
                login=pg_role_name(service.name),
                database=service.database,
                owner=service.name,
                restart_after_finish=(service.name,),
                strategy="alternating" if service.name in alternating else "single",
                alternate_login=pg_alternate_role_name(service.name) if service.name in alternating else "",
            )
        if "redis" in service.depends_on:
            found[f"{service.name}-redis"] = Credential(
                name=f"{service.name}-redis",
                kind="redis",
                store_key=redis_secret_name(service.name),
                login=acl_user_name(service.name),
                database=None,
                owner=service.name,
                restart_after_finish=(service.name,),
            )
    if env.rotation is not None:
        jwt = env.rotation.jwt
        everyone = tuple(s.name for s in present)
        found[JWT_CREDENTIAL] = Credential(
            name=JWT_CREDENTIAL,
            kind="jwt",
            store_key=jwt.secret,
            login="",
            database=None,
            owner=jwt.signer,
            restart_after_finish=(jwt.signer,),
            publish_to=everyone,
            grace_s=jwt.grace_s,
        )
    return found
