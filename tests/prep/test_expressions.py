import numpy as np
import pytest
from scipy.signal import savgol_filter

from syncanim.prep.expressions import (
    LandmarkGeometryConfig,
    blink_from_ear,
    landmark_expressions,
    savgol,
)


@pytest.mark.parametrize("window,order", [(5, 3), (7, 2), (9, 3)])
def test_savgol_matches_scipy(window, order):
    x = np.random.default_rng(window).normal(size=(40, 3))
    np.testing.assert_allclose(savgol(x, window, order), savgol_filter(x, window, order, axis=0), atol=1e-10)


def test_savgol_keeps_polynomials():
    t = np.arange(30, dtype=float)[:, None]
    cubic = 0.01 * t**3 - t**2 + 3
    np.testing.assert_allclose(savgol(cubic, 7, 3), cubic, atol=1e-8)


def test_blink_from_ear_calibrates_on_the_clip():
    ear = np.full(100, 0.3)
    ear[50] = 0.3 * 0.35  # fully closed by the default closed ratio
    ear[60] = 0.2
    b = blink_from_ear(ear, np.ones(100, bool), 90.0, 0.35)
    assert b[0] == 0 and b[50] == pytest.approx(1.0) and 0.3 < b[60] < 0.8


def _face(open_mouth: float, eye_gap: float, brow: float) -> np.ndarray:
    """A crude landmark set with the points the coefficients read placed by hand."""
    p = np.zeros((478, 3))
    p[33], p[263] = (-45, 0, 0), (45, 0, 0)  # outer eye corners: 90 apart
    p[133], p[362] = (-15, 0, 0), (15, 0, 0)
    for up, lo, x in ((160, 144, -38), (159, 145, -30), (158, 153, -22), (387, 373, 38), (386, 374, 30), (385, 380, 22)):
        p[up], p[lo] = (x, -eye_gap / 2, 0), (x, eye_gap / 2, 0)
    for i in (70, 63, 105, 66, 107):
        p[i] = (-30, -20 - brow, 0)
    for i in (300, 293, 334, 296, 336):
        p[i] = (30, -20 - brow, 0)
    p[13], p[14] = (0, 60, 0), (0, 60 + open_mouth, 0)
    p[61], p[291] = (-25, 62, 0), (25, 62, 0)
    return p


def test_landmark_expressions_read_the_right_points_and_ignore_rotation():
    frames = [_face(0, 9, 0)] * 20 + [_face(20, 1, 6)] + [_face(0, 9, 0)] * 20
    pts = np.stack(frames)
    cfg = LandmarkGeometryConfig(smooth_window=1)
    ex = landmark_expressions(pts, np.ones(len(pts), bool), cfg)
    blink_l, blink_r, brow, mouth_open, mouth_width = ex.T
    assert blink_l[20] > 0.9 and blink_r[20] > 0.9 and blink_l[0] < 0.05
    assert brow[20] == pytest.approx(10 * 6 / 90, rel=0.05) and abs(brow[0]) < 1e-6
    assert mouth_open[20] == pytest.approx(20 / 90, rel=1e-3) and mouth_width[0] == pytest.approx(50 / 90, rel=1e-3)
    # a rotated head gives the same coefficients: distances are measured in 3D
    a = np.radians(25)
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    np.testing.assert_allclose(landmark_expressions(pts @ rot.T, np.ones(len(pts), bool), cfg), ex, atol=1e-5)
