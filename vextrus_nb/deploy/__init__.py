"""The deployment phases (notebooks/deploy/01..08): plan, start, wait on health, verify."""

from vextrus_nb.deploy.steps import (
    PhaseRun,
    judge,
    open_phase,
    plan,
    preflight,
    start,
    tasks,
    validate,
    verify,
)

__all__ = ["PhaseRun", "judge", "open_phase", "plan", "preflight", "start", "tasks", "validate", "verify"]
