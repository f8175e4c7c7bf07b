"""The face box of a frame: where the face-box PSNR is measured (pure numpy)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: a pixel rectangle (x0, y0, x1, y1), end-exclusive
Box = tuple[int, int, int, int]


def face_box(landmarks: np.ndarray, size: tuple[int, int], margin: float = 0.1) -> Box | None:
    """The bounding box of ``landmarks: [K, >=2]`` (x, y pixels) grown by ``margin`` of its size on
    every side and clipped to the frame (``size = (H, W)``): ``(x0, y0, x1, y1)``, end-exclusive.
    None when the landmarks are not finite or the box is empty.
    """
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    if not np.isfinite(pts).all():
        return None
    h, w = size
    lo, hi = pts.min(0), pts.max(0)
    pad = (hi - lo) * margin
    x0, y0 = np.floor(lo - pad).astype(int)
    x1, y1 = np.ceil(hi + pad).astype(int)
    x0, x1 = (int(v) for v in np.clip([x0, x1], 0, w))
    y0, y1 = (int(v) for v in np.clip([y0, y1], 0, h))
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def face_boxes(landmarks: Iterable[np.ndarray], size: tuple[int, int], margin: float = 0.1) -> list[Box | None]:
    """:func:`face_box` of each frame's landmarks ``[K, >=2]``."""
    return [face_box(p, size, margin) for p in landmarks]
