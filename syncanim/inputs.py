"""Checks of what a user names on the command line, light enough to run before any heavy import: a media
file exists, is a file, is not empty; a model folder is one (and not a dataset). FFmpeg's errors in words."""

from __future__ import annotations

from pathlib import Path

from .errors import CheckpointError, DataError


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


def check_model_folder(root: Path) -> None:
    """CheckpointError, in one line, when ``root`` is not a model folder: missing, a prepared dataset, or
    without ``model.json``."""
    if (root / "model.json").is_file():
        return
    if not root.exists():
        raise CheckpointError(f"model folder not found: {root}")
    if (root / "manifest.json").is_file():
        raise CheckpointError(f"{root} is a prepared dataset, not a model folder",
                              hint=f"train a model on it first: `syncanim train {root} --out MODEL`")
    raise CheckpointError(f"{root} is not a model folder (no model.json)",
                          hint="train one with `syncanim train DATASET --out MODEL`")
