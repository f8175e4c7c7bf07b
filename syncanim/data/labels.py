"""Classes of the per-frame label maps written by prep (``parsing/NNNNNN.png``).

The classes partition the image: the person is every non-zero label, the head (with hair) is
``HEAD`` and ``FACE`` together, and the face is the region inside the face outline.
"""

from __future__ import annotations

import cv2
import numpy as np

BACKGROUND, TORSO, NECK, HEAD, FACE = 0, 1, 2, 3, 4
NAMES = {BACKGROUND: "background", TORSO: "torso", NECK: "neck", HEAD: "head", FACE: "face"}
#: Display colours (RGB) for overlays in reports.
COLOURS = np.array([[0, 0, 0], [70, 130, 230], [240, 200, 40], [200, 70, 200], [240, 90, 60]], np.uint8)


def masks(labels: np.ndarray) -> dict[str, np.ndarray]:
    """The six named masks of a label map. labels: [H, W] uint8 -> name -> [H, W] bool."""
    return {
        "person": labels != BACKGROUND,
        "head": labels >= HEAD,
        "neck": labels == NECK,
        "torso": labels == TORSO,
        "background": labels == BACKGROUND,
        "face": labels == FACE,
    }


#: half-width of the band around the head's outline at 512 px (scaled with the frame size): where most of a held-out
#: frame's error sits (benchmarks/psnr_regions.py)
OUTLINE_PX = 4.0


def outline_band(labels: np.ndarray, radius: float) -> np.ndarray:
    """The pixels within ``radius`` px (at least 1) of the head's outline (the edge of ``HEAD`` and ``FACE``
    together), on either side. labels: [H, W] uint8 -> [H, W] bool."""
    r = max(1, int(round(radius)))
    kernel = np.ones((2 * r + 1, 2 * r + 1), np.uint8)
    head = (labels >= HEAD).astype(np.uint8)
    return (cv2.dilate(head, kernel) > 0) & ~(cv2.erode(head, kernel) > 0)
