"""An environment's rotation parts, put together: its store, its journal, its driver,
and a target for each credential reached through the environment's admin logins."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from vextrus_nb import drivers
from vextrus_nb.config import Environment, Inventory, resolve_path
from vextrus_nb.errors import ConfigError
from vextrus_nb.probe_targets import endpoints
from vextrus_nb.secrets.catalogue import Credential
from vextrus_nb.secrets.credential_targets import (
    JwtSigningKey,
    PostgresAlternatingRoles,
    PostgresRole,
    RedisAclUser,
    Target,
)
from vextrus_nb.secrets.journal import Journal
from vextrus_nb.secrets.protocol import RotationContext, StepHook
from vextrus_nb.secrets.stores import store_for


def journal_for(env: Environment) -> Journal:
    return Journal(resolve_path(env.rotation_settings().state_directory))


def context_for(
    env: Environment,
    inventory: Inventory,
    remember: Callable[[Iterable[str]], None],
    deadline_s: float = 60.0,
    after_step: StepHook | None = None,
) -> RotationContext:
    driver = drivers.for_environment(env)
    where = endpoints(env, inventory)

    def admin(login_name: str) -> tuple[str, str]:
        login = getattr(env, login_name)
        if login is None:
            raise ConfigError(f"environment '{env.name}' has no {login_name} admin login")
        password = env.resolve_secret(login.password_secret)
        remember([password])
        return login.user, password

    def target_for(credential: Credential) -> Target:
        if credential.kind == "postgres":
            user, password = admin("postgres")
            role = PostgresAlternatingRoles if credential.strategy == "alternating" else PostgresRole
            return role(credential, *where["postgres"], user, password)
        if credential.kind == "redis":
            user, password = admin("redis")
            return RedisAclUser(credential, *where["redis"], user, password)
        urls = {
            name: f"http://{where[name][0]}:{where[name][1]}/auth/verify" for name in credential.publish_to
        }
        return JwtSigningKey(credential, driver, urls, deadline_s)

    return RotationContext(
        store=store_for(env),
        journal=journal_for(env),
        driver=driver,
        target_for=target_for,
        deadline_s=deadline_s,
        remember=remember,
        after_step=after_step,
    )
