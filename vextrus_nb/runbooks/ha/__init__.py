"""The high-availability runbooks' steps."""
