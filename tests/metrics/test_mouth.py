"""Mouth-opening figures: correlation at the best lag, amplitude ratio, speaking spread."""

import numpy as np
import pytest

from syncanim.metrics.mouth import (
    amplitude_ratio,
    opening_correlation,
    speaking_spread,
    speech_frames,
    voiced_correlation,
)


@pytest.fixture
def truth():
    rng = np.random.default_rng(0)
    x = np.convolve(rng.standard_normal(400), np.ones(4) / 4, mode="same")  # a mouth opening and closing
    return 0.04 + 0.02 * x


def test_truth_against_itself_scores_one(truth):
    assert opening_correlation(truth, truth) == pytest.approx((1.0, 0))
    assert amplitude_ratio(truth, truth) == pytest.approx(1.0)


def test_frozen_mouth_scores_zero(truth):
    frozen = np.full_like(truth, 0.03)
    c, _ = opening_correlation(frozen, truth)
    assert c == pytest.approx(0.0)
    assert amplitude_ratio(frozen, truth) == pytest.approx(0.0)


@pytest.mark.parametrize("shift", [3, -2])
def test_a_shifted_copy_is_found_at_its_lag(truth, shift):
    late = np.roll(truth, shift)  # late[k] = truth[k - shift]: the evaluated mouth moves `shift` frames later
    c, lag = opening_correlation(late, truth, max_lag=3)
    assert lag == shift and c > 0.98
    assert opening_correlation(np.roll(truth, 5), truth, max_lag=3)[0] < 0.9  # out of the searched range


def test_voiced_correlation_leaves_the_pauses_out(truth):
    voiced = np.ones(len(truth), bool)
    voiced[100:200] = False
    # right where there is voice, a mouth shut in the pauses where the real one rested open
    evaluated = np.where(voiced, truth, 0.0)
    assert opening_correlation(evaluated, truth)[0] < 0.8
    assert voiced_correlation(evaluated, truth, voiced) == pytest.approx(1.0)
    # at the lag given: a copy 3 frames late scores 1 there and less at lag 0
    late = np.roll(evaluated, 3)
    assert voiced_correlation(late, truth, voiced, 3) == pytest.approx(1.0)
    assert voiced_correlation(late, truth, voiced, 0) < 0.9
    assert np.isnan(voiced_correlation(truth, truth, np.zeros(len(truth), bool)))


def test_missing_frames_are_left_out(truth):
    gappy = truth.copy()
    gappy[10:20] = np.nan
    assert opening_correlation(gappy, truth)[0] == pytest.approx(1.0)
    assert amplitude_ratio(gappy * 2, truth) == pytest.approx(2.0, rel=0.05)
    none = np.full_like(truth, np.nan)  # no face in any frame: not measured, not a frozen mouth's 0
    corr, lag = opening_correlation(none, truth)
    assert np.isnan(corr) and lag == 0


def test_speaking_spread_counts_speech_frames_only():
    rms = np.r_[np.full(50, 1e-5), np.full(50, 0.1)]
    speech = speech_frames(rms)
    assert not speech[:50].any() and speech[50:].all()
    opening = np.r_[np.full(50, 0.5), 0.03 + 0.01 * np.sign(np.sin(np.arange(50)))]
    assert speaking_spread(opening, speech) == pytest.approx(np.std(opening[50:]))
    assert np.isnan(speaking_spread(opening, np.zeros(100, bool)))
