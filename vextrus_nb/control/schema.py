"""The shared store's tables, installed once by the database's owner for the runners' role.

The ledger is append-only twice over: the runners' role is granted INSERT and SELECT only, and a
trigger refuses UPDATE, DELETE and TRUNCATE to everyone, the table's owner included, unless the
owner turns the maintenance switch on for its own transaction
(`SET LOCAL vextrus.ledger_maintenance = 'on'`), which is for documented maintenance only
(docs/evidence.md) and leaves the chain to say what was done.

A lease row per environment: one holder, a fencing token from a sequence (each new holder's is
larger), and an expiry the database's clock sets, so hosts' clocks never decide who holds it.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

MAINTENANCE_SWITCH = "vextrus.ledger_maintenance"

_DDL = """
CREATE TABLE IF NOT EXISTS ledger (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id text NOT NULL,
    hash text NOT NULL UNIQUE,
    -- Two entries after one predecessor would fork the chain: the database refuses the second.
    prev_hash text NOT NULL UNIQUE,
    -- The entry exactly as the JSONL ledger writes it, so export and verification see its bytes.
    line text NOT NULL,
    appended_at timestamptz NOT NULL DEFAULT now()
);

CREATE OR REPLACE FUNCTION vextrus_ledger_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('vextrus.ledger_maintenance', true) = 'on' THEN
        RETURN COALESCE(NEW, OLD);
    END IF;
    RAISE EXCEPTION 'the ledger is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'documented maintenance only: the owner sets vextrus.ledger_maintenance';
END $$;

DROP TRIGGER IF EXISTS ledger_append_only ON ledger;
CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION vextrus_ledger_append_only();
DROP TRIGGER IF EXISTS ledger_no_truncate ON ledger;
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION vextrus_ledger_append_only();

CREATE SEQUENCE IF NOT EXISTS lease_tokens;
CREATE TABLE IF NOT EXISTS leases (
    env text PRIMARY KEY,
    token bigint NOT NULL,
    run_id text NOT NULL,
    runbook text NOT NULL,
    host text NOT NULL,
    operator text NOT NULL,
    pid integer NOT NULL,
    since timestamptz NOT NULL,
    expires_at timestamptz NOT NULL
);
"""


def install(conn: psycopg.Connection[Any], runner_role: str) -> None:
    """Create the tables (idempotent) and grant the runners' role what it may do: append to and
    read the ledger, take, renew and give back leases."""
    role = sql.Identifier(runner_role)
    with conn.transaction():
        conn.execute(_DDL)
        conn.execute(sql.SQL("REVOKE ALL ON ledger FROM PUBLIC, {}").format(role))
        conn.execute(sql.SQL("GRANT SELECT, INSERT ON ledger TO {}").format(role))
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON leases TO {}").format(role))
        conn.execute(sql.SQL("GRANT USAGE ON SEQUENCE lease_tokens TO {}").format(role))
