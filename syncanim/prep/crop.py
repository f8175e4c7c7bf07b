"""Square framing of the subject: where to crop the source video and how to resize it (pure functions)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropBox:
    """A square window in source pixels; it may extend past the frame (padded by edge replication)."""

    x0: int
    y0: int
    side: int

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.side]


def full_frame_box(width: int, height: int) -> CropBox:
    """The smallest square holding the whole frame, centred (non-square frames get padded)."""
    side = max(width, height)
    return CropBox((width - side) // 2, (height - side) // 2, side)


def center_box(width: int, height: int) -> CropBox:
    """The largest centred square inside the frame."""
    side = min(width, height)
    return CropBox((width - side) // 2, (height - side) // 2, side)


def subject_box(face_boxes: np.ndarray, width: int, height: int, scale: float) -> CropBox:
    """A fixed square around the subject from face boxes seen over the video.

    face_boxes: [M, 4] float (x0, y0, x1, y1) in source pixels, one per sampled frame with a face.
    The square is ``scale`` face heights wide, placed so the median face centre sits a quarter of
    the side above the square's centre (leaving room for neck and shoulders), and clamped to lie
    inside the frame; along a dimension where it is larger than the frame, it is centred on the
    frame so that every pixel of that dimension is kept.
    """
    if face_boxes.ndim != 2 or face_boxes.shape[1] != 4 or len(face_boxes) == 0:
        raise ValueError(f"face_boxes must be [M>0, 4], got {face_boxes.shape}")
    cx = float(np.median((face_boxes[:, 0] + face_boxes[:, 2]) / 2))
    cy = float(np.median((face_boxes[:, 1] + face_boxes[:, 3]) / 2))
    fh = float(np.median(face_boxes[:, 3] - face_boxes[:, 1]))
    side = int(round(min(max(width, height), max(16.0, scale * fh))))
    cy += 0.25 * side - 0.5 * fh
    x0 = int(round(cx - side / 2))
    y0 = int(round(cy - side / 2))
    x0 = min(max(x0, 0), width - side) if side <= width else (width - side) // 2
    y0 = min(max(y0, 0), height - side) if side <= height else (height - side) // 2
    return CropBox(x0, y0, side)


def apply_crop(rgb: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Cut ``box`` out of ``rgb: [H, W, 3] uint8`` (edge-padding outside) and resize to ``[size, size, 3]``."""
    h, w = rgb.shape[:2]
    x0, y0, s = box.x0, box.y0, box.side
    if x0 < 0 or y0 < 0 or x0 + s > w or y0 + s > h:
        pad = (max(0, -y0), max(0, y0 + s - h), max(0, -x0), max(0, x0 + s - w))
        rgb = cv2.copyMakeBorder(rgb, *pad, borderType=cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad[2], y0 + pad[0]
    window = rgb[y0:y0 + s, x0:x0 + s]
    if s == size:
        return np.ascontiguousarray(window)
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(window, (size, size), interpolation=interp)
