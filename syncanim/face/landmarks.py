"""MediaPipe FaceMesh: 478 face landmarks (with iris) per frame, a cheap face scan, gaps filled over time.

:class:`FaceMeshTracker` is prep's ``mediapipe-facemesh`` tracker (registered in
:mod:`syncanim.prep.landmarks`) and what eval tracks rendered and real videos with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import Field

from ..config import Frozen
from ..mp_runtime import import_mediapipe, silenced_stderr

NUM_LANDMARKS = 478
#: MediaPipe face-mesh indices of the face outline, in order around the face (forehead first).
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)


class FaceMeshConfig(Frozen):
    min_detection_confidence: float = Field(0.5, ge=0.0, le=1.0)
    min_tracking_confidence: float = Field(0.5, ge=0.0, le=1.0)
    max_faces: int = Field(4, ge=1, le=10)  # tracked at once only when the scan saw several faces
    scan_confidence: float = Field(0.6, ge=0.0, le=1.0)  # face detector threshold for the scan


@dataclass(frozen=True)
class FaceBox:
    """A detected face in pixels: ``(x0, y0, x1, y1)`` and the detector's score."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    @property
    def area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)


def landmark_array(face) -> np.ndarray:
    """A MediaPipe ``NormalizedLandmarkList`` -> ``[K, 3] float32`` (x, y, z).

    Reads the serialized message directly when it has the fixed layout FaceMesh emits (each point:
    x, y, z as 32-bit floats, nothing else; 17 bytes), which is much faster than visiting the
    Python objects; any other layout takes the general path.
    """
    raw = face.SerializeToString()
    k = len(face.landmark)
    if len(raw) == 17 * k:
        rec = np.frombuffer(raw, np.uint8).reshape(k, 17)
        if (rec[:, :3] == (0x0A, 0x0F, 0x0D)).all() and (rec[:, 7] == 0x15).all() and (rec[:, 12] == 0x1D).all():
            cols = np.concatenate([rec[:, 3:7], rec[:, 8:12], rec[:, 13:17]], axis=1)
            return np.ascontiguousarray(cols).view("<f4").astype(np.float32)
    return np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float32)


class FaceMeshTracker:
    """MediaPipe FaceMesh in video (tracking) mode; several faces -> the largest one is kept.

    ``start()`` begins a new track (call it at every discontinuity); ``track(rgb)`` returns
    ``points: [478, 3] float32`` (x, y in pixels; z = MediaPipe's depth times the image width) or
    ``None``, and the number of faces seen.
    """

    def __init__(self, config: FaceMeshConfig) -> None:
        self.config = config
        self._mesh = None
        self._detector = None

    def scan(self, rgb: np.ndarray) -> list[FaceBox]:
        """Faces in one frame from MediaPipe's full-range face detector (for framing and counting)."""
        if self._detector is None:
            mp = import_mediapipe()
            with silenced_stderr():
                self._detector = mp.solutions.face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=self.config.scan_confidence)
        h, w = rgb.shape[:2]
        res = self._detector.process(rgb)
        boxes = []
        for d in res.detections or []:
            b = d.location_data.relative_bounding_box
            boxes.append(FaceBox(b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h, float(d.score[0])))
        return boxes

    def start(self, multi_face: bool = False) -> None:
        """(Re)start tracking; with ``multi_face`` several faces are tracked so the largest can be kept."""
        self.close_mesh()
        mp = import_mediapipe()
        with silenced_stderr():
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=False,
                max_num_faces=self.config.max_faces if multi_face else 1,
                refine_landmarks=True,
                min_detection_confidence=self.config.min_detection_confidence,
                min_tracking_confidence=self.config.min_tracking_confidence,
            )

    def track(self, rgb: np.ndarray) -> tuple[np.ndarray | None, int]:
        """Landmarks of the largest face in ``rgb: [H, W, 3] uint8`` -> (``[478, 3] float32`` or None, faces)."""
        if self._mesh is None:
            self.start()
        h, w = rgb.shape[:2]
        res = self._mesh.process(rgb)
        faces = res.multi_face_landmarks or []
        if not faces:
            return None, 0
        best, best_area = None, -1.0
        for face in faces:
            pts = landmark_array(face)
            span = pts[:, :2].max(0) - pts[:, :2].min(0)
            area = float(span[0] * span[1])
            if area > best_area:
                best, best_area = pts, area
        assert best is not None and best.shape == (NUM_LANDMARKS, 3), f"unexpected landmark shape {best.shape}"
        best *= np.array([w, h, w], dtype=np.float32)
        return best, len(faces)

    def close_mesh(self) -> None:
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None

    def close(self) -> None:
        self.close_mesh()
        if self._detector is not None:
            self._detector.close()
            self._detector = None


def fill_gaps(points: np.ndarray, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Fill frames without a face (NaN rows) so every frame has landmarks.

    points: [N, K, 3] float with NaN rows where no face was found. Gaps of at most ``max_gap``
    frames between two found frames are linearly interpolated; longer gaps and the ends hold the
    nearest found frame. Returns (filled [N, K, 3] float32, interpolated [N] bool: rows that were
    filled by interpolation). Raises ValueError when no frame has a face.
    """
    found = ~np.isnan(points).any(axis=(1, 2))
    if not found.any():
        raise ValueError("no frame has a face")
    out = points.astype(np.float32, copy=True)
    idx = np.flatnonzero(found)
    interp = np.zeros(len(points), bool)
    for i in np.flatnonzero(~found):
        after = idx[np.searchsorted(idx, i):]
        before = idx[: np.searchsorted(idx, i)]
        a = before[-1] if len(before) else None
        b = after[0] if len(after) else None
        if a is not None and b is not None and b - a - 1 <= max_gap:
            w = (i - a) / (b - a)
            out[i] = (1 - w) * points[a] + w * points[b]
            interp[i] = True
        else:
            near = a if b is None or (a is not None and i - a <= b - i) else b
            out[i] = points[near]
    return out, interp
