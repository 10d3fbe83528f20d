"""drivers.ScratchPlatforms for the local driver: a second sandbox, for dr/platform-drill.

It is `manager.up(root=...)` as it is: its own directory, its own free loopback ports, its own
secrets, the same deployment variant as the sandbox it stands beside, and the smallest seed
(the drill replaces every database with the backup set's, so what the seed wrote is only what a
freshly provisioned platform holds). With a PostgresRecovery (drivers.PostgresRecovery: the
drill's pgBackRest restore) there is no initdb and no seed: the restored data directory is its
cluster's first, and its secrets are the first sandbox's, as a recovered platform reads the
secret store the restored roles' passwords are in. The Environment it yields is the sandbox's, repointed: the
same name (the same ledger evidence), its endpoints, secret files and deployment files those of
the second sandbox, no backup store, rotation or HA topology of its own.

LocalDriver takes it as a method (the lead's one line in sandbox/driver.py):
`from vextrus_nb.sandbox.scratch_platform import scratch_platform` in the class body.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from vextrus_nb.config import EDGE_ENTRYPOINTS, Environment, SecretRef, load_environment, load_inventory
from vextrus_nb.drivers.base import Driver, PostgresRecovery, ScratchPlatform
from vextrus_nb.errors import SandboxError
from vextrus_nb.sandbox import manager
from vextrus_nb.sandbox_state import SandboxState


class SandboxDriver(Protocol):
    """What a second sandbox needs of the driver it stands beside: that sandbox's directory and
    environment, and a driver of the same kind for the second one (LocalDriver is one; naming it
    here would make driver.py and this module import each other)."""

    @property
    def root(self) -> Path: ...

    @property
    def environment(self) -> Environment | None: ...

    def beside(self, root: Path, environment: Environment) -> Driver: ...


EMPTY_SCALE = 0.01
"""The second sandbox's seed: a few rows per table, replaced by the restore anyway."""
_PLACEHOLDER = "{sandbox_dir}"


def environment_for(env: Environment, root: Path) -> Environment:
    """`env` (a sandbox environment) pointed at the sandbox running in `root`: every endpoint
    from its state file, every `{sandbox_dir}` path (secrets, deployment files) in `root`."""
    state = SandboxState.load(root)
    known = {*load_inventory().components, *EDGE_ENTRYPOINTS}

    def here(text: str) -> str:
        return text.replace(_PLACEHOLDER, str(state.root))

    secrets = {name: SecretRef(file=here(ref.file)) if ref.file else ref for name, ref in env.secrets.items()}
    return env.model_copy(
        update={
            "description": f"{env.description} (second platform in {state.root})",
            # Not `sandbox`: that reads the ports of the sandbox in paths.sandbox_dir(), the first.
            "sandbox": False,
            "ports": {name: port for name, port in state.ports.items() if name in known},
            "secrets": secrets,
            "deployment": {key: here(value) for key, value in env.deployment.items()},
            "backup": None,
            "rotation": None,
            "ha": None,
        }
    )


def _up(
    root: Path, variant: str, postgres: PostgresRecovery | None, secrets_from: Path | None
) -> SandboxState:
    """manager.up, once more when a port it chose was taken before its server bound it (the
    ports are free when chosen, but an outgoing connection of the first sandbox may take one
    from the same ephemeral range in between). A recovery is then restored again, afresh."""

    def up() -> SandboxState:
        return manager.up(
            root, scale=EMPTY_SCALE, deployment=variant, postgres=postgres, secrets_from=secrets_from
        )

    try:
        return up()
    except SandboxError as exc:
        if "address already in use" not in str(exc).lower():
            raise
        return up()


@contextlib.contextmanager
def scratch_platform(
    driver: SandboxDriver, root: Path, postgres: PostgresRecovery | None = None
) -> Iterator[ScratchPlatform]:
    """A second sandbox under `root`, stopped and deleted on exit whatever happened inside."""
    variant = manager.deployment_variant(driver.root) or manager.DEFAULT_DEPLOYMENT
    first = driver.environment or load_environment("sandbox")
    try:
        state = _up(root, variant, postgres, driver.root if postgres is not None else None)
        env = environment_for(first, state.root)
        yield ScratchPlatform(state.root, env, driver.beside(state.root, env))
    finally:
        manager.down(root)
