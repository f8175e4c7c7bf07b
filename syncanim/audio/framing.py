"""Aligning a feature sequence at its own rate to video frames: pure functions of arrays and scalars.

Conventions shared by every function here:

- Video frame ``k`` at ``fps`` covers audio time ``[k / fps, (k + 1) / fps)``. It is described by
  ``P`` (``per_frame``) sub-steps whose centres are at ``(k + (i + 0.5) / P) / fps``, ``i = 0 .. P-1``.
- A backend's native sequence has rate ``rate`` (vectors per second); element ``j`` describes the
  audio around time ``offset_s + j / rate`` (its centre). ``offset_s`` depends on how the backend
  frames the waveform (e.g. half an analysis window).
- Values between native elements are linearly interpolated in time; positions before the first or
  after the last element take the edge value.
"""

from __future__ import annotations

import math

import numpy as np

# Positions this close to an integer are snapped to it, so a sub-step that falls on a native
# element (e.g. 25 fps x 4 sub-steps on a 100 Hz sequence) reads that element exactly instead of
# a 1e-13 blend with its neighbour.
_SNAP = 1e-6


def num_frames_for(duration_s: float, fps: float) -> int:
    """Video frames needed to cover ``duration_s`` seconds at ``fps``: ``ceil(duration_s * fps)``.

    A product within 1e-6 of an integer counts as that integer (2.0 s at 25 fps is 50 frames, not 51).
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if duration_s < 0:
        raise ValueError(f"duration must be >= 0, got {duration_s}")
    return max(0, math.ceil(duration_s * fps - _SNAP))


def substep_times(start_frame: int, stop_frame: int, fps: float, per_frame: int) -> np.ndarray:
    """Centre times (s) of the sub-steps of frames ``start_frame <= k < stop_frame``.

    Returns ``[(stop_frame - start_frame) * P] float64``, frame-major: element ``(k - start) * P + i``
    is ``(k + (i + 0.5) / P) / fps``.
    """
    if per_frame < 1:
        raise ValueError(f"per_frame must be >= 1, got {per_frame}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    n = max(0, stop_frame - start_frame)
    steps = np.arange(n * per_frame, dtype=np.float64) + start_frame * per_frame + 0.5  # [N*P]
    return steps / (fps * per_frame)


def native_positions(times: np.ndarray, rate: float, offset_s: float = 0.0) -> np.ndarray:
    """Fractional indices into a native sequence (element ``j`` centred at ``offset_s + j / rate``).

    ``times: [M] float`` seconds -> ``[M] float64``; values within 1e-6 of an integer are snapped to it.
    """
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    pos = (np.asarray(times, dtype=np.float64) - offset_s) * rate  # [M]
    near = np.round(pos)
    return np.where(np.abs(pos - near) < _SNAP, near, pos)


def native_span(
    start_frame: int, stop_frame: int, fps: float, per_frame: int, rate: float, offset_s: float = 0.0
) -> tuple[int, int]:
    """The native elements ``[j0, j1)`` that interpolation reads for frames ``[start_frame, stop_frame)``.

    ``j0`` may be negative and ``j1`` may exceed the sequence length; callers clamp or pad.
    Returns ``(0, 0)`` for an empty frame range.
    """
    if stop_frame <= start_frame:
        return 0, 0
    pos = native_positions(substep_times(start_frame, stop_frame, fps, per_frame), rate, offset_s)
    return int(np.floor(pos[0])), int(np.ceil(pos[-1])) + 1


def interpolate_rows(seq: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``seq: [T, F]`` at fractional row ``positions: [M]`` -> ``[M, F]``.

    Positions outside ``[0, T - 1]`` take the edge row. The result has ``seq``'s dtype.
    """
    if seq.ndim != 2:
        raise ValueError(f"seq must be [T, F], got shape {seq.shape}")
    if seq.shape[0] == 0:
        raise ValueError("seq has no rows to interpolate")
    pos = np.clip(np.asarray(positions, dtype=np.float64), 0.0, seq.shape[0] - 1)  # [M]
    lo = np.floor(pos).astype(np.int64)  # [M]
    hi = np.minimum(lo + 1, seq.shape[0] - 1)  # [M]
    w = (pos - lo).astype(seq.dtype)[:, None]  # [M, 1]
    return seq[lo] * (1 - w) + seq[hi] * w


def align_to_frames(
    seq: np.ndarray,
    rate: float,
    fps: float,
    per_frame: int,
    start_frame: int,
    stop_frame: int,
    offset_s: float = 0.0,
) -> np.ndarray:
    """Resample a native sequence to per-frame blocks for frames ``[start_frame, stop_frame)``.

    ``seq: [T, F]``; row ``j`` is centred at ``offset_s + j / rate`` seconds (``offset_s`` may be the
    time of a window's first row when ``seq`` is a slice of a longer sequence).
    Returns ``[stop_frame - start_frame, per_frame, F]`` in ``seq``'s dtype; sub-step ``i`` of frame
    ``k`` is ``seq`` interpolated at ``(k + (i + 0.5) / per_frame) / fps``, edge rows beyond the ends.
    """
    n = max(0, stop_frame - start_frame)
    times = substep_times(start_frame, stop_frame, fps, per_frame)  # [N*P]
    rows = interpolate_rows(seq, native_positions(times, rate, offset_s))  # [N*P, F]
    return rows.reshape(n, per_frame, seq.shape[1])


def frame_rms(samples: np.ndarray, sample_rate: int, fps: float, first_frame: int, num_frames: int) -> np.ndarray:
    """RMS of ``samples: [T] float`` over one frame's duration centred on each frame's time.

    Frame ``k`` (for ``k = first_frame .. first_frame + num_frames - 1``; ``first_frame`` may be
    negative) covers samples ``[round((k - 0.5) / fps * rate), round((k + 0.5) / fps * rate))``;
    samples outside ``[0, T)`` are zeros. Returns ``[num_frames] float64``.
    """
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"frame_rms: samples must be [T], got {x.shape}")
    if num_frames < 0 or fps <= 0 or sample_rate <= 0:
        raise ValueError(f"frame_rms: bad num_frames={num_frames}, fps={fps} or sample_rate={sample_rate}")
    k = np.arange(first_frame, first_frame + num_frames, dtype=np.float64)  # [F]
    a = np.round((k - 0.5) / fps * sample_rate).astype(np.int64)  # [F]
    b = np.round((k + 0.5) / fps * sample_rate).astype(np.int64)
    c = np.concatenate([[0.0], np.cumsum(x * x)])  # [T + 1]
    a_in = np.clip(a, 0, len(x))
    b_in = np.clip(b, 0, len(x))
    energy = c[b_in] - c[a_in]  # [F]
    return np.sqrt(energy / np.maximum(b - a, 1))
