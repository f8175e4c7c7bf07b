"""Causal motion filters: the AR(2) fit recovers a known process; the low-pass is smooth and unbiased."""

import numpy as np
import pytest

from syncanim.motion.filters import ar2_run, fit_ar2, lowpass, lowpass_alpha


def test_ar2_fit_recovers_a_known_process_with_unit_variance():
    rng = np.random.default_rng(0)
    coef = np.array([[1.6, -0.7], [0.5, 0.0]])
    x = np.zeros((20000, 2))
    for t in range(2, len(x)):
        x[t] = coef[:, 0] * x[t - 1] + coef[:, 1] * x[t - 2] + rng.standard_normal(2)
    fit, noise = fit_ar2(x * [3.0, 0.2])  # the scale of a channel does not change its dynamics
    np.testing.assert_allclose(fit, coef, atol=0.03)
    y = ar2_run(rng.standard_normal((40000, 2)), fit, noise)
    np.testing.assert_allclose(y[1000:].std(0), 1.0, atol=0.08)  # normalised: unit stationary variance


def test_ar2_falls_back_to_a_stable_process():
    walk = np.cumsum(np.random.default_rng(1).standard_normal((500, 1)), 0)  # a random walk: a unit root
    coef, noise = fit_ar2(np.concatenate([walk, np.zeros((500, 1))], 1))
    roots = np.abs(np.roots([1.0, -coef[0, 0], -coef[0, 1]]))
    assert np.all(roots < 1.0) and noise[0] > 0
    assert coef[1].tolist() == [0.0, 0.0] and noise[1] == 1.0  # a still channel stays still
    with pytest.raises(ValueError):
        fit_ar2(np.zeros((3, 2)))


def test_lowpass_is_smooth_causal_and_keeps_the_level():
    alpha = lowpass_alpha(25.0, 2.5)
    step = np.concatenate([np.zeros(50), np.ones(100)])[:, None]
    y = lowpass(step, alpha)[:, 0]
    assert np.all(y[:50] == 0)  # causal: nothing before the step
    assert np.all(np.diff(y) >= -1e-12) and y.max() <= 1.0  # critically damped: no overshoot
    assert y[-1] == pytest.approx(1.0, abs=1e-6)
    noise = np.random.default_rng(0).standard_normal((2000, 1))
    smooth = lowpass(noise, alpha)
    # two stages of alpha ~0.47 (2.5 Hz at 25 fps) cut the second difference of white noise to ~alpha^2
    assert np.abs(np.diff(smooth, 2, axis=0)).mean() < 0.2 * np.abs(np.diff(noise, 2, axis=0)).mean()
