"""Mouth landmark distance: the lip index set, the distance math, and FaceMesh on a real photo."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from skimage.data import astronaut

from syncanim.metrics.lmd import MOUTH, LMDResult, lmd, lmd_stats, mouth_landmarks


def test_mouth_is_sorted_facemesh_lips():
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_LIPS

    assert tuple(sorted({i for edge in FACEMESH_LIPS for i in edge})) == MOUTH
    assert len(MOUTH) == 40


# --- distance math ----------------------------------------------------------------------------


def _points(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(100, 400, (n, len(MOUTH), 2)).astype(np.float32)


@pytest.mark.parametrize("size", [512, 256, (200, 300)])
def test_lmd_of_a_shift_is_the_shift_rescaled_to_512(size):
    t = _points(5)
    p = t + np.array([3.0, 4.0], dtype=np.float32)  # 5 px at every point
    longer = size if isinstance(size, int) else max(size)
    assert lmd(p, t, size) == pytest.approx(5.0 * 512 / longer, rel=1e-6)
    assert lmd(p, t, size, scale_to=longer) == pytest.approx(5.0, rel=1e-6)
    # centring each frame's points removes a common shift (the papers' LMDMeter convention)
    assert lmd(p, t, size, centered=True) == pytest.approx(0.0, abs=1e-4)


def test_lmd_is_mean_over_points_and_frames():
    t = np.zeros((2, len(MOUTH), 2), np.float32)
    p = t.copy()
    p[0, 0] = (len(MOUTH), 0.0)  # frame 0: one point off by K px -> mean 1 px
    p[1, :, 1] = 3.0  # frame 1: every point 3 px -> mean 3 px
    assert lmd(p, t, 512) == pytest.approx(2.0)


def test_lmd_skips_and_counts_frames_without_a_face():
    t = _points(4)
    p = t + 2.0
    p[1] = np.nan  # no face in the render
    t[3] = np.nan  # no face in the reference
    res = lmd_stats(p, t, 512)
    assert isinstance(res, LMDResult)
    assert res.frames_used == 2 and res.frames_skipped == 2
    assert res.value == pytest.approx(2.0 * math.sqrt(2.0), rel=1e-6)


def test_lmd_without_usable_frames_is_nan():
    t = np.full((3, len(MOUTH), 2), np.nan, np.float32)
    res = lmd_stats(_points(3), t, 512)
    assert math.isnan(res.value) and res.frames_used == 0 and res.frames_skipped == 3
    res = lmd_stats(np.zeros((0, len(MOUTH), 2)), np.zeros((0, len(MOUTH), 2)), 512)
    assert math.isnan(res.value) and res.frames_used == 0 and res.frames_skipped == 0


def test_lmd_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"\(2, 40, 2\) and \(3, 40, 2\)"):
        lmd(_points(2), _points(3), 512)
    with pytest.raises(ValueError, match="image_size"):
        lmd(_points(2), _points(2), 0)


# --- FaceMesh on a photo ----------------------------------------------------------------------


def _shift_right(img: np.ndarray, dx: int) -> np.ndarray:
    """Move the content ``dx`` px to the right, repeating the left edge column."""
    return np.ascontiguousarray(np.pad(img, ((0, 0), (dx, 0), (0, 0)), mode="edge")[:, : img.shape[1]])


@pytest.fixture(scope="module")
def faces() -> dict[int, np.ndarray]:
    img = astronaut()  # [512, 512, 3] uint8, one frontal face
    return {512: img, 256: cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA)}


@pytest.mark.parametrize("size", [512, 256])
def test_lmd_of_a_shifted_photo(faces, size):
    img = faces[size]
    blank = np.full_like(img, 128)
    pred = mouth_landmarks([_shift_right(img, 3), img, blank])
    target = mouth_landmarks([img, img, img])
    assert pred.shape == (3, len(MOUTH), 2) and pred.dtype == np.float32
    assert np.isnan(pred[2]).all() and not np.isnan(target).any()
    # static-image mode: the same frame gives the same points wherever it appears in the sequence
    np.testing.assert_array_equal(pred[1], target[1])
    # the mouth moved +3 px in x
    assert np.nanmean(pred[0, :, 0] - target[0, :, 0]) == pytest.approx(3.0, abs=0.5)
    res = lmd_stats(pred, target, size)
    assert res.frames_used == 2 and res.frames_skipped == 1
    # frame 0 contributes ~3 px (the detector is not exactly shift-equivariant: measured 3.19 px at
    # 512 and 3.08 px at 256 before rescaling), frame 1 contributes 0; then x 512 / size
    expected = (3.0 + 0.0) / 2 * 512 / size
    assert res.value == pytest.approx(expected, rel=0.15)
    assert lmd(pred[1:2], target[1:2], size) == 0.0


def test_mouth_landmarks_lie_on_the_mouth(faces):
    pts = mouth_landmarks([faces[512]])[0]
    centre = pts.mean(0)
    # the astronaut's mouth is near (x 225, y 150) in the 512 px photo
    assert 200 < centre[0] < 250 and 130 < centre[1] < 175
    assert mouth_landmarks([]).shape == (0, len(MOUTH), 2)


def test_mouth_landmarks_rejects_non_rgb_uint8():
    with pytest.raises(ValueError, match=r"frame 0: expected \[H, W, 3\] uint8"):
        mouth_landmarks([np.zeros((32, 32, 3), np.float32)])
