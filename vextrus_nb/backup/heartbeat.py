"""The heartbeat table: a timestamped row written every second to the cluster's `postgres`
database (the sandbox writes it; production would run the same insert from cron or pg_cron).

A recovered cluster's newest heartbeat is the real recovery point, measured rather than
assumed; the rows up to it, compared with the live cluster's, prove what came back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

DATABASE = "postgres"
TABLE = "vextrus_heartbeat"
CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    beat_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
BEAT = f"INSERT INTO {TABLE} DEFAULT VALUES"
INTERVAL_S = 1.0
# Order-independent, like the logical sets' table checksums.
DIGEST = f"""
SELECT count(*), coalesce(max(seq), 0), max(beat_at),
       coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text
FROM {TABLE} AS t WHERE seq <= %s
"""


@dataclass(frozen=True)
class HeartbeatDigest:
    rows: int
    last_seq: int
    last_beat_at: datetime | None
    checksum: str


def ensure_table(conn: psycopg.Connection) -> None:
    conn.execute(CREATE)


def digest(conn: psycopg.Connection, up_to_seq: int | None = None) -> HeartbeatDigest:
    """Rows, newest sequence and time, and a content checksum of the heartbeats up to a sequence
    number (all of them when None)."""
    row = conn.execute(DIGEST, (up_to_seq if up_to_seq is not None else 2**62,)).fetchone()
    assert row is not None
    return HeartbeatDigest(int(row[0]), int(row[1]), row[2], str(row[3]))


def has_table(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()
    return bool(row and row[0])
