"""Does the mouth follow the speech? Figures on the mouth-opening series (pure functions, numpy in and out).

The opening of a frame is :func:`syncanim.face.mouth.mouth_opening` (inner-lip gap over eye-corner
distance, on MediaPipe FaceMesh landmarks). Against a ground truth (held-out frames of the subject):

- **correlation** and **lag**: the Pearson correlation of the evaluated opening with the true one,
  at the lag ``l`` in ``[-max_lag, max_lag]`` where it is highest; ``l > 0`` means the evaluated mouth
  moves ``l`` frames after the true one. A frozen mouth scores 0, the truth against itself 1.
- **amplitude ratio**: standard deviation of the evaluated opening over that of the true one, on
  the same frames: 0 for a frozen mouth, 1 when it moves as much as the real one.

The **voiced correlation** is the same correlation over the frames with voice alone, at the lag found on all of them
(:func:`voiced_correlation`): in a pause a speaker's mouth may rest shut or stay open, which the speech does not tell,
so it separates how well the mouth follows the voice from how often the clip pauses.

Without a ground truth (new speech), the **spread ratio**: the standard deviation of the opening over
the frames with speech, divided by the subject's own spread while speaking in their training footage
(:func:`speaking_spread`).
"""

from __future__ import annotations

import numpy as np


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"need two series [N] of one length, got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    den = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 1e-12 else 0.0


def opening_correlation(evaluated: np.ndarray, truth: np.ndarray, max_lag: int = 3) -> tuple[float, int]:
    """Best correlation over lags and its lag (module doc). evaluated, truth: ``[N]`` (NaN: no face;
    such frames are left out at each lag). Returns ``(correlation, lag)``; ``(nan, 0)`` when fewer than
    three frames overlap at every lag (no face found: not measured, unlike a frozen mouth's 0)."""
    e, t = np.asarray(evaluated, np.float64), np.asarray(truth, np.float64)
    if e.ndim != 1 or e.shape != t.shape:
        raise ValueError(f"need two series [N] of one length, got {e.shape} and {t.shape}")
    best = (-np.inf, 0)
    for lag in range(-max_lag, max_lag + 1):
        # lag l > 0: evaluated[k + l] goes with truth[k]
        x, y = (e[lag:], t[:len(t) - lag]) if lag >= 0 else (e[:lag], t[-lag:])
        x, y = _pair(x, y)
        if len(x) < 3:
            continue
        c = _pearson(x, y)
        if c > best[0] or (c == best[0] and abs(lag) < abs(best[1])):
            best = (c, lag)
    return (float("nan"), 0) if best[0] == -np.inf else (float(best[0]), int(best[1]))


def voiced_correlation(evaluated: np.ndarray, truth: np.ndarray, voiced: np.ndarray, lag: int = 0) -> float:
    """Pearson correlation of ``evaluated[k + lag]`` with ``truth[k]`` over the frames ``k`` where ``voiced [N]
    bool`` holds (and both are finite); NaN when fewer than three such frames."""
    e, t, v = np.asarray(evaluated, np.float64), np.asarray(truth, np.float64), np.asarray(voiced, bool)
    if e.ndim != 1 or e.shape != t.shape or v.shape != t.shape:
        raise ValueError(f"need three series [N] of one length, got {e.shape}, {t.shape} and {v.shape}")
    n = len(t)
    k = np.arange(max(0, -lag), min(n, n - lag))
    k = k[v[k]]
    x, y = _pair(e[k + lag], t[k])
    return _pearson(x, y) if len(x) >= 3 else float("nan")


def amplitude_ratio(evaluated: np.ndarray, truth: np.ndarray) -> float:
    """std(evaluated) / std(truth) over the frames finite in both; NaN when the truth does not move."""
    x, y = _pair(evaluated, truth)
    sd = float(y.std()) if len(y) else 0.0
    return float(x.std()) / sd if sd > 1e-12 else float("nan")


#: frames this many dB or more below a clip's loud level are pauses (:func:`voiced_correlation`); speech, with the
#: short gaps between its words, is ``speech_frames``' 30 dB
PAUSE_DB = 20.0


def speech_frames(rms: np.ndarray, speech_db: float = 30.0) -> np.ndarray:
    """Frames whose loudness ``rms: [N]`` is within ``speech_db`` of the clip's loud level (its 95th
    percentile), as the sync score counts speech: ``[N] bool``."""
    r = np.asarray(rms, np.float64)
    loud = float(np.percentile(r, 95)) if len(r) else 0.0
    return r > loud * 10 ** (-speech_db / 20) if loud > 0 else np.zeros(len(r), bool)


def speaking_spread(opening: np.ndarray, speech: np.ndarray) -> float:
    """Standard deviation of the opening ``[N]`` over the speech frames ``[N] bool`` with a face
    (NaN when fewer than two)."""
    o = np.asarray(opening, np.float64)[np.asarray(speech, bool)]
    o = o[np.isfinite(o)]
    return float(o.std()) if len(o) >= 2 else float("nan")
