"""Named exception types, so callers (the CLI, the runner, tests) can tell
"you asked for something wrong" from "the platform is broken"."""


def first_line(exc: BaseException) -> str:
    """An error in one line, for a finding or a log: its message's first line, else its type."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class VextrusError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(VextrusError):
    """The inventory, an environment or a parameters file is invalid."""


class _Verdict(VextrusError):
    """An outcome, not a crash: IPython renders it as one line instead of a traceback wall
    (`_render_traceback_`), while papermill and the runner still see the exception by name."""

    label = ""

    def _render_traceback_(self) -> list[str]:
        return [f"{self.label}: {self}"]


class RunRefused(_Verdict):
    """A run was refused before anything was touched (exit code 2)."""

    label = "REFUSED"


class RunbookFailed(_Verdict):
    """The runbook ran and its verdict is failure (exit code 1)."""

    label = "FAILED"


class SandboxError(VextrusError):
    """The embedded sandbox could not be started, found or changed."""


class SecretUnavailable(ConfigError):
    """A secret reference could not be resolved (never carries the value)."""


class StoreUnwritable(ConfigError):
    """A secret store cannot be written: found before anything is changed."""


class RotationError(VextrusError):
    """A rotation step could not be done; the message never holds a secret."""


class DriverUnavailable(VextrusError):
    """The environment's driver cannot be used from here (no access, not installed, not configured)."""


class DriverError(VextrusError):
    """The platform refused an action (the compose CLI failed, the API answered an error)."""


class BackupError(VextrusError):
    """A backup set is missing, unreadable, or does not match its manifest."""


class DeployError(VextrusError):
    """A deployment task could not be done: the platform answered, but not as the task needs."""


class StackError(VextrusError):
    """The local stack cannot be built or written (no Docker engine, no PostgreSQL binaries)."""


class ServerUnavailable(SandboxError):
    """A real server's binary is not installed here; the message names the package that provides it."""


class ServerNotReady(SandboxError):
    """A real server did not answer its own protocol by its deadline; the message names it and
    quotes the end of its log."""


class ControlStoreError(VextrusError):
    """The shared control store (ledger, leases, evidence bucket) refused or failed an operation."""


class ControlStoreUnavailable(ControlStoreError):
    """The shared control store cannot be reached; the message names the store and the error."""


class LeaseLost(_Verdict):
    """This run's lease on its environment expired or was taken over: it stops before its next
    destructive step rather than race the lease's new holder."""

    label = "STOPPED"
