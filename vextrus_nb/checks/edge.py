"""Traefik's live configuration, read from its API: entrypoints, TLS, the HTTP redirect,
whether the API is exposed, rate limiting on public routers (reference plan, 2.3)."""

from __future__ import annotations
