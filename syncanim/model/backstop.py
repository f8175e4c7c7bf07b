"""What a ray through an open mouth meets behind the lips: the **mouth backstop**.

A real mouth is a closed cavity: behind the lips and teeth a ray meets the tongue and the throat, dark. The head
field learns the cavity only for the mouth shapes and views that training shows, so a rarely seen shape, or a
familiar one at another head pose, can come out with too little density behind the lips, and the ray then goes on
to what the head is drawn over: the background plate, a patch of the studio wall showing through the mouth
(``benchmarks/lip_holes.py``). Frames are therefore drawn with, inside the head, an ellipsoid behind the lips whose
colour is the inside of the subject's own mouth: a ray that meets it ends there instead of on the background. It
sits wholly inside the head, behind the lips, so wherever the face is opaque (everywhere but an open mouth) it is
hidden, and it changes nothing of what the field draws; it is not trained on (training composites over the frames'
own backgrounds, as before).

Pure functions: the ellipsoid from the subject's canonical landmarks (:func:`backstop_ellipsoid`), the colour from
the training frames (:func:`mouth_inside_colour`), and which rays meet it (:func:`ray_hits_ellipsoid`).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

#: FaceMesh's inner lip contour, in order around the mouth
INNER_CONTOUR = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
MOUTH_CORNERS = (61, 291)
#: the ellipsoid, in mouth widths (corner to corner): its centre behind the middle of the inner lips (down, back) and
#: its half-axes (across, up-down, front-back). Its front is 0.15 widths behind the lips; it reaches 0.25 above and
#: 0.55 below their middle (a mouth opens downwards), and 0.45 to either side, inside the cheeks.
CENTRE_OFFSET = (0.0, 0.15, 0.35)
HALF_AXES = (0.45, 0.40, 0.20)
#: the colour when no frames are at hand (a model built for timing or tests): a shadowed mouth's dark red
DEFAULT_INSIDE = (0.18, 0.08, 0.08)


def backstop_ellipsoid(canonical: np.ndarray) -> np.ndarray:
    """The backstop of a subject's canonical face landmarks ``[478, 3]`` (head frame: x across, y down, z away from
    the camera) -> ``[2, 3]`` float32: its centre and its half-axes along x, y, z."""
    c = np.asarray(canonical, np.float64)
    width = float(np.linalg.norm(c[MOUTH_CORNERS[0]] - c[MOUTH_CORNERS[1]]))
    middle = c[[13, 14, 78, 308]].mean(0)
    return np.stack([middle + width * np.array(CENTRE_OFFSET), width * np.array(HALF_AXES)]).astype(np.float32)


def mouth_inside_colour(frames: np.ndarray, landmarks: np.ndarray, opening: np.ndarray, most: int = 40) -> np.ndarray:
    """The colour inside the subject's open mouth: over the ``most`` frames with the widest ``opening [N]`` (at least
    the widest quarter of those with landmarks), the pixels inside the inner lip contour of ``landmarks [N, 478, 3]``
    (pixel x, y), the darker half of them (the tongue and throat, not the teeth), their median -> ``[3]`` float32 in
    [0, 1]. :data:`DEFAULT_INSIDE` when no frame shows an open mouth. ``frames``: ``[N, H, W, 3] uint8`` RGB."""
    ok = np.flatnonzero(np.isfinite(opening) & np.isfinite(landmarks).all((1, 2)))
    if len(ok) == 0:
        return np.asarray(DEFAULT_INSIDE, np.float32)
    take = ok[np.argsort(opening[ok])[::-1][:max(1, min(most, len(ok) // 4))]]
    pixels = []
    for i in take:
        mask = np.zeros(frames.shape[1:3], np.uint8)
        cv2.fillPoly(mask, [np.round(landmarks[i, list(INNER_CONTOUR), :2]).astype(np.int32)], 1)
        pixels.append(frames[i][mask > 0])
    inside = np.concatenate(pixels).astype(np.float32) / 255.0  # [M, 3]
    if len(inside) < 8:
        return np.asarray(DEFAULT_INSIDE, np.float32)
    luma = inside @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.median(inside[luma <= np.median(luma)], 0).astype(np.float32)


def ray_hits_ellipsoid(origins: torch.Tensor, dirs: torch.Tensor, ellipsoid: torch.Tensor) -> torch.Tensor:
    """Whether each ray meets the ellipsoid in front of its origin: origins, dirs ``[R, 3]`` (head frame), ellipsoid
    ``[2, 3]`` (centre, half-axes > 0) -> ``[R]`` bool. Device work only (no host synchronisation)."""
    centre, axes = ellipsoid[0], ellipsoid[1]
    q = (origins - centre) / axes  # the ellipsoid is the unit sphere in these coordinates
    e = dirs / axes
    a = (e * e).sum(-1)
    b = (q * e).sum(-1)
    c = (q * q).sum(-1) - 1.0
    disc = b * b - a * c
    far = -b + torch.sqrt(disc.clamp_min(0.0))  # a times the farther crossing's distance along the ray
    return (disc >= 0) & (far > 0)
