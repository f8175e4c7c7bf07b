"""The dataset folder that ``syncanim prep`` writes: its file layout and the versioned manifest.

``manifest.json`` is written last: a folder without it (or with another schema version) is not a
finished dataset.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import DataError
from .files import write_text_atomic

MANIFEST_SCHEMA = 1


#: What each prep stage timed in ``Manifest.timings`` did, in words (summaries and the report).
STAGE_LABELS: dict[str, str] = {
    "scan": "framing scan",
    "audio": "audio + speech features",
    "stream": "decode + landmarks + masks",
    "landmarks": "landmark gap filling",
    "background": "background plate",
    "head_pose": "head pose",
    "expressions": "expressions",
    "report": "report",
    "total": "total",
}


def crop_words(crop: list[int] | None) -> str:
    """The framing crop ``[x0, y0, side]`` in words."""
    if not crop:
        return "whole frame"
    x0, y0, side = crop
    return f"a {side} px square from x={x0}, y={y0} of the source frame"

class SourceInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str
    fingerprint: str
    width: int
    height: int
    fps: float
    num_frames: int
    duration_s: float
    codec: str
    audio_rate: int | None


class Manifest(BaseModel):
    """What a prepared dataset holds. Times in seconds, sizes in pixels at ``image_size``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: int = MANIFEST_SCHEMA
    syncanim_version: str
    source: SourceInfo
    num_frames: int
    fps: float
    duration_s: float
    image_size: int
    crop: list[int] | None = None  # [x0, y0, side] in source pixels
    focal: float
    cx: float
    cy: float
    reprojection_error_px: float  # rigid landmarks, valid frames
    reprojection_error_all_px: float
    num_train: int
    num_val: int
    frames_without_face: int
    frames_interpolated: int
    max_faces_seen: int
    face_height_px: float  # median, at image_size
    background_unseen_fraction: float
    expressions: list[str]
    expression_backend: str
    audio_backend: str
    audio_per_frame: int
    audio_dim: int
    sample_rate: int
    labels: dict[str, str]
    timings: dict[str, float] = Field(default_factory=dict)  # wall seconds per stage
    stream_cpu_s: dict[str, float] = Field(default_factory=dict)  # worker seconds per streamed stage
    warnings: list[str] = Field(default_factory=list)


class DatasetLayout:
    """File names inside a dataset folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    manifest = property(lambda self: self.root / "manifest.json")
    config = property(lambda self: self.root / "config.resolved.toml")
    audio = property(lambda self: self.root / "audio.wav")
    frames_dir = property(lambda self: self.root / "frames")
    parsing_dir = property(lambda self: self.root / "parsing")
    landmarks = property(lambda self: self.root / "landmarks.npy")  # [N, 478, 3] float32
    landmarks_found = property(lambda self: self.root / "landmarks_found.npy")  # [N] bool
    background = property(lambda self: self.root / "background.png")
    background_unseen = property(lambda self: self.root / "background_unseen.png")
    track = property(lambda self: self.root / "track.npz")
    transforms_train = property(lambda self: self.root / "transforms_train.json")
    transforms_val = property(lambda self: self.root / "transforms_val.json")
    expressions = property(lambda self: self.root / "expressions.npy")  # [N, C] float32
    audio_features = property(lambda self: self.root / "audio_features.npy")  # [N, P, F] float32
    report_dir = property(lambda self: self.root / "report")
    state_dir = property(lambda self: self.root / ".syncanim")

    def frame(self, k: int) -> Path:
        return self.frames_dir / f"{k:06d}.jpg"

    def parsing(self, k: int) -> Path:
        return self.parsing_dir / f"{k:06d}.png"


def write_manifest(layout: DatasetLayout, manifest: Manifest) -> None:
    write_text_atomic(layout.manifest, manifest.model_dump_json(indent=2) + "\n")


def read_manifest(root: str | Path) -> Manifest:
    """The manifest of a finished dataset; DataError if the folder is not one."""
    layout = DatasetLayout(root)
    if not layout.root.is_dir():
        raise DataError(f"dataset folder not found: {layout.root}")
    if not layout.manifest.is_file():
        raise DataError(f"{layout.root} is not a finished dataset (no manifest.json): syncanim prep did not complete there",
                        hint=f"run `syncanim prep VIDEO --out {layout.root}` (it resumes where it stopped)")
    try:
        data = json.loads(layout.manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{layout.manifest} is unreadable: {e}") from e
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != MANIFEST_SCHEMA:
        raise DataError(f"{layout.root} was prepared with dataset schema {version}, this syncanim reads {MANIFEST_SCHEMA}",
                        hint="run `syncanim prep` again on the video")
    try:
        return Manifest(**data)
    except ValidationError as e:
        raise DataError(f"{layout.manifest} is invalid: {e.errors()[0]['msg']}") from e


def dataset_audio_section(dataset: str | Path) -> dict[str, Any]:
    """The audio-backend section prep used for this dataset (read from its config.resolved.toml)."""
    path = DatasetLayout(dataset).config
    try:
        cfg = tomllib.loads(path.read_text())
        return dict(cfg["prep"]["audio"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return {"kind": read_manifest(dataset).audio_backend}
