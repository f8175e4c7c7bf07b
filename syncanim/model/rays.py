"""Camera rays in the canonical head frame, and the head's bounding box (pure torch functions).

Poses follow :mod:`syncanim.geometry`: ``X_cam = R @ X_head + t`` with OpenCV camera axes. A ray through
pixel centre ``(u, v)`` (pixel ``(j, i)`` has its centre at ``(j + 0.5, i + 0.5)``) has, in the head
frame, origin ``-R^T t`` and direction ``R^T [(u - cx) / f, (v - cy) / f, 1]`` (normalised).
"""

from __future__ import annotations

import numpy as np
import torch

from ..face.mouth import MOUTH_POINTS


def pixel_rays(rotation: torch.Tensor, translation: torch.Tensor, focal: float, cx: float, cy: float,
               pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """rotation: [B, 3, 3], translation: [B, 3], pixels: [B, R, 2] (u, v) -> origins, dirs: [B, R, 3]."""
    assert rotation.shape[-2:] == (3, 3) and translation.shape[-1] == 3, f"bad pose shapes {rotation.shape}, {translation.shape}"
    assert pixels.shape[0] == rotation.shape[0] and pixels.shape[-1] == 2, f"pixels must be [B, R, 2], got {pixels.shape}"
    cam = torch.stack([(pixels[..., 0] - cx) / focal, (pixels[..., 1] - cy) / focal,
                       torch.ones_like(pixels[..., 0])], -1)  # [B, R, 3]
    # R^T @ cam per ray, as three broadcast products: a batched matrix product of 3x3 matrices runs as
    # one tiny matrix-vector kernel per ray batch on a GPU, several times slower
    dirs = cam[..., 0:1] * rotation[:, None, 0, :] + cam[..., 1:2] * rotation[:, None, 1, :] \
        + cam[..., 2:3] * rotation[:, None, 2, :]  # [B, R, 3]
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    origins = -torch.einsum("bji,bj->bi", rotation, translation)  # [B, 3]
    return origins[:, None, :].expand_as(dirs), dirs


def head_box(canonical: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The box (lo, hi: [3]) the head model lives in, from the canonical face landmarks [478, 3].

    Wide enough for hair and ears: 0.75 face widths either side of the face centre, from 0.55 face
    heights above the forehead to 0.12 below the chin, from 0.03 in front of the nose tip to 0.06
    behind the deepest landmark (canonical units are close to metres).
    """
    p = np.asarray(canonical, np.float64)
    width = float(np.linalg.norm(p[234] - p[454]))
    height = float(np.linalg.norm(p[10] - p[152]))
    cx = 0.5 * (p[:, 0].min() + p[:, 0].max())
    lo = np.array([cx - 0.75 * width, p[:, 1].min() - 0.55 * height, p[:, 2].min() - 0.03])
    hi = np.array([cx + 0.75 * width, p[:, 1].max() + 0.12 * height, p[:, 2].max() + 0.06])
    return lo.astype(np.float32), hi.astype(np.float32)


#: the eyes' outlines and the brows (FaceMesh points): where blinks and brow raises act
EYES_AND_BROWS = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
                  263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466,
                  70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 336, 296, 334, 293, 300, 276, 283, 282, 295, 285)


def points_box(canonical: np.ndarray, points: tuple[int, ...], lo: np.ndarray, hi: np.ndarray,
               margin: float) -> np.ndarray:
    """The box around landmarks ``points`` of the canonical face ``[478, 3]``, grown by ``margin`` face heights
    across and up and down, through the whole depth of the head box (``lo``, ``hi``: [3]), in the head box's unit
    coordinates: ``[2, 3]`` (lo, hi)."""
    p = np.asarray(canonical, np.float64)
    height = float(np.linalg.norm(p[10] - p[152]))
    m = p[list(points)]
    grow = np.array([margin * height, margin * height, 0.0])
    box = np.stack([m.min(0) - grow, m.max(0) + grow])  # [2, 3] head frame
    unit = (box - lo) / (np.asarray(hi, np.float64) - lo) * 2.0 - 1.0
    unit[:, 2] = [-1.0, 1.0]
    return np.clip(unit, -1.0, 1.0).astype(np.float32)


def expression_box(canonical: np.ndarray, lo: np.ndarray, hi: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """Where blinks and brow raises may change the head (:func:`points_box` of :data:`EYES_AND_BROWS`): the
    eyes, lids and brows; the mouth, the cheeks below the eyes and the hair lie outside."""
    return points_box(canonical, EYES_AND_BROWS, lo, hi, margin)


def speech_box(canonical: np.ndarray, lo: np.ndarray, hi: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """Where speech may change the head, in the head box's unit coordinates: ``[2, 3]`` (lo, hi).

    The box around the lips and the jaw line (:data:`syncanim.face.mouth.MOUTH_POINTS` of the canonical
    landmarks ``[478, 3]``), grown by ``margin`` face heights across and up and down (the cheeks and the chin
    move with the mouth), through the whole depth of the head box (``lo``, ``hi``: [3]). The hair, the
    forehead, the eyes and the ears above the jaw lie outside.
    """
    return points_box(canonical, MOUTH_POINTS, lo, hi, margin)


def outside_box(unit: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """unit: [..., 3] points in unit coordinates, box: [2, 3] (lo, hi) -> [...] bool, True outside the box."""
    return ~((unit >= box[0]) & (unit <= box[1])).all(-1)


def to_unit_box(points: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """points: [..., 3] in the head frame -> [..., 3] with the box mapped to [-1, 1]^3."""
    return (points - lo) / (hi - lo) * 2.0 - 1.0


def project_box(rotation: np.ndarray, translation: np.ndarray, focal: float, cx: float, cy: float,
                lo: np.ndarray, hi: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """Pixel rectangle (x0, y0, x1, y1), clipped to the image, covering the projected box corners."""
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    cam = corners @ rotation.T + translation
    z = np.maximum(cam[:, 2], 1e-6)
    u, v = focal * cam[:, 0] / z + cx, focal * cam[:, 1] / z + cy
    x0, x1 = int(np.clip(np.floor(u.min()), 0, width)), int(np.clip(np.ceil(u.max()), 0, width))
    y0, y1 = int(np.clip(np.floor(v.min()), 0, height)), int(np.clip(np.ceil(v.max()), 0, height))
    return x0, y0, x1, y1
