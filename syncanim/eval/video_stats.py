"""No-reference figures of one clip (any generated or real video): blinks, head motion, lip sync.

- **Landmarks**: MediaPipe FaceMesh in video (tracking) mode, 478 points per frame
  (:class:`syncanim.face.landmarks.FaceMeshTracker`), NaN rows where no face was found.
- **Blinks**: each eye's eye aspect ratio (EAR, :func:`syncanim.face.eyes.eye_aspect_ratio`)
  is turned into a closure ``1 - EAR / EAR_open``, with ``EAR_open`` that eye's ``open_percentile``
  percentile over the clip's faces (calibrated per clip, so the eye's shape does not matter). The
  mean closure of the two eyes goes through a hysteresis detector: an event starts when it reaches
  ``close_ratio`` while each eye's closure is at least ``open_ratio`` (both eyes close, not a wink or a
  glitch of one eye), and ends at the first frame below ``open_ratio`` or without a face. Events
  shorter than ``min_duration_s`` or longer than ``max_duration_s`` (eyes held shut, a tracking
  failure) are dropped. The blink's frame is the closure-weighted mean frame of the event, rounded.
  Blink rate = blinks / clip duration in minutes.
- **Head motion**: head rotation per frame from the same bundle-adjustment tracker prep uses
  (:class:`syncanim.face.headpose.LandmarkBATracker`: subject-specific rigid shape, focal estimated),
  with its temporal smoothing off so the figures see the video's own frame-to-frame motion. Angles
  ``R = Rz(roll) Ry(yaw) Rx(pitch)`` (:func:`syncanim.geometry.matrix_to_euler`), in degrees, camera
  axes x right, y down, z forward. Amplitude = standard deviation of each angle over the frames with
  a face; jitter = RMS over frames of the second difference ``a[k+1] - 2 a[k] + a[k-1]``
  (degrees / frame^2) where all three frames have a face. The totals combine the axes:
  ``sqrt(sum of variances)`` and ``sqrt(mean over frames of the summed squared accelerations)``.
  Landmark noise puts a floor under jitter: a perfectly smooth video still measures about
  0.5-1 degree / frame^2 (per axis) at 512 px, so compare jitter with a reference video's, not with 0.
- **Sync**: :mod:`syncanim.eval.sync` on the tracked landmarks and the clip's audio.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..audio.waveform import Waveform
from ..config import BlinkConfig, SyncConfig
from ..console import ProgressFn, no_progress
from ..errors import DataError
from ..face.eyes import LEFT_EYE, RIGHT_EYE, eye_aspect_ratio
from ..face.mouth import mouth_opening
from ..metrics.mouth import speaking_spread, speech_frames
from .sync import SyncResult, SyncSignals, frame_rms, sync_score, sync_signals

log = logging.getLogger(__name__)

#: A re-iterable source of frames: each call yields the clip's ``[H, W, 3] uint8`` RGB frames in order.
FrameSource = Callable[[], Iterator[np.ndarray]]


# --- landmarks --------------------------------------------------------------------------------------


def track_landmarks(frames: Iterable[np.ndarray], progress: ProgressFn = no_progress,
                    stage: str = "landmarks", total: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """FaceMesh (tracking mode) over ``frames`` (``[H, W, 3] uint8`` RGB each); ``total``: how many there
    are, when known (the progress bar's length).

    Returns ``(points [N, 478, 3] float32`` (x, y pixels; z = MediaPipe depth times the width; NaN rows
    where no face), ``found [N] bool)``.
    """
    from ..face.landmarks import NUM_LANDMARKS, FaceMeshConfig, FaceMeshTracker
    from ..mp_runtime import silenced_stderr

    tracker = FaceMeshTracker(FaceMeshConfig())
    rows: list[np.ndarray] = []
    try:
        for i, rgb in enumerate(frames):
            if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                raise DataError(f"frame {i}: expected [H, W, 3] uint8 RGB, got {rgb.shape} {rgb.dtype}")
            if i == 0:  # the graph prints its start-up notices from its own threads until the first frame is out
                with silenced_stderr():
                    tracker.start()
                    pts, _ = tracker.track(np.ascontiguousarray(rgb))
            else:
                pts, _ = tracker.track(np.ascontiguousarray(rgb))
            rows.append(pts if pts is not None else np.full((NUM_LANDMARKS, 3), np.nan, np.float32))
            progress(stage, i + 1, max(total, i + 1) if total else None)
    finally:
        with silenced_stderr():
            tracker.close()
    if not rows:
        return np.zeros((0, NUM_LANDMARKS, 3), np.float32), np.zeros(0, bool)
    points = np.stack(rows).astype(np.float32)
    return points, ~np.isnan(points).any((1, 2))


# --- blinks -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlinkStats:
    """Blinks of a clip: ``frames`` (one per blink), each blink's ``[start, end)`` frames, the rate."""

    count: int
    rate_per_min: float
    frames: list[int]
    spans: list[list[int]]
    duration_s: float


def eye_closure(points: np.ndarray, found: np.ndarray, open_percentile: float) -> np.ndarray:
    """Closure ``1 - EAR / EAR_open`` of each eye. ``points: [N, 478, 3]``, ``found: [N] bool`` ->
    ``[N, 2] float64`` (subject's left, right; NaN where no face). ``EAR_open`` per eye is the
    ``open_percentile`` percentile of its EAR over the frames with a face."""
    p = np.asarray(points, dtype=np.float64)
    out = np.full((len(p), 2), np.nan)
    if not found.any():
        return out
    for col, eye in enumerate((LEFT_EYE, RIGHT_EYE)):
        ear = eye_aspect_ratio(p[found], eye)  # [F]
        ref = float(np.percentile(ear, open_percentile))
        if ref > 0:
            out[found, col] = 1.0 - ear / ref
    return out


def detect_blinks(closure: np.ndarray, fps: float, *, close_ratio: float = 0.35, open_ratio: float = 0.15,
                  min_duration_s: float = 0.03, max_duration_s: float = 0.8) -> list[tuple[int, int, int]]:
    """Hysteresis blink detector on ``closure: [N, 2]`` (both eyes; NaN: no face), see module doc.

    Returns ``[(start, end, frame)]``: the event covers frames ``start .. end-1`` and ``frame`` is its
    closure-weighted mean frame.
    """
    c = np.asarray(closure, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 2:
        raise ValueError(f"detect_blinks: closure must be [N, 2], got {c.shape}")
    mean = c.mean(1)  # [N] (NaN where no face)
    both = np.nan_to_num(c, nan=-np.inf).min(1) >= open_ratio  # [N]
    min_frames = max(1, int(np.ceil(min_duration_s * fps - 1e-9)))
    max_frames = int(np.floor(max_duration_s * fps + 1e-9))
    events: list[tuple[int, int, int]] = []
    k, n = 0, len(mean)
    while k < n:
        if np.isfinite(mean[k]) and mean[k] >= close_ratio and both[k]:
            start = k
            while start > 0 and np.isfinite(mean[start - 1]) and mean[start - 1] >= open_ratio:
                start -= 1  # the closing frames before the start threshold belong to the blink
            end = k + 1
            while end < n and np.isfinite(mean[end]) and mean[end] >= open_ratio:
                end += 1
            if min_frames <= end - start <= max_frames:
                w = mean[start:end]
                frame = int(np.round(np.sum(w * np.arange(start, end)) / np.sum(w)))
                events.append((start, end, frame))
            k = end
        else:
            k += 1
    return events


def blink_stats(points: np.ndarray, found: np.ndarray, fps: float, cfg: BlinkConfig) -> BlinkStats:
    """Blinks of a clip from its tracked landmarks ``[N, 478, 3]`` and ``found [N]`` (module doc)."""
    closure = eye_closure(points, found, cfg.open_percentile)
    events = detect_blinks(closure, fps, close_ratio=cfg.close_ratio, open_ratio=cfg.open_ratio,
                           min_duration_s=cfg.min_duration_s, max_duration_s=cfg.max_duration_s)
    duration = len(points) / fps
    return BlinkStats(count=len(events), rate_per_min=len(events) / (duration / 60.0) if duration > 0 else float("nan"),
                      frames=[e[2] for e in events], spans=[[e[0], e[1]] for e in events], duration_s=duration)


# --- head motion ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeadMotion:
    """Head rotation statistics in degrees (module doc). Per-axis lists are (yaw, pitch, roll)."""

    amplitude_deg: float
    jitter_deg: float
    amplitude_axes_deg: list[float]
    jitter_axes_deg: list[float]
    frames: int


def head_angles(points: np.ndarray, found: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Head yaw, pitch, roll per frame in degrees: ``points [N, 478, 3]``, ``found [N]``, ``(W, H)`` ->
    ``[N, 3] float64`` (frames without a face hold poses interpolated by the tracker).

    Raises DataError when the tracker cannot fit (too few frames with a face).
    """
    from ..face.headpose import LandmarkBAConfig, LandmarkBATracker
    from ..geometry import matrix_to_euler

    tracker = LandmarkBATracker(LandmarkBAConfig(rotation_smoothing=0.0, translation_smoothing=0.0))
    lm = np.where(found[:, None, None], points, np.nan)
    quiet = logging.getLogger(tracker.__module__)  # its fit report is about a dataset, not this clip
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))
    try:
        track = tracker.fit(lm, found, image_size)
    finally:
        quiet.setLevel(level)
    pitch, yaw, roll = np.degrees(matrix_to_euler(track.rotation)).T  # each [N]
    return np.stack([yaw, pitch, roll], 1)


def head_motion(angles: np.ndarray, found: np.ndarray) -> HeadMotion:
    """Amplitude and jitter of ``angles: [N, 3]`` degrees over frames with ``found: [N] bool`` (module doc)."""
    a = np.asarray(angles, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3 or found.shape != (len(a),):
        raise ValueError(f"head_motion: need angles [N, 3] and found [N], got {a.shape} and {found.shape}")
    valid = a[found]
    amp = valid.std(0) if len(valid) else np.full(3, np.nan)  # [3]
    acc = a[2:] - 2 * a[1:-1] + a[:-2]  # [N-2, 3]
    ok = found[2:] & found[1:-1] & found[:-2]
    acc = acc[ok]
    jit = np.sqrt((acc**2).mean(0)) if len(acc) else np.full(3, np.nan)
    total_jit = float(np.sqrt((acc**2).sum(1).mean())) if len(acc) else float("nan")
    return HeadMotion(amplitude_deg=float(np.sqrt(np.sum(amp**2))), jitter_deg=total_jit,
                      amplitude_axes_deg=[float(v) for v in amp], jitter_axes_deg=[float(v) for v in jit],
                      frames=int(found.sum()))


# --- one clip ---------------------------------------------------------------------------------------


@dataclass
class ClipStats:
    """No-reference figures of one clip; a figure is None when it could not be measured (see ``notes``)."""

    frames: int
    fps: float
    faces_found: int
    sync: SyncResult | None = None
    blinks: BlinkStats | None = None
    head: HeadMotion | None = None
    # std of the mouth opening over the frames with speech (syncanim.metrics.mouth.speaking_spread), and
    # its ratio to the subject's own spread while speaking, where the subject is known
    mouth_spread: float | None = None
    mouth_spread_ratio: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class ClipSignals:
    """What the figures were computed from, for plots and metric plugins. N frames.

    points: ``[N, 478, 3] float32`` (NaN: no face); found: ``[N] bool``; mouth: ``[N]`` mouth opening;
    angles: ``[N, 3]`` yaw/pitch/roll degrees or None; sync: the detrended sync series or None.
    """

    points: np.ndarray
    found: np.ndarray
    mouth: np.ndarray
    angles: np.ndarray | None = None
    sync: SyncSignals | None = None


@dataclass(frozen=True)
class ClipInputs:
    """One clip as a metric plugin sees it (``syncanim.metrics`` components: ``score(clip) -> dict``).

    ``frames()`` yields the ``N`` frames ``[H, W, 3] uint8`` RGB; ``points: [N, 478, 3]`` tracked
    landmarks (NaN rows: no face); ``audio`` the speech (16 kHz mono) or None; frame ``k`` of the clip
    is at time ``(first_frame + k) / fps`` of ``audio``; ``device`` is where the run computes
    (``"cpu"``, ``"cuda"``), chosen once by the pipeline.
    """

    frames: FrameSource
    num_frames: int
    fps: float
    points: np.ndarray
    found: np.ndarray
    audio: Waveform | None
    first_frame: int = 0
    device: str = "cpu"


class VideoMetric(Protocol):
    """What a ``syncanim.metrics`` component builds: a named scorer of one clip."""

    name: str

    def score(self, clip: ClipInputs) -> dict[str, Any]: ...


def clip_stats(frames: FrameSource, fps: float, image_size: tuple[int, int], audio: Waveform | None, *,
               first_frame: int = 0, sync: SyncConfig = SyncConfig(), blinks: BlinkConfig = BlinkConfig(),
               no_audio_note: str | None = None, progress: ProgressFn = no_progress,
               stage: str = "landmarks", total: int | None = None) -> tuple[ClipStats, ClipSignals]:
    """Track the clip's face and measure sync, blinks and head motion.

    frames: a :data:`FrameSource`; image_size: ``(W, H)``; audio: 16 kHz mono speech or None (sync is
    then skipped with ``no_audio_note``); frame ``k`` of the clip is at time ``(first_frame + k) / fps``
    of ``audio``. ``total``: the number of frames, when known (for the progress bar).
    """
    points, found = track_landmarks(frames(), progress, stage, total)
    n = len(points)
    stats = ClipStats(frames=n, fps=fps, faces_found=int(found.sum()))
    mouth = mouth_opening(points) if n else np.zeros(0)
    signals = ClipSignals(points, found, mouth)
    if n and not found.any():
        stats.notes.append("no face was found in any frame")
        return stats, signals
    if found.sum() < n:
        stats.notes.append(f"no face in {n - int(found.sum())} of {n} frames")

    if audio is None:
        stats.notes.append(no_audio_note or "no audio: sync not measured")
    else:
        lag = sync.max_lag
        rms = frame_rms(audio.samples, audio.sample_rate, fps, first_frame - lag, n + 2 * lag)  # [N + 2L]
        stats.sync = sync_score(mouth, rms, fps, **sync.model_dump())
        spread = speaking_spread(mouth, speech_frames(rms[lag:lag + n], sync.speech_db))
        stats.mouth_spread = None if np.isnan(spread) else spread
        if stats.sync.note:
            stats.notes.append(f"sync: {stats.sync.note}")
        signals.sync = sync_signals(mouth, rms, fps, max_lag=lag, highpass_s=sync.highpass_s,
                                    floor_db=sync.floor_db, speech_db=sync.speech_db)

    stats.blinks = blink_stats(points, found, fps, blinks)
    try:
        signals.angles = head_angles(points, found, image_size)
    except DataError as e:
        log.warning("head motion not measured: %s", e)
        stats.notes.append(f"head motion not measured: {e}")
    else:
        stats.head = head_motion(signals.angles, found)
    return stats, signals
