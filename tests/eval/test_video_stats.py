"""Blink detection and head-motion statistics (syncanim/eval/video_stats.py) on synthetic series."""

from __future__ import annotations

import numpy as np
import pytest

from syncanim.eval.video_stats import detect_blinks, eye_closure, head_motion
from syncanim.face.eyes import LEFT_EYE, RIGHT_EYE

FPS = 25.0


def closure_with(blinks: dict[int, list[float]], n: int = 200, noise: float = 0.03, seed: int = 0) -> np.ndarray:
    """Two eyes' closure: noise around 0, with the given closure values starting at each frame."""
    rng = np.random.default_rng(seed)
    c = noise * rng.standard_normal((n, 2))
    for start, values in blinks.items():
        c[start:start + len(values)] = np.array(values)[:, None]
    return c


def test_blinks_are_found_at_their_centre():
    c = closure_with({20: [0.3, 0.7, 0.8, 0.7, 0.3], 100: [0.6, 0.9, 0.6]})
    events = detect_blinks(c, FPS)
    assert [e[2] for e in events] == [22, 101]
    assert events[0][:2] == (20, 25)


def test_winks_long_closures_and_gaps_are_not_blinks():
    c = closure_with({50: [0.8] * 40})  # 1.6 s with the eyes shut: longer than max_duration_s
    c[120:124, 0] = 0.9  # one eye only (a wink, or a glitch of one eye)
    assert detect_blinks(c, FPS) == []
    c = closure_with({30: [0.2, 0.25, 0.2]})  # never reaches close_ratio
    assert detect_blinks(c, FPS) == []
    c = closure_with({30: [0.8, 0.8, np.nan, 0.8]})  # a frame without a face splits the event
    assert [e[:2] for e in detect_blinks(c, FPS)] == [(30, 32), (33, 34)]
    assert detect_blinks(c, FPS, min_duration_s=0.1) == []


def test_eye_closure_is_calibrated_per_eye():
    pts = np.zeros((10, 478, 3))
    for eye, gap in ((LEFT_EYE, 3.0), (RIGHT_EYE, 5.0)):  # two eyes of different shapes
        a, b = eye["corners"]
        pts[:, a] = (0, 0, 0)
        pts[:, b] = (10, 0, 0)
        for top, bottom in eye["pairs"]:
            pts[:, top] = (5, 0, 0)
            pts[:, bottom] = (5, gap, 0)
            pts[4, bottom] = (5, gap / 2, 0)  # frame 4: both eyes half shut
    found = np.ones(10, bool)
    found[7] = False
    c = eye_closure(pts, found, open_percentile=75)
    assert c.shape == (10, 2)
    assert np.allclose(c[4], 0.5) and np.allclose(c[[0, 1, 9]], 0.0) and np.isnan(c[7]).all()


def test_head_motion_amplitude_and_jitter():
    n = 100
    t = np.arange(n)
    angles = np.zeros((n, 3))
    angles[:, 0] = 2.0 * np.sin(2 * np.pi * t / 50)  # smooth yaw sway
    angles[::2, 2] += 0.5  # roll alternating by 0.5 degree: jitter
    found = np.ones(n, bool)
    hm = head_motion(angles, found)
    assert hm.amplitude_axes_deg[0] == pytest.approx(np.sqrt(2.0), rel=0.02)  # std of a sine of amplitude 2
    assert hm.amplitude_axes_deg[2] == pytest.approx(0.25)
    assert hm.jitter_axes_deg[2] == pytest.approx(1.0)  # |0.5 - 2 * 0 + 0.5| every frame
    assert hm.jitter_axes_deg[0] < 0.05 and hm.jitter_axes_deg[1] == 0.0
    assert hm.amplitude_deg == pytest.approx(np.sqrt(sum(a * a for a in hm.amplitude_axes_deg)))
    found[10] = False  # frames 9, 10, 11 lose their acceleration terms, frame 10 its angle
    assert head_motion(angles, found).frames == n - 1
