"""The incident runbooks' steps."""
