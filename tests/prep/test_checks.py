"""Measurements prep turns into warnings (syncanim/prep/checks.py), on synthetic signals."""

from __future__ import annotations

import numpy as np
import pytest

from syncanim.face.landmarks import NUM_LANDMARKS
from syncanim.prep.checks import face_heights, lighting_change, motion_stats, scene_cuts


def scene(level: float, n: int, rng: np.random.Generator, noise: float = 3.0, size: int = 32,
          amp: float = 20.0) -> np.ndarray:
    """``n`` grey thumbnails of one static shot: a fixed pattern around ``level`` plus sensor noise."""
    yy, xx = np.mgrid[0:size, 0:size]
    pattern = level + amp * np.sin(xx / 3.0) * np.cos(yy / 4.0)  # [h, w]
    frames = pattern[None] + rng.normal(0, noise, (n, size, size))  # [N, h, w]
    return np.clip(frames, 0, 255).astype(np.uint8)


# --- scene_cuts ----------------------------------------------------------------------------


def test_finds_a_hard_cut():
    rng = np.random.default_rng(0)
    thumbs = np.concatenate([scene(60, 20, rng), scene(180, 20, rng)])
    assert scene_cuts(thumbs) == [20]


def test_finds_several_cuts():
    rng = np.random.default_rng(1)
    thumbs = np.concatenate([scene(40, 15, rng), scene(200, 10, rng), scene(110, 15, rng)])
    assert scene_cuts(thumbs) == [15, 25]


def test_a_cut_to_a_different_picture_at_the_same_brightness():
    rng = np.random.default_rng(2)
    stripes = np.where((np.arange(32) // 4) % 2 == 0, 70, 170)  # [w]
    a = np.broadcast_to(stripes[None, None, :], (20, 32, 32))  # vertical stripes
    b = np.broadcast_to(stripes[None, :, None], (20, 32, 32))  # horizontal stripes, same mean
    thumbs = np.clip(np.concatenate([a, b]) + rng.normal(0, 3, (40, 32, 32)), 0, 255).astype(np.uint8)
    assert abs(thumbs[:20].mean() - thumbs[20:].mean()) < 2
    assert scene_cuts(thumbs) == [20]


def test_steady_fast_change_is_not_a_cut():
    # every frame differs from the last by more than ``floor``, but evenly: nothing stands out
    rng = np.random.default_rng(4)
    thumbs = np.stack([scene(10 + 25 * i, 1, rng, amp=5.0)[0] for i in range(10)])
    d = np.abs(np.diff(thumbs.astype(np.float32), axis=0)).mean(axis=(1, 2))
    assert d.min() > 20  # the floor alone would flag every frame
    assert scene_cuts(thumbs) == []


def test_noise_is_not_a_cut():
    rng = np.random.default_rng(5)
    assert scene_cuts(scene(128, 40, rng, noise=8.0)) == []
    # pure noise frames: large but uniform differences
    assert scene_cuts(rng.integers(0, 256, (30, 16, 16), dtype=np.uint8)) == []


def test_a_static_clip_has_no_cuts():
    assert scene_cuts(np.full((10, 8, 8), 77, np.uint8)) == []


@pytest.mark.parametrize("n", [0, 1])
def test_too_few_frames(n):
    assert scene_cuts(np.zeros((n, 8, 8), np.uint8)) == []


def test_a_cut_in_an_otherwise_static_clip():
    # median difference 0: the floor decides
    thumbs = np.full((10, 8, 8), 50, np.uint8)
    thumbs[6:] = 120
    assert scene_cuts(thumbs) == [6]
    thumbs[6:] = 65  # a 15-level jump is below the floor: lighting, not a cut
    assert scene_cuts(thumbs) == []


# --- lighting_change -----------------------------------------------------------------------


def test_constant_lighting():
    assert lighting_change(np.full(200, 120.0)) == pytest.approx(0.0)


def test_a_lighting_step():
    luma = np.concatenate([np.full(100, 100.0), np.full(100, 150.0)])
    # 1 s windows fully on each side: means 100 and 150, over a clip mean of 125
    assert lighting_change(luma, window=25) == pytest.approx(50 / 125)


def test_slow_drift_is_measured_between_windows():
    luma = np.linspace(100.0, 120.0, 300)
    got = lighting_change(luma, window=25)
    assert 0.1 < got < 20 / 110  # most of the 20-level drift, relative to the mean of 110


def test_missing_faces_are_ignored():
    luma = np.full(200, 100.0)
    luma[::3] = np.nan
    assert lighting_change(luma) == pytest.approx(0.0)
    luma[50:60] = 160.0  # a short flash, shorter than a window, is smoothed but seen
    assert lighting_change(luma) > 0.05


def test_too_short_to_measure():
    assert lighting_change(np.array([10.0, 200.0] * 20), window=25) == 0.0  # 40 < 2 windows
    assert lighting_change(np.full(100, np.nan)) == 0.0
    assert lighting_change(np.zeros(0)) == 0.0


def test_dark_clip_does_not_divide_by_zero():
    luma = np.concatenate([np.zeros(50), np.full(50, 0.5)])
    assert np.isfinite(lighting_change(luma))


# --- face_heights --------------------------------------------------------------------------


def test_face_heights_from_forehead_and_chin():
    pts = np.zeros((3, NUM_LANDMARKS, 3), np.float32)
    pts[:, 10, :2] = [[100, 50], [0, 0], [10, 10]]
    pts[:, 152, :2] = [[100, 250], [3, 4], [10, 10]]
    pts[:, 152, 2] = 1000.0  # depth does not count
    pts[:, 1] = 999.0  # other landmarks do not count
    np.testing.assert_allclose(face_heights(pts), [200.0, 5.0, 0.0])
    assert face_heights(pts).shape == (3,)


def test_face_heights_rejects_other_landmark_sets():
    with pytest.raises(AssertionError, match="478"):
        face_heights(np.zeros((2, 468, 3)))


# --- motion_stats --------------------------------------------------------------------------


def test_motion_stats():
    rot = np.array([[0, 0, 0], [10, -5, 2], [-4, 20, 1]], np.float64)  # ranges 14, 25, 2
    tr = np.array([[0, 0, 0], [3, 1, 50], [1, -1, -50]], np.float64)  # x range 3, y range 2, z ignored
    s = motion_stats(rot, tr, face_width=6.0)
    assert s == pytest.approx({"rotation_range_deg": 25.0, "translation_range_faces": 0.5})


def test_motion_stats_of_a_still_head():
    s = motion_stats(np.ones((5, 3)), np.ones((5, 3)), face_width=10.0)
    assert s == {"rotation_range_deg": 0.0, "translation_range_faces": 0.0}


def test_motion_stats_without_frames():
    s = motion_stats(np.zeros((0, 3)), np.zeros((0, 3)), face_width=10.0)
    assert s == {"rotation_range_deg": 0.0, "translation_range_faces": 0.0}


def test_motion_stats_zero_face_width_is_finite():
    s = motion_stats(np.zeros((2, 3)), np.array([[0.0, 0, 0], [1, 0, 0]]), face_width=0.0)
    assert np.isfinite(s["translation_range_faces"])
