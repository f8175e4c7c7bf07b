"""The head track prep writes (``track.npz``): per-frame head poses, the camera and the face shape."""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

import numpy as np

from ..errors import DataError
from .files import save_npz_atomic

NUM_LANDMARKS = 478
_TRACK_FORMAT = 1


@dataclass(frozen=True)
class HeadTrack:
    """A fitted head track. N frames; poses map the canonical face to the OpenCV camera."""

    rotation: np.ndarray  # [N, 3, 3] float64, canonical -> camera
    translation: np.ndarray  # [N, 3] float64, canonical units (~metres)
    focal: float  # pixels
    cx: float  # principal point, pixels
    cy: float
    canonical: np.ndarray  # [478, 3] float32 canonical face shape
    reprojection_error_px: float  # mean over rigid landmarks and valid frames
    reprojection_error_all_px: float  # mean over all 478 landmarks and valid frames
    per_frame_error_px: np.ndarray  # [N] float32, mean over the rigid landmarks of each frame (NaN: no landmarks)
    notes: tuple[str, ...] = ()  # what the user should know about this track, in words

    @property
    def num_frames(self) -> int:
        return len(self.rotation)


def save_track(path: str | os.PathLike[str], track: HeadTrack) -> None:
    """Write a track to an ``.npz`` file atomically."""
    save_npz_atomic(
        path,
        format=np.array(_TRACK_FORMAT),
        rotation=np.asarray(track.rotation, np.float64),
        translation=np.asarray(track.translation, np.float64),
        intrinsics=np.array([track.focal, track.cx, track.cy], np.float64),
        canonical=np.asarray(track.canonical, np.float32),
        errors=np.array([track.reprojection_error_px, track.reprojection_error_all_px], np.float64),
        per_frame_error_px=np.asarray(track.per_frame_error_px, np.float32),
        notes=np.array(list(track.notes), dtype=str),
    )


def load_track(path: str | os.PathLike[str]) -> HeadTrack:
    """Read a track written by :func:`save_track`; raises :class:`DataError` if missing or malformed."""
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {key: z[key] for key in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read head track {os.fspath(path)}: {e}") from e
    keys = ("format", "rotation", "translation", "intrinsics", "canonical", "errors", "per_frame_error_px")
    missing = [key for key in keys if key not in data]
    if missing:
        raise DataError(f"{os.fspath(path)} is not a head track (missing {', '.join(missing)})")
    if int(data["format"]) != _TRACK_FORMAT:
        raise DataError(f"{os.fspath(path)}: head track format {int(data['format'])} is not supported")
    rot, trans = data["rotation"], data["translation"]
    n = len(rot)
    if (rot.shape != (n, 3, 3) or trans.shape != (n, 3) or data["per_frame_error_px"].shape != (n,)
            or data["canonical"].shape != (NUM_LANDMARKS, 3) or data["intrinsics"].shape != (3,)):
        raise DataError(f"{os.fspath(path)}: head track arrays have inconsistent shapes")
    f, cx, cy = (float(x) for x in data["intrinsics"])
    err, err_all = (float(x) for x in data["errors"])
    return HeadTrack(rotation=rot, translation=trans, focal=f, cx=cx, cy=cy, canonical=data["canonical"],
                     reprojection_error_px=err, reprojection_error_all_px=err_all,
                     per_frame_error_px=data["per_frame_error_px"],
                     notes=tuple(str(x) for x in data.get("notes", np.array([], dtype=str))))
