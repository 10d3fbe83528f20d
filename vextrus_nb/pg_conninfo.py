"""libpq connection strings built by libpq's own rules, never by hand.

A password with a space, a quote or a backslash must be quoted and escaped inside a connection
string, or libpq reads a different password or refuses the string ("missing '=' after ...").
psycopg's make_conninfo does both; every connection string the package builds comes from here.
The result holds the password: it goes to the driver, never into evidence."""

from __future__ import annotations

from psycopg.conninfo import make_conninfo


def conninfo(host: str, port: int, user: str, password: str, dbname: str = "postgres", **options: str) -> str:
    """`host=... port=... user=... password=... dbname=...` plus libpq `options`, each value
    quoted where libpq needs it."""
    return make_conninfo(host=host, port=port, user=user, password=password, dbname=dbname, **options)


def with_password(base: str, password: str, **options: str) -> str:
    """`base` (a connection string without a password) with the password and `options` added."""
    return make_conninfo(base, password=password, **options)


def with_passfile(base: str, passfile: str, **options: str) -> str:
    """`base` naming a libpq password file instead of holding the password: for a connection
    string that is stored (a replica's primary_conninfo), where the password must not be."""
    return make_conninfo(base, passfile=passfile, **options)
