"""The resilience runbooks' steps."""
