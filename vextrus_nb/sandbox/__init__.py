"""The embedded sandbox: a real PostgreSQL and Redis plus the Vextrus services
as HTTP servers on loopback, so every runbook can run, and fail, anywhere."""
