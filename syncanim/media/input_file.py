"""Checks shared by everything that opens a user's media file: it exists, is a file, is not empty; and
FFmpeg's errors in words (no errno numbers)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError


def check_input_file(path: Path, what: str = "file") -> None:
    """DataError, in one line, when ``path`` is missing, not a regular file, or empty (0 bytes)."""
    if not path.exists():
        raise DataError(f"{what} not found: {path}")
    if not path.is_file():
        raise DataError(f"not a file: {path}" + (" (a folder)" if path.is_dir() else ""))
    if path.stat().st_size == 0:
        raise DataError(f"{path.name} is empty (0 bytes)", hint="it may still be copying, or a download failed")


def ffmpeg_reason(error: BaseException) -> str:
    """What went wrong, as FFmpeg words it (``strerror``), without the errno and path PyAV adds."""
    text = getattr(error, "strerror", None)
    return str(text) if text else str(error)
