"""What an engine may ask of the run it works for, and nothing more.

The engines that act for a run (taking a backup set, restoring one) need the environment and
inventory it runs against, its id (which names what it leaves: a set, a scratch database, a
staging folder), whether it is a dry run, and its secrets resolved through it, so that each value
is scrubbed from everything the run writes. `run.session.Runbook` has all of these; taking this
Protocol instead keeps the engines below the run machinery (they never import `run/`), and a
test or another caller (a service activity) can hand them anything that has them. Judging a run
(its findings, its summary, its artifacts) stays with the steps modules.
"""

from __future__ import annotations

from typing import Protocol

from vextrus_nb.config import Environment, Inventory


class RunContext(Protocol):
    @property
    def env(self) -> Environment: ...

    @property
    def inventory(self) -> Inventory: ...

    @property
    def run_id(self) -> str: ...

    @property
    def dry_run(self) -> bool: ...

    def secret(self, name: str) -> str:
        """The secret's value, remembered by the run so that it is scrubbed from what it writes."""
        ...
