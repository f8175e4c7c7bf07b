"""The exception hierarchy and the exit codes the CLI maps it to.

Library code raises these (wrapping third-party failures with ``raise ... from e``); only
``syncanim.cli`` turns them into one red line plus the hint and a non-zero exit.

Exit codes: 2 usage (Typer's own), 3 config, 4 data, 5 plugin, 6 kernel, 7 checkpoint,
8 resource, 130 interrupted, 1 a bug (full traceback).
"""

from __future__ import annotations


class SyncanimError(Exception):
    """Base class: a failure the user can act on."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)  # both in args, so the error survives pickling (worker processes)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(SyncanimError):
    """An invalid preset, override or option value."""

    exit_code = 3


class DataError(SyncanimError):
    """Input media or a dataset folder that cannot be used."""

    exit_code = 4


class PluginError(SyncanimError):
    """An unknown, broken or unavailable component."""

    exit_code = 5


class KernelUnavailable(SyncanimError):
    """A fast kernel backend was asked for but cannot run here."""

    exit_code = 6


class CheckpointError(SyncanimError):
    """A model folder or checkpoint that is missing, corrupt or from another version."""

    exit_code = 7


class ResourceError(SyncanimError):
    """Out of memory, no such device, output folder not writable."""

    exit_code = 8
