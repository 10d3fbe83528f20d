"""What a credential unlocks, and the four things a rotation does to it:

- apply(new): make the target accept the new value (AWS's setSecret); says what it restarted;
- accepts(value): does the target take this value? (testSecret, and the checks after);
- revoke(old): stop accepting the old value (the end of finishSecret);
- undo(pending): forget a new value that never became current (a rollback).

PostgreSQL logins rotate single-user (one role; the old password stops working at the
set) or with alternating users (two roles, the second a member of the first that acts as
it; each rotation sets a new password on the role not in use, so the old login keeps
working while the services roll over, until the rotation after next).

No plaintext value travels to a server that could log it: PostgreSQL gets a SCRAM
verifier computed here (libpq's PQencryptPasswordConn), Redis a SHA-256 hash (`#<hash>`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from vextrus_nb.errors import RotationError

if TYPE_CHECKING:
    import psycopg
    import redis
    from psycopg.rows import TupleRow

    from vextrus_nb.drivers import Driver
    from vextrus_nb.secrets.catalogue import Credential


class Target(Protocol):
    def apply(self, new: str) -> Restarted | None: ...  # what it restarted, if anything

    def accepts(self, value: str) -> bool: ...

    def revoke(self, old: str, current: str) -> None: ...

    def undo(self, pending: str, current: str | None, previous: str | None = None) -> None: ...


@dataclass
class _ReachedAsAdmin:
    """A credential on a server the environment's admin login reaches."""

    credential: Credential
    host: str
    port: int
    admin_user: str
    admin_password: str = field(repr=False)  # a repr in a traceback must not carry it


@dataclass
class PostgresRole(_ReachedAsAdmin):
    """Single-user rotation of a login role's password: the old password stops working
    the moment the new one is set, so set, test and finish follow one another at once."""

    def _admin(self) -> psycopg.Connection[TupleRow]:
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            dbname="postgres",
            user=self.admin_user,
            password=self.admin_password,
            autocommit=True,
            connect_timeout=5,
        )

    def _set_password(self, role: str, password: str | None) -> None:
        from psycopg import sql

        with self._admin() as conn:
            if password is None:
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD NULL").format(sql.Identifier(role)))
                return
            verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256")
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(verifier.decode())
                )
            )

    def apply(self, new: str) -> None:
        self._set_password(*self.credential.login_of(new))

    def accepts(self, value: str) -> bool:
        import psycopg

        user, password = self.credential.login_of(value)
        try:
            psycopg.connect(
                host=self.host,
                port=self.port,
                dbname=self.credential.database,
                user=user,
                password=password,
                connect_timeout=5,
            ).close()
            return True
        except psycopg.OperationalError as exc:
            if "password authentication failed" in str(exc):
                return False
            raise RotationError(
                f"PostgreSQL at {self.host}:{self.port} did not answer: {_reason(exc)}"
            ) from None

    def revoke(self, old: str, current: str) -> None:
        """Nothing left to do: a role has one password, and setting the new one replaced it."""

    def undo(self, pending: str, current: str | None, previous: str | None = None) -> None:
        if current is not None:
            self.apply(current)


@dataclass
class PostgresAlternatingRoles(PostgresRole):
    """Alternating users: the new password goes on the role not in use (created the first
    time, as a member of the service's role that acts as it), so nothing is locked out."""

    def _ensure_alternate(self) -> None:
        from psycopg import sql

        role = sql.Identifier(self.credential.login)
        alternate = sql.Identifier(self.credential.alternate_login)
        exists = self._role_exists(self.credential.alternate_login)
        with self._admin() as conn:
            if not exists:
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE {}").format(alternate, role))
            # Its sessions act as the service's role: same privileges, objects owned alike.
            conn.execute(
                sql.SQL("ALTER ROLE {} SET role = {}").format(alternate, sql.Literal(self.credential.login))
            )

    def apply(self, new: str) -> None:
        # Only the role not in use changes: the one in use keeps working while the services roll.
        user, password = self.credential.login_of(new)
        if user == self.credential.alternate_login:
            self._ensure_alternate()
        self._set_password(user, password)

    def revoke(self, old: str, current: str) -> None:
        """Nothing: the old login stays valid until the rotation after this one sets a new
        password on its role. That is what lets the services roll without a lockout."""

    def undo(self, pending: str, current: str | None, previous: str | None = None) -> None:
        # The pending value's role held the previous value (or, the first time, nothing).
        user = self.credential.login_of(pending)[0]
        if previous is not None and self.credential.login_of(previous)[0] == user:
            self.apply(previous)
        elif self._role_exists(user):  # not yet created if the rotation failed before its set
            self._set_password(user, None)

    def _role_exists(self, role: str) -> bool:
        with self._admin() as conn:
            return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is not None


@dataclass
class RedisAclUser(_ReachedAsAdmin):
    """An ACL user may hold several passwords: the new one is added beside the old, so
    no client is locked out at any point; the old one is removed at the finish."""

    def _admin(self) -> redis.Redis:
        import redis

        return redis.Redis(
            host=self.host,
            port=self.port,
            username=self.admin_user,
            password=self.admin_password,
            socket_timeout=5,
            socket_connect_timeout=5,
        )

    def _hashes(self, client: redis.Redis) -> list[str]:
        user = client.acl_getuser(self.credential.login) or {}
        # redis-py types a reply as Awaitable | Any for its sync and async clients alike
        passwords = user.get("passwords", [])  # type: ignore[union-attr]
        return [h.decode() if isinstance(h, bytes) else h for h in passwords]

    def _change(self, add: str | None = None, remove: str | None = None) -> None:
        import redis

        try:
            with self._admin() as client:
                present = self._hashes(client)
                changes = []
                if add is not None and _sha256(add) not in present:
                    changes.append("+" + _sha256(add))
                if remove is not None and _sha256(remove) in present:
                    changes.append("-" + _sha256(remove))
                if changes:
                    client.acl_setuser(self.credential.login, enabled=True, hashed_passwords=changes)
                    client.acl_save()  # the ACL file is what a restarted Redis reads
        except redis.RedisError as exc:
            raise RotationError(f"Redis at {self.host}:{self.port}: {_reason(exc)}") from None

    def apply(self, new: str) -> None:
        self._change(add=new)

    def accepts(self, value: str) -> bool:
        import redis

        client = redis.Redis(
            host=self.host,
            port=self.port,
            username=self.credential.login,
            password=value,
            socket_timeout=5,
            socket_connect_timeout=5,
        )
        try:
            return bool(client.ping())
        except redis.AuthenticationError:
            return False
        except redis.RedisError as exc:
            raise RotationError(f"Redis at {self.host}:{self.port} did not answer: {_reason(exc)}") from None
        finally:
            client.close()

    def revoke(self, old: str, current: str) -> None:
        if old != current:
            self._change(remove=old)

    def undo(self, pending: str, current: str | None, previous: str | None = None) -> None:
        if pending != current:
            self._change(remove=pending)


@dataclass
class JwtSigningKey:
    """The key is published before it signs: `apply` restarts every verifying service,
    which then knows the store's pending key beside the current one; the finish restarts
    the signer, which signs with the new current key while the verifiers still accept
    the previous one until it is retired (after the grace period)."""

    credential: Credential
    driver: Driver
    verify_urls: dict[str, str]  # service -> its /auth/verify
    deadline_s: float

    def apply(self, new: str) -> Restarted:
        return restart_and_wait(self.driver, list(self.credential.publish_to), self.deadline_s)

    def accepts(self, value: str) -> bool:
        """Every verifying service accepts a token signed with the value."""
        return not self.refused_by(value)

    def refused_by(self, value: str) -> list[str]:
        import httpx
        import jwt

        now = int(time.time())
        token = jwt.encode({"sub": "vextrus-rotation-check", "iat": now, "exp": now + 60}, value, "HS256")
        refused = []
        with httpx.Client(timeout=5) as http:
            for service, url in self.verify_urls.items():
                try:
                    answer = http.get(url, headers={"Authorization": f"Bearer {token}"})
                except httpx.HTTPError as exc:
                    raise RotationError(f"{service} did not answer {url}: {_reason(exc)}") from None
                if answer.status_code == 401:
                    refused.append(service)
                elif answer.status_code != 200:
                    raise RotationError(f"{service} answered {answer.status_code} at {url}")
        return refused

    def revoke(self, old: str, current: str) -> None:
        """The old key keeps verifying for the grace period; retire() ends that."""

    def undo(self, pending: str, current: str | None, previous: str | None = None) -> None:
        # The store no longer holds the pending key: restarted, the verifiers forget it.
        restart_and_wait(self.driver, list(self.credential.publish_to), self.deadline_s)


@dataclass
class Restarted:
    components: list[str]
    seconds: float


def restart_and_wait(
    driver: Driver, components: list[str], deadline_s: float, poll_s: float = 0.2
) -> Restarted:
    """Restart through the environment's driver and wait until each answers its readiness
    check, which logs in with the credential: healthy means the new value works."""
    started = time.monotonic()
    driver.restart(components)
    deadline = started + deadline_s
    while True:
        health = driver.health(components)
        bad = {n: h for n, h in health.items() if h.health != "healthy"}
        if not bad:
            return Restarted(components, round(time.monotonic() - started, 2))
        if time.monotonic() >= deadline:
            names = ", ".join(f"{n} ({h.health}: {h.detail})" for n, h in sorted(bad.items()))
            raise RotationError(f"not healthy within {deadline_s:g} s after the restart: {names}")
        time.sleep(poll_s)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _reason(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
