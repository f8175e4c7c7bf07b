"""The ``landmark-geometry`` expression extractor: blinks, brows and mouth from the 478 landmarks.

Distances are measured in 3D on MediaPipe's landmarks (x, y and the weak-perspective z share one
scale), so they do not change with head rotation, and divided by the eye-corner distance so they
do not change with distance to the camera.

Coefficients (per frame):
- ``blink_left``, ``blink_right``: 0 open .. 1 closed, from the eye aspect ratio (EAR) relative to
  the subject's open-eye EAR (90th percentile over the clip); 1 at ``closed_ratio`` of it.
- ``brow_raise``: brow-to-eye distance minus the subject's median, in tenths of the eye-corner
  distance (+1: brows about 10 % of an eye-corner distance higher than usual).
- ``mouth_open``: inner-lip gap / eye-corner distance.
- ``mouth_width``: mouth-corner distance / eye-corner distance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from pydantic import Field

from ..config import Frozen
from ..console import ProgressFn, no_progress
from ..face.eyes import LEFT_EYE, RIGHT_EYE, eye_aspect_ratio, landmark_distance
from ..registry import Spec

NAMES = ("blink_left", "blink_right", "brow_raise", "mouth_open", "mouth_width")

# MediaPipe face-mesh indices. "left"/"right" are the subject's own sides (the eyes: syncanim.face.eyes).
EYE_CORNERS = (33, 263)  # outer corners (right eye, left eye)
RIGHT_BROW = (70, 63, 105, 66, 107)
LEFT_BROW = (300, 293, 334, 296, 336)
RIGHT_EYE_CENTRE = (33, 133, 159, 145)
LEFT_EYE_CENTRE = (263, 362, 386, 374)
INNER_LIPS = (13, 14)
MOUTH_CORNERS = (61, 291)

#: A frame source for extractors that look at pixels: yields ``(k, rgb [H, W, 3] uint8)``.
FrameSource = Callable[[], Iterator[tuple[int, np.ndarray]]]


@dataclass(frozen=True)
class Expressions:
    """values: [N, C] float32, one column per name."""

    values: np.ndarray
    names: tuple[str, ...]

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]


class LandmarkGeometryConfig(Frozen):
    closed_ratio: float = Field(0.35, gt=0.0, lt=1.0)  # EAR of a closed eye as a share of the open EAR
    open_percentile: float = Field(90.0, gt=50.0, le=100.0)
    smooth_window: int = Field(5, ge=1)  # Savitzky-Golay window (frames, odd; order 3); 1 = no smoothing


def savgol(values: np.ndarray, window: int, order: int) -> np.ndarray:
    """Savitzky-Golay smoothing along time. values: [N, C] -> [N, C] float64.

    Each output is the value at that frame of the degree-``order`` polynomial least-squares fitted
    to the ``window`` frames around it; near the ends, the polynomial fitted to the first (last)
    window is evaluated (as ``scipy.signal.savgol_filter`` does with ``mode="interp"``).
    """
    x = np.asarray(values, np.float64)
    n = len(x)
    if window % 2 == 0 or window <= order or n < window:
        raise ValueError(f"need an odd window > order and <= N, got window={window}, order={order}, N={n}")
    half = window // 2
    vander = np.vander(np.arange(window) - half, order + 1, increasing=True)  # [w, order+1]
    fit = vander @ np.linalg.pinv(vander)  # [w, w]: row j = the fitted value at window position j
    out = np.empty_like(x)
    windows = np.lib.stride_tricks.sliding_window_view(x, window, axis=0)  # [N-w+1, C, w]
    out[half:n - half] = windows @ fit[half]
    out[:half] = fit[:half] @ x[:window]
    out[n - half:] = fit[half + 1:] @ x[n - window:]
    return out


def blink_from_ear(ear: np.ndarray, valid: np.ndarray, open_percentile: float, closed_ratio: float) -> np.ndarray:
    """EAR [N] -> blink [N] in 0..1, calibrated on the valid frames of the clip."""
    ref = np.percentile(ear[valid], open_percentile) if valid.any() else float(np.max(ear))
    closed = closed_ratio * ref
    return np.clip((ref - ear) / max(ref - closed, 1e-9), 0.0, 1.0)


def brow_height(points: np.ndarray) -> np.ndarray:
    """points: [N, 478, 3] -> mean brow-to-eye-centre distance of both sides [N]."""
    r = np.linalg.norm(points[:, list(RIGHT_BROW)].mean(1) - points[:, list(RIGHT_EYE_CENTRE)].mean(1), axis=-1)
    l_ = np.linalg.norm(points[:, list(LEFT_BROW)].mean(1) - points[:, list(LEFT_EYE_CENTRE)].mean(1), axis=-1)
    return 0.5 * (r + l_)


def landmark_expressions(points: np.ndarray, valid: np.ndarray, cfg: LandmarkGeometryConfig) -> np.ndarray:
    """points: [N, 478, 3] float, valid: [N] bool -> values [N, 5] float32 in the order of NAMES."""
    if points.ndim != 3 or points.shape[1:] != (478, 3):
        raise ValueError(f"points must be [N, 478, 3], got {points.shape}")
    scale = landmark_distance(points, *EYE_CORNERS) + 1e-9
    blink_r = blink_from_ear(eye_aspect_ratio(points, RIGHT_EYE), valid, cfg.open_percentile, cfg.closed_ratio)
    blink_l = blink_from_ear(eye_aspect_ratio(points, LEFT_EYE), valid, cfg.open_percentile, cfg.closed_ratio)
    brow = brow_height(points) / scale
    ref = np.median(brow[valid]) if valid.any() else np.median(brow)
    brow_raise = (brow - ref) * 10.0
    mouth_open = landmark_distance(points, *INNER_LIPS) / scale
    mouth_width = landmark_distance(points, *MOUTH_CORNERS) / scale
    out = np.stack([blink_l, blink_r, brow_raise, mouth_open, mouth_width], axis=1)
    w = cfg.smooth_window | 1
    if w >= 5 and len(out) > w:
        out = savgol(out, w, 3)
        out[:, :2] = out[:, :2].clip(0.0, 1.0)
    return out.astype(np.float32)


class LandmarkGeometryExtractor:
    """Expression coefficients from landmarks alone (no weights, no pixels)."""

    needs_frames = False

    def __init__(self, config: LandmarkGeometryConfig) -> None:
        self.config = config

    def extract(self, landmarks: np.ndarray, valid: np.ndarray, frames: FrameSource | None = None,
                fps: float = 25.0, progress: ProgressFn = no_progress) -> Expressions:
        progress("expressions", 0, 1)
        values = landmark_expressions(landmarks, valid, self.config)
        progress("expressions", 1, 1)
        return Expressions(values, NAMES)


SPEC = Spec(
    name="landmark-geometry",
    config_model=LandmarkGeometryConfig,
    build=LandmarkGeometryExtractor,
    description="blinks (eye aspect ratio), brow raise, mouth opening/width measured on the landmarks",
)
