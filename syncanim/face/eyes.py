"""The eyes on MediaPipe FaceMesh's 478 landmarks: lid and corner indices, and the eye aspect ratio.

"Left" and "right" are the subject's own sides. The eye aspect ratio (EAR) is the mean gap between
three pairs of upper and lower lid points over the distance between the eye's corners: it drops
towards 0 as the eye closes, and does not change with the distance to the camera.
"""

from __future__ import annotations

import numpy as np

RIGHT_EYE = {"corners": (33, 133), "pairs": ((160, 144), (159, 145), (158, 153))}
LEFT_EYE = {"corners": (263, 362), "pairs": ((387, 373), (386, 374), (385, 380))}


def landmark_distance(points: np.ndarray, a: int, b: int) -> np.ndarray:
    """points: [N, 478, 3] -> the 3-D distance between landmarks ``a`` and ``b`` of each frame [N]."""
    return np.linalg.norm(points[:, a] - points[:, b], axis=-1)


def eye_aspect_ratio(points: np.ndarray, eye: dict) -> np.ndarray:
    """points: [N, 478, 3] -> EAR [N]: mean lid gap over the corner distance (``eye``: :data:`LEFT_EYE`
    or :data:`RIGHT_EYE`)."""
    gaps = np.mean([landmark_distance(points, a, b) for a, b in eye["pairs"]], axis=0)
    return gaps / (landmark_distance(points, *eye["corners"]) + 1e-9)
