"""The ledger in the shared store's PostgreSQL: the same entries and hash chain as the file.

Appends from any number of hosts are serialized by the database: each takes a transaction-scoped
advisory lock, reads the last hash and inserts the entry after it, so the chain neither forks nor
loses an entry (and the table's UNIQUE prev_hash would refuse a fork if the lock were ever
skipped). The runners' role may only INSERT and SELECT (control/schema.py).
"""

from __future__ import annotations

import json
from typing import Any

from vextrus_nb.control import database
from vextrus_nb.control.settings import Control
from vextrus_nb.evidence import chain

# One number for "the ledger's append lock", the same in every host's session.
_APPEND_LOCK = 0x7665_7874_6C65_6467 & 0x7FFF_FFFF_FFFF_FFFF


def append(control: Control, record: dict[str, Any]) -> dict[str, Any]:
    """Chain and insert one record after the store's last entry; returns the entry as stored."""
    with database.connect(control) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
        row = conn.execute("SELECT hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
        entry = chain.link(record, row[0] if row else chain.GENESIS)
        conn.execute(
            "INSERT INTO ledger (run_id, hash, prev_hash, line) VALUES (%s, %s, %s, %s)",
            (str(entry.get("run_id", "")), entry["hash"], entry["prev_hash"], chain.to_line(entry)),
        )
    return entry


def lines(control: Control) -> list[str]:
    """Every entry, in chain order, exactly as stored."""
    with database.connect(control) as conn:
        return [row[0] for row in conn.execute("SELECT line FROM ledger ORDER BY seq")]


def entries(control: Control) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(control)]


def run_ids(control: Control) -> set[str]:
    with database.connect(control) as conn:
        return {row[0] for row in conn.execute("SELECT run_id FROM ledger")}
