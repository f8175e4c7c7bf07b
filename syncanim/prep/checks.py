"""What prep tells the user about the input: measurements of the clip, turned into warnings in words."""

from __future__ import annotations

import numpy as np

from ..face.landmarks import NUM_LANDMARKS


def scene_cuts(thumbs: np.ndarray, ratio: float = 6.0, floor: float = 20.0) -> list[int]:
    """Frames that start a new shot. thumbs: [N, h, w] uint8 grey thumbnails.

    A cut is a frame whose mean absolute difference to the previous one is above ``floor`` grey
    levels and ``ratio`` times the clip's median difference.
    """
    if len(thumbs) < 2:
        return []
    d = np.abs(np.diff(thumbs.astype(np.float32), axis=0)).mean(axis=(1, 2))  # [N-1]
    med = float(np.median(d))
    return [int(i) + 1 for i in np.flatnonzero((d > floor) & (d > ratio * max(med, 0.5)))]


def face_heights(points: np.ndarray) -> np.ndarray:
    """Face height (forehead to chin, landmarks 10 and 152) in pixels. points: [N, 478, 3] -> [N]."""
    assert points.shape[1] == NUM_LANDMARKS, f"expected [N, 478, 3], got {points.shape}"
    return np.linalg.norm(points[:, 10, :2] - points[:, 152, :2], axis=-1)


def lighting_change(face_luma: np.ndarray, window: int = 25) -> float:
    """Largest change of the face's mean brightness between 1 s windows, as a share of its mean.

    face_luma: [N] float, NaN where no face. Returns 0 when there is too little to measure.
    """
    x = face_luma[~np.isnan(face_luma)]
    if len(x) < 2 * window:
        return 0.0
    m = np.convolve(x, np.ones(window) / window, mode="valid")
    return float((m.max() - m.min()) / max(float(x.mean()), 1.0))


def motion_stats(rotation_deg: np.ndarray, translation: np.ndarray, face_width: float) -> dict[str, float]:
    """Range of head rotation (degrees, per axis max) and translation range relative to the face size.

    rotation_deg: [N, 3] Euler angles, translation: [N, 3], face_width: same units as translation.
    """
    rot_range = float(np.max(np.ptp(rotation_deg, axis=0))) if len(rotation_deg) else 0.0
    tr_range = float(np.max(np.ptp(translation[:, :2], axis=0)) / max(face_width, 1e-9)) if len(translation) else 0.0
    return {"rotation_range_deg": rot_range, "translation_range_faces": tr_range}
