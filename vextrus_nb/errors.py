"""Every error this package raises, in one place, so callers (the CLI, the runner, tests) can
tell "you asked for something wrong" from "the platform is broken", and a newcomer can see
them all at once. The tree (tests/test_errors_tree.py keeps it true: each class is in it, under
its base):

* VextrusError
  * ConfigError
    * SecretUnavailable
    * StoreUnwritable
  * _Verdict
    * RunRefused
    * RunbookFailed
    * LeaseLost
  * ProbeDown
  * LagUnsupported
  * DriverUnavailable
  * DriverError
  * DeployError
  * StackError
  * SandboxError
    * ServerUnavailable
    * ServerNotReady
    * ProcessExited
    * LinkError (also ValueError)
  * ReplicationError
  * PoolerError
  * SentinelError
  * BackupError
  * RotationError
  * LoadError
    * LoadPlanRefused
  * ExperimentError
  * FaultError
  * ControlStoreError
    * ControlStoreUnavailable

A module that needs a new error adds it here, in the tree, and imports it from here.
"""


def first_line(exc: BaseException) -> str:
    """An error in one line, for a finding or a log: its message's first line, else its type."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class VextrusError(Exception):
    """Base class of every error this package raises on purpose."""


# ---------------------------------------------------------------- what was asked, and the verdict


class ConfigError(VextrusError):
    """The inventory, an environment or a parameters file is invalid."""


class SecretUnavailable(ConfigError):
    """A secret reference could not be resolved (never carries the value)."""


class StoreUnwritable(ConfigError):
    """A secret store cannot be written: found before anything is changed."""


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


# ---------------------------------------------------------------- probing the platform


class ProbeDown(VextrusError):
    """A probe reached its target and found it unhealthy (probes.py). Never escapes
    `probes.probe()`: it becomes a `down` result, with the HTTP status and body when there was one."""

    def __init__(self, detail: str, http_status: int | None = None, body: dict | None = None):
        super().__init__(detail)
        self.http_status = http_status
        self.body = body


class LagUnsupported(VextrusError):
    """The Kafka broker does not implement the consumer-group API the lag is read with: the lag
    check is not applicable there, rather than failed (checks/kafka.py)."""


# ---------------------------------------------------------------- driving and building the platform


class DriverUnavailable(VextrusError):
    """The environment's driver cannot be used from here (no access, not installed, not configured)."""


class DriverError(VextrusError):
    """The platform refused an action (the compose CLI failed, the API answered an error)."""


class DeployError(VextrusError):
    """A deployment task could not be done: the platform answered, but not as the task needs."""


class StackError(VextrusError):
    """The local stack cannot be built or written (no Docker engine, no PostgreSQL binaries)."""


class SandboxError(VextrusError):
    """The embedded sandbox could not be started, found or changed."""


class ServerUnavailable(SandboxError):
    """A real server's binary is not installed here; the message names the package that provides it."""


class ServerNotReady(SandboxError):
    """A real server did not answer its own protocol by its deadline; the message names it and
    quotes the end of its log."""


class ProcessExited(SandboxError):
    """A supervised server process died while we waited for it to be ready: no point waiting for
    the deadline (sandbox/supervisor.py turns it into ServerNotReady, quoting the log)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code


class LinkError(SandboxError, ValueError):
    """An unknown link or a malformed mode: the control API answers it as a 400/404. Still a
    ValueError, as it was before it joined this tree: it refuses a bad value, as the fault
    proxy's own ValueError does, and a caller catching ValueError keeps working."""


# ---------------------------------------------------------------- high availability


class ReplicationError(VextrusError):
    """A PostgreSQL replication view could not be read, or a promotion did not take."""


class PoolerError(VextrusError):
    """PgBouncer's console did not answer, or refused a command."""


class SentinelError(VextrusError):
    """No Redis Sentinel answered, they disagree, or a failover did not complete."""


# ---------------------------------------------------------------- backups and secrets


class BackupError(VextrusError):
    """A backup set is missing, unreadable, or does not match its manifest."""


class RotationError(VextrusError):
    """A rotation step could not be done; the message never holds a secret."""


# ---------------------------------------------------------------- load and chaos


class LoadError(VextrusError):
    """k6 could not run, or did not finish; the message never holds a secret."""


class LoadPlanRefused(LoadError):
    """The load plan is malformed or out of bounds: refused before k6 starts."""


class ExperimentError(VextrusError):
    """A chaos experiment that does not exist or does not parse."""


class FaultError(VextrusError):
    """A fault that cannot be injected or undone here, named."""


# ---------------------------------------------------------------- the control store


class ControlStoreError(VextrusError):
    """The shared control store (ledger, leases, evidence bucket) refused or failed an operation."""


class ControlStoreUnavailable(ControlStoreError):
    """The shared control store cannot be reached; the message names the store and the error."""


class LeaseLost(_Verdict):
    """This run's lease on its environment expired or was taken over: it stops before its next
    destructive step rather than race the lease's new holder."""

    label = "STOPPED"
