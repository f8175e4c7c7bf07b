"""Mouth landmark distance (LMD) between rendered and reference frames.

What is measured here, exactly:

- **Points**: the 40 lip landmarks of MediaPipe FaceMesh (:data:`MOUTH`, every vertex that appears in
  ``mediapipe.python.solutions.face_mesh_connections.FACEMESH_LIPS``, sorted): outer and inner lip
  contours, x and y only.
- **Detector**: MediaPipe FaceMesh (the models bundled with mediapipe 0.10.21) in static-image mode
  with ``refine_landmarks=True`` and one face: every frame is detected on its own, rendered and real
  frames alike, so no tracking state carries from one frame into the next.
- **Distance**: for each frame where *both* images have a face, the mean over the 40 points of the
  Euclidean distance between corresponding points, in pixels of the evaluated images multiplied by
  ``scale_to / max(H, W)`` (default 512), i.e. in pixels of the frame resized so its longer side is
  512 px. LMD is the mean of that over the frames used; frames where either image has no face are
  skipped and counted (:class:`LMDResult`). Points are not centred: a shifted mouth counts.

What it is not: the papers in this line report LMD from a 68-point detector (dlib or
face_alignment), mouth points 48-67 (20 points), at the test resolution, and the ``LMDMeter`` of
the ER-NeRF / SyncTalk code subtracts each frame's mouth centroid before measuring, so a global
shift of the mouth is not counted there. ``centered=True`` reproduces that centring; the point
set, the detector and (for frames that are not 512 px) the rescaling still differ, so values compare
between syncanim runs, not with the published tables.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from ..console import ProgressFn, no_progress
from ..mp_runtime import import_mediapipe, silenced_stderr

log = logging.getLogger(__name__)

#: FaceMesh lip landmark indices: the sorted vertices of ``FACEMESH_LIPS`` (the test re-derives them).
MOUTH: tuple[int, ...] = (
    0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181,
    185, 191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415,
)  # fmt: skip

SCALE_TO = 512  # LMD is reported in pixels of a frame whose longer side is this many pixels


class LMDResult(NamedTuple):
    """LMD over a clip: ``value`` in pixels at ``scale_to`` (NaN when no frame was usable),
    ``frames_used`` (both images had a face) and ``frames_skipped`` (either had none)."""

    value: float
    frames_used: int
    frames_skipped: int


def mouth_landmarks(
    frames: Iterable[np.ndarray],
    min_detection_confidence: float = 0.5,
    progress: ProgressFn = no_progress,
) -> np.ndarray:
    """Lip landmarks of every frame, each detected on its own (FaceMesh static-image mode).

    frames: iterable of ``[H, W, 3] uint8`` RGB images. Returns ``[N, K, 2] float32`` (K = 40,
    the :data:`MOUTH` points; x, y in pixels of that frame), with NaN rows for frames without a face.
    """
    mp = import_mediapipe()
    mesh = None
    rows: list[np.ndarray] = []
    missing = 0
    try:
        for i, frame in enumerate(frames):
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(f"frame {i}: expected [H, W, 3] uint8 RGB, got {frame.shape} {frame.dtype}")
            h, w = frame.shape[:2]
            if mesh is None:  # the graph prints its start-up notices from its own threads until the first frame is out
                with silenced_stderr():
                    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                                           min_detection_confidence=min_detection_confidence)
                    res = mesh.process(np.ascontiguousarray(frame))
            else:
                res = mesh.process(np.ascontiguousarray(frame))
            faces = res.multi_face_landmarks or []
            if faces:
                marks = faces[0].landmark
                pts = np.array([(marks[k].x * w, marks[k].y * h) for k in MOUTH], dtype=np.float32)  # [K, 2]
            else:
                pts = np.full((len(MOUTH), 2), np.nan, dtype=np.float32)
                missing += 1
            rows.append(pts)
            progress("mouth landmarks", i + 1, None)
    finally:
        if mesh is not None:
            with silenced_stderr():  # worker threads may still report their start-up here
                mesh.close()
    if missing:
        log.info("no face found in %d of %d frames", missing, len(rows))
    if not rows:
        return np.zeros((0, len(MOUTH), 2), dtype=np.float32)
    return np.stack(rows).astype(np.float32)


def lmd_stats(
    pred_points: np.ndarray,
    target_points: np.ndarray,
    image_size: int | tuple[int, int],
    scale_to: float = SCALE_TO,
    centered: bool = False,
) -> LMDResult:
    """Mean mouth landmark distance and the frames it covers (see module doc).

    pred_points, target_points: ``[N, K, 2] float`` pixel coordinates (NaN rows: no face), as from
    :func:`mouth_landmarks`. image_size: side of the (square) evaluated frames, or ``(H, W)``;
    distances are multiplied by ``scale_to / max(H, W)``. ``centered`` subtracts each frame's mean
    point from its points first (the papers' ``LMDMeter`` convention).
    """
    per_frame = lmd_per_frame(pred_points, target_points, image_size, scale_to, centered)  # [N]
    usable = ~np.isnan(per_frame)
    used = int(usable.sum())
    skipped = len(usable) - used
    if used == 0:
        log.warning("lmd: no frame has a face in both images (%d frames)", len(usable))
        return LMDResult(float("nan"), 0, skipped)
    return LMDResult(float(per_frame[usable].mean()), used, skipped)


def lmd_per_frame(
    pred_points: np.ndarray,
    target_points: np.ndarray,
    image_size: int | tuple[int, int],
    scale_to: float = SCALE_TO,
    centered: bool = False,
) -> np.ndarray:
    """The per-frame terms that :func:`lmd_stats` averages: ``[N, K, 2]`` pixel points each ->
    ``[N] float64`` pixels at ``scale_to`` (NaN where either frame has no face)."""
    p = np.asarray(pred_points, dtype=np.float64)
    t = np.asarray(target_points, dtype=np.float64)
    if p.shape != t.shape or p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"lmd: expected two [N, K, 2] arrays of one shape, got {p.shape} and {t.shape}")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"lmd: image_size must be a positive int or (H, W), got {image_size!r}")
    if centered:
        p = p - p.mean(1, keepdims=True)  # NaN rows stay NaN
        t = t - t.mean(1, keepdims=True)
    per_frame = np.linalg.norm(p - t, axis=-1).mean(1)  # [N]
    return np.where(np.isnan(p).any((1, 2)) | np.isnan(t).any((1, 2)), np.nan, per_frame * (scale_to / max(size)))


def lmd(
    pred_points: np.ndarray,
    target_points: np.ndarray,
    image_size: int | tuple[int, int],
    scale_to: float = SCALE_TO,
    centered: bool = False,
) -> float:
    """:func:`lmd_stats` without the frame counts: mean mouth landmark distance in pixels at
    ``scale_to`` (NaN when no frame has a face in both images)."""
    return lmd_stats(pred_points, target_points, image_size, scale_to, centered).value
