import numpy as np

from syncanim.face.eyes import LEFT_EYE, RIGHT_EYE, eye_aspect_ratio


def _eye(points: np.ndarray, eye: dict, gap: float) -> None:
    """Corners 1 apart on x, each lid pair ``gap`` apart on y."""
    a, b = eye["corners"]
    points[:, a], points[:, b] = (0.0, 0.0, 0.0), (1.0, 0.0, 0.0)
    for k, (up, down) in enumerate(eye["pairs"]):
        points[:, up] = (0.25 * (k + 1), -gap / 2, 0.0)
        points[:, down] = (0.25 * (k + 1), gap / 2, 0.0)


def test_eye_aspect_ratio_is_the_lid_gap_over_the_corner_distance():
    pts = np.zeros((2, 478, 3))
    _eye(pts, LEFT_EYE, 0.3)
    _eye(pts, RIGHT_EYE, 0.05)
    np.testing.assert_allclose(eye_aspect_ratio(pts, LEFT_EYE), 0.3, rtol=1e-6)
    np.testing.assert_allclose(eye_aspect_ratio(pts, RIGHT_EYE), 0.05, rtol=1e-6)
    np.testing.assert_allclose(eye_aspect_ratio(pts * 7.0, LEFT_EYE), 0.3, rtol=1e-6)  # no change with scale
