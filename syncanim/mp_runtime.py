"""Loading MediaPipe quietly: its native code logs to the process's stderr, below Python's reach."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from .errors import PluginError


def import_mediapipe() -> ModuleType:
    """Import ``mediapipe`` with its C++ logging turned down; a clear error if it is missing."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import mediapipe as mp
    except ImportError as e:
        raise PluginError(f"mediapipe cannot be imported ({e})", hint="pip install mediapipe==0.10.21 'numpy<2' 'protobuf<5'") from e
    return mp


def mediapipe_missing() -> str | None:
    """None when MediaPipe's solutions can be imported here, else what is missing."""
    try:
        import_mediapipe()
        from mediapipe.python import solutions  # noqa: F401
    except (PluginError, ImportError) as e:
        return f"mediapipe 0.10.21 with its bundled models ({e})"
    return None


@contextmanager
def native_stderr_to(path: str | os.PathLike[str]) -> Iterator[None]:
    """Point file descriptor 2 at ``path`` (appending) for the block: native libraries' notices go
    there instead of the terminal. Python's own ``sys.stderr`` writes are redirected too."""
    fd = 2  # native code writes to the descriptor, whatever Python's sys.stderr is now (a progress display's proxy)
    try:
        saved = os.dup(fd)
    except OSError:  # no descriptor 2 at all
        yield
        return
    sys.stderr.flush()
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, fd)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, fd)
        os.close(saved)
        os.close(target)


def redirect_native_stderr(path: str | os.PathLike[str]) -> None:
    """Point file descriptor 2 at ``path`` (appending) for the rest of the process (worker processes)."""
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(target, 2)
    os.close(target)


def silenced_stderr():
    """Send file descriptor 2 to /dev/null for the block (graph start-up banners, TFLite notices)."""
    return native_stderr_to(os.devnull)
