"""A secret's versions as a store keeps them (AWS Secrets Manager's staging labels:
AWSCURRENT, AWSPENDING, AWSPREVIOUS), new values, and fingerprints that name a
value without revealing it."""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass, replace

STAGES = ("current", "pending", "previous")


@dataclass(frozen=True)
class Versions:
    current: str | None = None
    pending: str | None = None
    previous: str | None = None

    def __repr__(self) -> str:  # a traceback or a debug print shows fingerprints, never values
        shown = ", ".join(f"{stage}={fp!r}" for stage, fp in self.fingerprints().items() if fp)
        return f"Versions({shown})"

    def with_pending(self, value: str | None) -> Versions:
        return replace(self, pending=value)

    def promoted(self) -> Versions:
        """finishSecret: pending becomes current, current becomes previous."""
        if self.pending is None:
            return self
        return Versions(current=self.pending, pending=None, previous=self.current)

    def without_previous(self) -> Versions:
        return replace(self, previous=None)

    def values(self) -> list[str]:
        return [v for v in (self.current, self.pending, self.previous) if v]

    def fingerprints(self) -> dict[str, str]:
        return {stage: fingerprint(getattr(self, stage)) for stage in STAGES}


def fingerprint(value: str | None) -> str:
    """A short SHA-256 prefix: enough to tell versions apart in the evidence, far too
    short (and of too strong a value) to recover anything from."""
    if value is None:
        return ""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:10]


# What each target accepts: PostgreSQL and Redis passwords of letters and digits (nothing a
# connection string, a URL or an ACL rule would need escaped); an HS256 key of 64 random bytes.
_ALPHANUMERIC = string.ascii_letters + string.digits
PASSWORD_LENGTH = 40


def new_value(kind: str) -> str:
    if kind == "jwt":
        return secrets.token_urlsafe(64)
    return "".join(secrets.choice(_ALPHANUMERIC) for _ in range(PASSWORD_LENGTH))
