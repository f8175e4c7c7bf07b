"""Blinks: found in a closure track, fitted to the subject, generated at their rate, also in silence."""

import numpy as np
import pytest

from syncanim.motion.blinks import BlinkState, calibrate_blinks, find_blinks, fit_blinks, generated_rate


def _track(n=3000, every=75, fps=25.0, seed=0):
    """Closure of both eyes [N, 2]: open at 0.1, a 7-frame blink every ``every`` frames (jittered)."""
    rng = np.random.default_rng(seed)
    c = np.full((n, 2), 0.1) + 0.02 * rng.standard_normal((n, 2))
    bump = np.array([0.2, 0.5, 0.85, 1.0, 0.8, 0.45, 0.15])
    peaks = []
    t = 30
    while t + 7 < n:
        c[t:t + 7] += bump[:, None]
        peaks.append(t + 3)
        t += every + int(rng.integers(-20, 20))
    return c, peaks


def test_find_blinks_at_their_peaks_and_not_winks():
    c, peaks = _track()
    found = find_blinks(c, 25.0)
    assert found == peaks
    wink = c.copy()
    wink[:, 1] = 0.1  # only one eye closes: no blink
    assert find_blinks(wink, 25.0) == []
    held = np.full((100, 2), 0.1)
    held[20:60] = 1.0  # eyes shut for 1.6 s: not a blink
    assert find_blinks(held, 25.0) == []


def test_fit_takes_the_subjects_rate_profile_and_baseline():
    c, peaks = _track()
    m = fit_blinks(c, 25.0)
    assert m.found == len(peaks)
    assert m.rate_per_min == pytest.approx(len(peaks) / 2.0, rel=0.02)  # 3000 frames = 2 minutes
    np.testing.assert_allclose(m.baseline, 0.1, atol=0.01)
    assert m.profile.max() == pytest.approx(1.0, abs=0.05) and m.profile[m.peak].max() == m.profile.max()
    few = fit_blinks(np.full((500, 2), 0.1), 25.0)  # no blinks in the clip: a default rate and shape
    assert few.found == 0 and few.rate_per_min == 15.0 and few.profile.max() > 0.5


@pytest.mark.parametrize("speech_share", [0.0, 0.7])
def test_generated_rate_matches_the_subject_in_speech_and_silence(speech_share):
    c, _ = _track(every=100)  # 15 per minute
    m = fit_blinks(c, 25.0)
    rng = np.random.default_rng(1)
    # speech in runs of 1-3 s with pauses between (or none at all)
    speech = np.zeros(6000, bool)
    t = 0
    while t < len(speech):
        run = int(rng.integers(25, 75))
        if rng.random() < speech_share:
            speech[t:t + run] = True
        t += run + int(rng.integers(10, 30))
    m = calibrate_blinks(m, speech, 25.0)
    rate = generated_rate(m, speech, 25.0)
    assert rate == pytest.approx(m.rate_per_min, rel=0.15)


def test_pauses_bring_blinks_forward():
    c, _ = _track(every=150)
    m = fit_blinks(c, 25.0)
    speech = np.tile(np.r_[np.ones(50, bool), np.zeros(25, bool)], 40)
    starts = []
    for seed in range(20):
        st = BlinkState(m, 25.0, np.random.default_rng(seed))
        for k, s in enumerate(speech.tolist()):
            st.step(s)
            if st.pos == 1:
                starts.append(k % 75)
    hist = np.bincount(starts, minlength=75)
    # blinks start more often in the first frames of a pause (50..54) than anywhere else
    assert hist[50:55].mean() > 3 * hist[:50].mean()
