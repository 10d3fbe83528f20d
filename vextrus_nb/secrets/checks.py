"""After a rotation: does the world agree with the store? Each check is a real login
(or a real token), and each row says what was expected and what was seen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from vextrus_nb.errors import RotationError
from vextrus_nb.secrets.catalogue import Credential
from vextrus_nb.secrets.protocol import RotationContext
from vextrus_nb.secrets.versions import fingerprint


@dataclass
class CheckRow:
    credential: str
    check: str
    expected: str
    observed: str

    @property
    def passed(self) -> bool:
        return self.expected == self.observed


def _answer(accepted: bool) -> str:
    return "accepted" if accepted else "refused"


def check_credential(ctx: RotationContext, credential: Credential) -> list[CheckRow]:
    versions = ctx.store.read(credential.store_key)
    ctx.remember(versions.values())
    target = ctx.target_for(credential)
    rows = []

    def tried(value: str) -> str:
        try:
            return _answer(target.accepts(value))
        except RotationError as exc:
            return f"no answer: {exc}"

    current = fingerprint(versions.current)
    rows.append(
        CheckRow(
            credential.name,
            f"the store's current value {current} works",
            "accepted",
            tried(versions.current) if versions.current else "no current value",
        )
    )
    if versions.previous is not None and versions.previous != versions.current:
        previous = fingerprint(versions.previous)
        entry = ctx.journal.load(credential.name)
        in_grace = bool(
            credential.kind == "jwt"
            and entry is not None
            and entry.retire_previous_after
            and datetime.now(UTC) < datetime.fromisoformat(entry.retire_previous_after)
        )
        # Alternating users: the old login is the other role, valid until the next rotation.
        still_valid = in_grace or credential.strategy == "alternating"
        if in_grace:
            what = "still verifies (grace period)"
        elif credential.strategy == "alternating":
            what = "still logs in (alternating users, until the next rotation)"
        else:
            what = "is refused"
        rows.append(
            CheckRow(
                credential.name,
                f"the old value {previous} {what}",
                "accepted" if still_valid else "refused",
                tried(versions.previous),
            )
        )
    rows.append(
        CheckRow(
            credential.name,
            "no pending value left in the store",
            "none",
            "none" if versions.pending is None else fingerprint(versions.pending),
        )
    )
    users = sorted({*credential.restart_after_finish, *credential.publish_to})
    health = ctx.driver.health(users)
    bad = sorted(n for n, h in health.items() if h.health != "healthy")
    rows.append(
        CheckRow(
            credential.name,
            f"{len(users)} dependent service(s) healthy",
            "all healthy",
            "all healthy" if not bad else "not healthy: " + ", ".join(bad),
        )
    )
    return rows
