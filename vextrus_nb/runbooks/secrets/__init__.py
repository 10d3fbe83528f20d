"""The secrets runbooks' steps."""
