"""An audio-visual sync score that needs no learned weights: mouth opening against speech loudness.

Definition, per video frame ``k = 0 .. N-1`` of a clip at ``fps`` (see docs/eval.md for what it is not):

1. **Mouth opening** ``m[k]``: the 3-D distance between the inner-lip landmarks 13 and 14 over the
   distance between the outer eye corners 33 and 263 of MediaPipe FaceMesh
   (:func:`syncanim.face.mouth.mouth_opening`). NaN where no face was found; gaps are filled by
   linear interpolation, and windows with more than ``max_missing`` of their frames filled are skipped.
2. **Speech loudness** ``r[k]``: RMS of the 16 kHz mono audio over ``[(k - 1/2) / fps, (k + 1/2) / fps)``
   (one frame's duration centred on the frame's time ``k / fps``); samples outside the track count as
   silence. ``loud`` = 95th percentile of ``r`` over the clip; the envelope is
   ``e[k] = ln(max(r[k], loud * 10^(-floor_db / 20)))`` (log-compressed, floored ``floor_db`` below loud).
   Frame ``k`` is *speech* when ``r[k] > loud * 10^(-speech_db / 20)``.
3. **Trend removal**: each series minus its Gaussian-smoothed self (standard deviation
   ``highpass_s * fps`` frames), which removes slow drifts (head turning, changing loudness).
4. **Windows** of ``W = round(window_s * fps)`` frames every ``round(hop_s * fps)`` frames. A window is
   used when at least ``min_speech`` of its frames are speech and at most ``max_missing`` of its mouth
   values were interpolated.
5. For each used window starting at ``s`` and each lag ``l`` in ``[-L, L]`` (``L = max_lag``):
   ``c[s, l]`` = Pearson correlation of ``m[s : s+W]`` with ``e[s-l : s-l+W]``. The envelope is computed
   for frames ``-L .. N+L-1``, so every lag of every window has audio (silence beyond the track).
6. ``C(l)`` = mean of ``c[s, l]`` over the used windows. **offset** = the lag of the peak of ``C``;
   **confidence** = ``C(offset)`` (a correlation in [-1, 1]); **contrast** = ``C(offset) - median_l C(l)``.

**Sign convention** (the one syncnet_python's "AV offset" uses): ``offset > 0`` means the video lags the
audio -- the mouth moves ``offset`` frames after the sound that goes with it. An audio track delayed
by 200 ms against a 25 fps video (the sound comes late) gives ``offset = -5``. To fix a clip with
offset ``d``, delay its audio by ``d`` frames (advance it when ``d`` is negative).

All functions here are pure (numpy in, numpy out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..audio.framing import frame_rms  # noqa: F401  (re-exported: the sync score frames audio this way)
from ..face.mouth import mouth_opening  # noqa: F401  (step 1 of the definition; re-exported)


@dataclass(frozen=True)
class SyncSignals:
    """The two series the score correlates, trend removed. N frames of the clip.

    mouth: ``[N] float64`` (interpolated across faceless frames); envelope: ``[N + 2L] float64`` for
    frames ``-L .. N+L-1``; speech: ``[N + 2L] bool``; missing: ``[N] bool`` (no face).
    """

    mouth: np.ndarray
    envelope: np.ndarray
    speech: np.ndarray
    missing: np.ndarray
    max_lag: int


@dataclass(frozen=True)
class SyncResult:
    """The sync score of a clip (module doc). Figures are None when no window could be used (``note`` says why).

    ``lags`` / ``mean_correlation``: ``C(l)`` for ``l = -L .. L``. ``window_*``: one entry per used
    window (its centre time in seconds from the first frame, its own peak lag and peak correlation).
    """

    offset_frames: int | None
    offset_s: float | None
    offset_subframe: float | None  # vertex of the parabola through the peak of C and its neighbours
    confidence: float | None
    contrast: float | None
    windows_used: int
    windows_total: int
    fps: float
    lags: list[int] = field(default_factory=list)
    mean_correlation: list[float] = field(default_factory=list)
    window_times_s: list[float] = field(default_factory=list)
    window_offsets: list[int] = field(default_factory=list)
    window_peaks: list[float] = field(default_factory=list)
    note: str | None = None


# --- the two signals ------------------------------------------------------------------------------


def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """``x: [N] float`` smoothed by a Gaussian of std ``sigma`` samples (reflected ends) -> ``[N] float64``."""
    v = np.asarray(x, dtype=np.float64)
    if sigma <= 0 or len(v) < 2:
        return v.copy()
    half = min(int(math.ceil(3 * sigma)), len(v) - 1)
    taps = np.arange(-half, half + 1)
    g = np.exp(-0.5 * (taps / sigma) ** 2)
    g /= g.sum()
    padded = np.pad(v, half, mode="reflect")
    return np.convolve(padded, g, mode="valid")


def fill_missing(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation over NaN entries of ``x: [N]`` (the ends hold the nearest value).

    Returns ``(filled [N] float64, missing [N] bool)``; all-NaN input gives zeros.
    """
    v = np.asarray(x, dtype=np.float64)
    missing = ~np.isfinite(v)
    if missing.all():
        return np.zeros_like(v), missing
    if not missing.any():
        return v.copy(), missing
    idx = np.arange(len(v))
    return np.interp(idx, idx[~missing], v[~missing]), missing


def sync_signals(mouth: np.ndarray, rms: np.ndarray, fps: float, *, max_lag: int = 10, highpass_s: float = 0.5,
                 floor_db: float = 40.0, speech_db: float = 30.0) -> SyncSignals:
    """Steps 1-3 of the module doc. ``mouth: [N]`` (NaN: no face), ``rms: [N + 2 max_lag]`` for frames
    ``-max_lag .. N+max_lag-1`` (from :func:`frame_rms`)."""
    m = np.asarray(mouth, dtype=np.float64)
    r = np.asarray(rms, dtype=np.float64)
    if m.ndim != 1 or r.shape != (len(m) + 2 * max_lag,):
        raise ValueError(f"sync_signals: need mouth [N] and rms [N + 2 * {max_lag}], got {m.shape} and {r.shape}")
    filled, missing = fill_missing(m)
    sigma = highpass_s * fps
    mouth_hp = filled - gaussian_smooth(filled, sigma)  # [N]
    loud = float(np.percentile(r, 95)) if len(r) else 0.0
    if loud <= 0:
        envelope = np.zeros_like(r)
        speech = np.zeros(len(r), bool)
    else:
        env = np.log(np.maximum(r, loud * 10 ** (-floor_db / 20)))  # [N + 2L]
        envelope = env - gaussian_smooth(env, sigma)
        speech = r > loud * 10 ** (-speech_db / 20)
    return SyncSignals(mouth_hp, envelope, speech, missing, max_lag)


# --- correlation ----------------------------------------------------------------------------------


def _zscore(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x - x.mean(axis, keepdims=True)
    sd = x.std(axis, keepdims=True)
    return np.where(sd > 1e-12, x / np.maximum(sd, 1e-12), 0.0)


def window_starts(num_frames: int, window: int, hop: int) -> np.ndarray:
    """Start frames of the windows of ``window`` frames every ``hop`` frames that fit in ``num_frames``
    (the last one is moved to end exactly at the last frame). -> ``[M] int64`` (empty if none fits)."""
    if window > num_frames or window < 2:
        return np.zeros(0, np.int64)
    starts = list(range(0, num_frames - window + 1, max(1, hop)))
    if starts[-1] != num_frames - window:
        starts.append(num_frames - window)
    return np.array(starts, np.int64)


def lagged_correlations(video: np.ndarray, audio: np.ndarray, starts: np.ndarray, window: int,
                        max_lag: int) -> np.ndarray:
    """Pearson correlation of ``video[s : s+W]`` with ``audio`` shifted by each lag.

    video: ``[N]``; audio: ``[N + 2L]`` holding frames ``-L .. N+L-1`` (so video frame ``k`` lines up
    with ``audio[k + L]``); starts: ``[M]``. Returns ``[M, 2L + 1]``: column ``j`` is lag
    ``l = j - L``, the correlation of ``video[s + i]`` with the audio of frame ``s + i - l``.
    A constant segment correlates 0 with anything.
    """
    v = np.asarray(video, dtype=np.float64)
    a = np.asarray(audio, dtype=np.float64)
    if a.shape != (len(v) + 2 * max_lag,):
        raise ValueError(f"lagged_correlations: audio must be [N + 2L] = [{len(v) + 2 * max_lag}], got {a.shape}")
    if len(starts) == 0:
        return np.zeros((0, 2 * max_lag + 1))
    i = np.arange(window)
    vs = _zscore(v[starts[:, None] + i[None, :]])  # [M, W]
    lags = np.arange(-max_lag, max_lag + 1)  # [2L+1]
    idx = starts[:, None, None] - lags[None, :, None] + i[None, None, :] + max_lag  # [M, 2L+1, W]
    au = _zscore(a[idx])  # [M, 2L+1, W]
    return np.einsum("mw,mlw->ml", vs, au) / window


def _parabola_vertex(curve: np.ndarray, j: int) -> float:
    """Sub-sample position of the peak of ``curve: [K]`` at index ``j`` (its own index at the edges)."""
    if j <= 0 or j >= len(curve) - 1:
        return float(j)
    y0, y1, y2 = curve[j - 1], curve[j], curve[j + 1]
    den = y0 - 2 * y1 + y2
    if den >= 0:
        return float(j)
    return float(j + 0.5 * (y0 - y2) / den)


def sync_score(mouth: np.ndarray, rms: np.ndarray, fps: float, *, window_s: float = 2.0, hop_s: float = 0.5,
               max_lag: int = 10, highpass_s: float = 0.5, floor_db: float = 40.0, speech_db: float = 30.0,
               min_speech: float = 0.25, max_missing: float = 0.1) -> SyncResult:
    """The sync score of one clip (module doc).

    mouth: ``[N] float`` mouth opening per frame (NaN: no face), from :func:`mouth_opening`;
    rms: ``[N + 2 max_lag] float`` loudness of frames ``-max_lag .. N+max_lag-1``, from
    :func:`frame_rms` with ``first_frame = -max_lag`` (relative to the clip's first frame).
    """
    n = len(mouth)
    window = int(round(window_s * fps))
    hop = max(1, int(round(hop_s * fps)))

    def empty(note: str, total: int = 0) -> SyncResult:
        return SyncResult(None, None, None, None, None, 0, total, fps, note=note)

    if n < window:
        return empty(f"the clip ({n} frames) is shorter than one {window_s:g} s sync window ({window} frames)")
    sig = sync_signals(mouth, rms, fps, max_lag=max_lag, highpass_s=highpass_s, floor_db=floor_db,
                       speech_db=speech_db)
    starts = window_starts(n, window, hop)  # [M]
    if sig.missing.all():
        return empty("no frame has a face", len(starts))
    i = np.arange(window)
    speech_share = sig.speech[starts[:, None] + i[None, :] + max_lag].mean(1)  # [M]
    missing_share = sig.missing[starts[:, None] + i[None, :]].mean(1)  # [M]
    used = starts[(speech_share >= min_speech) & (missing_share <= max_missing)]
    if len(used) == 0:
        why = "speech" if (missing_share <= max_missing).any() else "a face in enough frames"
        return empty(f"no {window_s:g} s window has {why}", len(starts))
    corr = lagged_correlations(sig.mouth, sig.envelope, used, window, max_lag)  # [M', 2L+1]
    mean = corr.mean(0)  # [2L+1]
    j = int(np.argmax(mean))
    offset = j - max_lag
    sub = _parabola_vertex(mean, j) - max_lag
    return SyncResult(
        offset_frames=offset,
        offset_s=offset / fps,
        offset_subframe=float(sub),
        confidence=float(mean[j]),
        contrast=float(mean[j] - np.median(mean)),
        windows_used=len(used),
        windows_total=len(starts),
        fps=fps,
        lags=list(range(-max_lag, max_lag + 1)),
        mean_correlation=[float(c) for c in mean],
        window_times_s=[float((s + window / 2) / fps) for s in used],
        window_offsets=[int(k) - max_lag for k in np.argmax(corr, 1)],
        window_peaks=[float(c) for c in corr.max(1)],
    )
