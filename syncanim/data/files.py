"""Atomic file writing: a file appears under its name only once it is complete.

Every writer goes through a ``.part`` sibling and ``os.replace``, so a crash or Ctrl-C never leaves
a half-written file that a rerun would trust.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ResourceError


def _part(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.part")


def _probe(folder: Path, target: Path) -> None:
    try:
        probe = _part(folder / ".write-test")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ResourceError(f"cannot write {target}: {e.strerror or e}") from None


def writable_folder(path: str | os.PathLike[str], create: bool = True) -> Path:
    """Check that files can be written in the folder ``path``, before any work goes into them (ResourceError
    otherwise). ``create``: make it (and its parents) now; else nothing is created: the nearest folder above it
    that exists is probed, and a file on the way refused."""
    p = Path(path)
    if create:
        try:
            p.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ResourceError(f"cannot write to {p}: {e.strerror or e}") from None
        _probe(p, p)
        return p
    q = p.absolute()
    while not q.exists() and q != q.parent:
        q = q.parent
    if not q.is_dir():
        raise ResourceError(f"cannot write to {p}: {q} is a file")
    _probe(q, p)
    return p


def writable_file(path: str | os.PathLike[str]) -> Path:
    """Check that the file ``path`` can be written (a folder of that name refused), creating nothing, before any
    work goes into it (ResourceError otherwise). The writer then makes its missing folders."""
    p = Path(path)
    if p.is_dir():
        raise ResourceError(f"cannot write {p}: it is a folder", hint="give a file name")
    writable_folder(p.parent, create=False)
    return p


def write_atomic(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` then move ``tmp_path`` to ``path``; the temporary file is removed on error."""
    p = Path(path)
    tmp = _part(p)
    try:
        writer(tmp)
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)
    return p


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    return write_atomic(path, lambda t: t.write_bytes(data))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def finite_json(obj: Any) -> Any:
    """``obj`` (dicts, lists, floats, numpy scalars) with every NaN or infinity replaced by None: JSON holds no NaN."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite_json(v) for v in obj]
    if isinstance(obj, np.generic):
        return finite_json(obj.item())
    return obj


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def save_npy_atomic(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return write_bytes_atomic(path, buf.getvalue())


def save_npz_atomic(path: str | os.PathLike[str], **arrays: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return write_bytes_atomic(path, buf.getvalue())
