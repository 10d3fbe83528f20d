"""Named exception types, so callers (the CLI, the runner, tests) can tell
"you asked for something wrong" from "the platform is broken"."""


class VextrusError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(VextrusError):
    """The inventory, an environment or a parameters file is invalid."""


class RunRefused(VextrusError):
    """A run was refused before anything was touched (exit code 2)."""


class RunbookFailed(VextrusError):
    """The runbook ran and its verdict is failure (exit code 1)."""


class SandboxError(VextrusError):
    """The embedded sandbox could not be started, found or changed."""


class SecretUnavailable(ConfigError):
    """A secret reference could not be resolved (never carries the value)."""
