"""The one clock format of records, journals and ledgers: UTC, ISO 8601, to the second."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
