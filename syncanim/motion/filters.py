"""Small causal filters for motion signals (pure functions and their one-step forms).

- :func:`fit_ar2`: Yule-Walker fit of a second-order autoregression ``x[t] = a1 x[t-1] + a2 x[t-2] + s e[t]``
  to each column of a signal, normalised so the process has unit stationary variance.
- :func:`lowpass_alpha` / :func:`lowpass`: a critically damped second-order low-pass (two identical
  one-pole stages), smooth by construction: its step response has no overshoot and its output's
  second difference is bounded by the input's range times ``alpha**2``.
"""

from __future__ import annotations

import math

import numpy as np


def fit_ar2(x: np.ndarray, max_root: float = 0.995) -> tuple[np.ndarray, np.ndarray]:
    """Per-column AR(2) coefficients of ``x: [T, D]`` (each column centred first) -> ``(coef [D, 2], noise [D])``.

    ``noise`` is the innovation std that gives the process unit stationary variance. A column whose
    fit is not stationary (or has no variance) falls back to AR(1) with its lag-1 correlation clipped
    to ``[0, max_root]``.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) < 4:
        raise ValueError(f"fit_ar2: need x [T >= 4, D], got {x.shape}")
    x = x - x.mean(0)
    coef = np.zeros((x.shape[1], 2))
    noise = np.ones(x.shape[1])
    for d in range(x.shape[1]):
        c = x[:, d]
        r0 = float(c @ c) / len(c)
        if r0 <= 1e-12:
            continue
        p1 = float(c[1:] @ c[:-1]) / len(c) / r0
        p2 = float(c[2:] @ c[:-2]) / len(c) / r0
        den = 1 - p1 * p1
        a1, a2 = (p1 * (1 - p2) / den, (p2 - p1 * p1) / den) if den > 1e-9 else (p1, 0.0)
        roots = np.abs(np.roots([1.0, -a1, -a2])) if abs(a2) > 0 else np.array([abs(a1)])
        if not np.all(roots < max_root):
            a1, a2 = float(np.clip(p1, 0.0, max_root)), 0.0
        # unit stationary variance: var(e) = 1 - a1 rho1 - a2 rho2 with rho from the fitted process
        rho1 = a1 / (1 - a2)
        rho2 = a1 * rho1 + a2
        coef[d] = a1, a2
        noise[d] = math.sqrt(max(1e-6, 1 - a1 * rho1 - a2 * rho2))
    return coef, noise


def ar2_run(innovations: np.ndarray, coef: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """The AR(2) process of :func:`fit_ar2` driven by ``innovations: [T, D]`` (zero state at the start) -> ``[T, D]``."""
    e = np.asarray(innovations, np.float64)
    out = np.zeros_like(e)
    p1 = np.zeros(e.shape[1])
    p2 = np.zeros(e.shape[1])
    for t in range(len(e)):
        p1, p2 = coef[:, 0] * p1 + coef[:, 1] * p2 + noise * e[t], p1
        out[t] = p1
    return out


def lowpass_alpha(fps: float, cutoff_hz: float) -> float:
    """Per-frame smoothing factor of one stage of the critically damped low-pass at ``cutoff_hz``."""
    if fps <= 0 or cutoff_hz <= 0:
        raise ValueError(f"lowpass_alpha: fps and cutoff_hz must be > 0, got {fps}, {cutoff_hz}")
    return 1.0 - math.exp(-2 * math.pi * cutoff_hz / fps)


def lowpass(x: np.ndarray, alpha: float) -> np.ndarray:
    """Two one-pole stages over ``x: [T, D]``, both started at ``x[0]`` (no transient) -> ``[T, D]`` float64."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    if len(x) == 0:
        return out
    s1 = x[0].copy()
    s2 = x[0].copy()
    for t in range(len(x)):
        s1 += alpha * (x[t] - s1)
        s2 += alpha * (s1 - s2)
        out[t] = s2
    return out
