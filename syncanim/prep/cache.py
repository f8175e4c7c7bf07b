"""Resumable stages: a stage is skipped on a rerun when its record matches its inputs and its outputs exist.

A record (``.syncanim/stages/<name>.json``) is written only after the stage's outputs are complete,
so an interrupted stage has no record and runs again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..data.files import write_json_atomic


def fingerprint(path: str | os.PathLike[str]) -> str:
    """Identity of a file's content: size plus hashes of its first and last MiB."""
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with p.open("rb") as f:
        h.update(f.read(1 << 20))
        if size > 1 << 20:
            f.seek(-(1 << 20), os.SEEK_END)
            h.update(f.read(1 << 20))
    return h.hexdigest()[:24]


def stage_key(*parts: Any) -> str:
    """A stable hash of JSON-able parts (configs as dicts, upstream keys, fingerprints)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


class StageRecords:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "stages"

    def _path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def done(self, name: str, key: str, root: Path) -> bool:
        """True when ``name`` finished with this ``key`` and all its outputs still exist."""
        rec = self.read(name)
        if not isinstance(rec, dict) or rec.get("key") != key:
            return False
        return all((root / o).exists() for o in rec.get("outputs", []))

    def read(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self._path(name).read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def mark(self, name: str, key: str, outputs: list[str], info: dict[str, Any] | None = None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self._path(name), {"key": key, "outputs": outputs, "info": info or {}})

    def forget(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)
