"""The weight-free sync score (syncanim/eval/sync.py) on synthetic signals: signs, windows, edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from syncanim.eval.sync import (
    frame_rms,
    lagged_correlations,
    mouth_opening,
    sync_score,
    window_starts,
)

FPS = 25.0
SR = 16000


def speech(seconds: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A syllable-like signal: a 150 Hz tone whose loudness follows a random 2-8 Hz envelope with pauses.
    Returns (samples [T] at 16 kHz, loudness per video frame [N] in [0, 1])."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FPS)
    level = np.zeros(n)
    k = 0
    while k < n:
        length = int(rng.integers(2, 7))
        level[k:k + length] = rng.uniform(0.3, 1.0) if rng.random() < 0.75 else 0.0
        k += length + int(rng.integers(0, 3))
    t = np.arange(int(seconds * SR)) / SR
    amp = np.interp(t, np.arange(n) / FPS, level)
    return (0.3 * amp * np.sin(2 * np.pi * 150 * t)).astype(np.float32), level


def mouth_for(level: np.ndarray, delay: int, seed: int = 1) -> np.ndarray:
    """Mouth opening that follows the loudness ``delay`` frames later (plus a little noise)."""
    rng = np.random.default_rng(seed)
    shifted = np.roll(level, delay)
    if delay > 0:
        shifted[:delay] = 0
    elif delay < 0:
        shifted[delay:] = 0
    return 0.05 + 0.3 * shifted + 0.005 * rng.standard_normal(len(level))


def score(samples: np.ndarray, mouth: np.ndarray, **kw):
    lag = kw.get("max_lag", 10)
    rms = frame_rms(samples, SR, FPS, -lag, len(mouth) + 2 * lag)
    return sync_score(mouth, rms, FPS, **kw)


@pytest.mark.parametrize("delay", [-5, -2, 0, 3, 7])
def test_offset_is_the_delay_of_the_video(delay):
    samples, level = speech(8.0)
    res = score(samples, mouth_for(level, delay))
    # positive offset = the mouth moves after the sound (video lags audio)
    assert res.offset_frames == delay
    assert res.offset_s == pytest.approx(delay / FPS)
    assert abs(res.offset_subframe - delay) < 0.5
    assert res.confidence > 0.6 and res.contrast > 0.4
    assert res.windows_used == res.windows_total > 5
    assert len(res.window_offsets) == res.windows_used and len(res.mean_correlation) == 21
    assert np.mean(np.array(res.window_offsets) == delay) > 0.8


def test_a_mouth_unrelated_to_the_speech_scores_low():
    samples, level = speech(8.0, seed=0)
    _, other = speech(8.0, seed=5)
    good = score(samples, mouth_for(level, 0))
    bad = score(samples, mouth_for(other, 0))
    assert bad.confidence < 0.5 * good.confidence


def test_frame_rms_windows_and_padding():
    x = np.ones(SR, np.float32)  # 1 s of a constant 1
    r = frame_rms(x, SR, FPS, -2, 29)  # frames -2 .. 26
    assert r.shape == (29,)
    # frame k covers [k - 1/2, k + 1/2) frame durations; the track spans frames [0, 25)
    assert r[0] == 0.0 and r[1] == 0.0  # frames -2, -1 lie before the track
    assert r[2] == pytest.approx(np.sqrt(0.5))  # frame 0: half of its window is before the track
    assert np.allclose(r[3:27], 1.0)  # frames 1 .. 24
    assert r[27] == pytest.approx(np.sqrt(0.5))  # frame 25: half after the end
    assert r[-1] == 0.0


def test_lagged_correlations_lines_up_lags():
    rng = np.random.default_rng(0)
    n, lag = 60, 4
    audio = rng.standard_normal(n + 2 * lag)  # frames -4 .. 63
    video = audio[lag - 3: lag - 3 + n]  # video frame k shows the audio of frame k - 3
    c = lagged_correlations(video, audio, window_starts(n, 20, 10), 20, lag)
    assert c.shape == (5, 9)
    assert np.allclose(c[:, lag + 3], 1.0)
    assert (np.argmax(c, 1) == lag + 3).all()


def test_window_starts_cover_the_clip():
    assert window_starts(100, 50, 12).tolist() == [0, 12, 24, 36, 48, 50]
    assert window_starts(50, 50, 12).tolist() == [0]
    assert window_starts(49, 50, 12).size == 0


def test_short_silent_and_faceless_clips_give_a_note():
    samples, level = speech(1.0)
    res = score(samples, mouth_for(level, 0))
    assert res.offset_frames is None and res.confidence is None and "shorter" in res.note
    samples, level = speech(4.0)
    silent = score(np.zeros_like(samples), mouth_for(level, 0))
    assert silent.confidence is None and "speech" in silent.note
    faceless = score(samples, np.full(len(level), np.nan))
    assert faceless.confidence is None and "face" in faceless.note


def test_mouth_opening_uses_lips_over_eye_corners():
    pts = np.zeros((2, 478, 3))
    pts[:, 33] = (0, 0, 0)
    pts[:, 263] = (10, 0, 0)
    pts[:, 13] = (5, 5, 0)
    pts[:, 14] = (5, 8, 0)
    pts[1] = np.nan
    m = mouth_opening(pts)
    assert m[0] == pytest.approx(0.3) and np.isnan(m[1])
