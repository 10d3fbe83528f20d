"""Connections to the shared store's PostgreSQL, as the runners' role.

A connection that cannot be made is a ControlStoreUnavailable naming the store and libpq's
error (never the password: the connection string is built here and not shown)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg

from vextrus_nb.control.settings import Control
from vextrus_nb.errors import ControlStoreError, ControlStoreUnavailable, first_line
from vextrus_nb.evidence import identity
from vextrus_nb.pg_conninfo import conninfo


def where(control: Control) -> str:
    assert control.shared is not None
    db = control.shared.postgres
    return f"control store PostgreSQL {db.host}:{db.port}/{db.dbname}"


@contextlib.contextmanager
def connect(control: Control) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection; a transaction is the caller's `with conn.transaction()`."""
    if control.shared is None:
        raise ValueError("the embedded control store has no database")
    db = control.shared.postgres
    password = control.secret(db.password, "postgres.password")
    dsn = conninfo(
        db.host, db.port, db.user, password, db.dbname,
        connect_timeout=str(db.connect_timeout_s), application_name=f"vextrus-nb@{identity.host()}",
    )  # fmt: skip
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise ControlStoreUnavailable(f"{where(control)} cannot be reached: {first_line(exc)}") from None
    try:
        with conn:
            yield conn
    except psycopg.OperationalError as exc:
        raise ControlStoreUnavailable(f"{where(control)} failed: {first_line(exc)}") from None
    except psycopg.Error as exc:  # no schema, no grant: the store is there but not set up for us
        raise ControlStoreError(f"{where(control)} refused: {first_line(exc)}") from None
