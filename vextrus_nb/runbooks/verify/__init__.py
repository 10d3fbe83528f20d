"""The verify runbooks' steps."""
