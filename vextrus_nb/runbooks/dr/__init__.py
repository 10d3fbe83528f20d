"""The dr runbooks' steps."""
