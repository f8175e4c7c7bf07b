"""The ``mediapipe-geometric`` segmenter: person / head / neck / torso / face label maps.

MediaPipe SelfieSegmentation gives the person; the face mesh gives the face outline, where the head
ends and the colour of the skin; MediaPipe Pose (run every few frames) gives the shoulder line. The
split between them is geometric and by skin colour (:func:`split_person`), so no face-parsing weights
are needed.
"""

from __future__ import annotations

import cv2
import numpy as np
from pydantic import Field

from ..config import Frozen
from ..data.labels import FACE, HEAD, NECK, TORSO
from ..face.landmarks import FACE_OVAL
from ..mp_runtime import import_mediapipe, mediapipe_missing, silenced_stderr
from ..registry import Spec

CHIN, FOREHEAD, CHEEK_R, CHEEK_L, JAW_R, JAW_L = 152, 10, 234, 454, 172, 397
POSE_SHOULDERS = (11, 12)


class GeometricSegConfig(Frozen):
    selfie_model: int = Field(1, ge=0, le=1)  # 0: general (256x256), 1: landscape (faster)
    threshold: float = Field(0.5, gt=0.0, lt=1.0)  # person probability cut
    pose_every: int = Field(25, ge=1)  # run the pose model (the slowest) every n frames; the shoulder line is held between
    head_width: float = Field(0.85, gt=0.3, le=2.0)  # half-width of the head band (hair, ears) about the face axis, in face widths
    neck_width: float = Field(0.45, gt=0.1, le=2.0)  # half-width of the neck band, in face widths
    skin_tolerance: float = Field(3.0, gt=0.5, le=10.0)  # neck pixels: chroma within this many spreads of the face's skin


def skin_model(ycrcb: np.ndarray, face: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The face's skin chroma: median and robust spread (1.4826 MAD, at least 3 levels) of (Cr, Cb) over the
    ``face`` pixels. ycrcb: [H, W, 3] uint8, face: [H, W] bool -> ((2,), (2,)) float, None without face pixels."""
    at = np.flatnonzero(face)
    if len(at) < 20:
        return None
    px = ycrcb.reshape(-1, 3)[at, 1:].T.astype(np.float32)  # [2, n]: a row per channel, for fast medians
    med = np.median(px, 1)
    spread = np.maximum(1.4826 * np.median(np.abs(px - med[:, None]), 1), 3.0)
    return med, spread


def shoulder_row(xs: np.ndarray, shoulders: np.ndarray | None, fallback: float) -> np.ndarray:
    """The image row of the shoulder line at columns ``xs`` (float array): the line through the two shoulder
    points ``shoulders: [2, 2]`` (x, y pixels), or the row ``fallback`` without them."""
    if shoulders is None:
        return np.full_like(xs, fallback)
    (xa, ya), (xb, yb) = shoulders
    if abs(xb - xa) < 1:
        return np.full_like(xs, 0.5 * (ya + yb))
    return ya + (xs - xa) * (yb - ya) / (xb - xa)


def split_person(rgb: np.ndarray, person: np.ndarray, points: np.ndarray | None, shoulders: np.ndarray | None,
                 cfg: GeometricSegConfig) -> np.ndarray:
    """Label map from a person mask and face landmarks.

    rgb: [H, W, 3] uint8. person: [H, W] bool. points: [478, 3] float (pixels) or None. shoulders:
    [2, 2] (x, y pixels of the two shoulder joints) or None. Returns labels: [H, W] uint8 with
    0 background, 1 torso, 2 neck, 3 head (hair, ears: head but not face), 4 face (inside the face outline).

    The face is the face-mesh outline. The head is the face and every person pixel above the line
    through the jaw angles (across the face axis) within ``head_width`` face widths of the axis:
    hair however tall, ears. The neck is the skin below the head: person pixels under the jaw line,
    within ``neck_width`` of the axis, above the shoulder line (through the two shoulder joints; 1.2
    face heights under the chin without them), whose chroma matches the face's skin, connected to the
    head; a collar, a tie or a scarf there stays torso. Every other person pixel is torso.
    """
    h, w = person.shape
    labels = np.zeros((h, w), np.uint8)
    labels[person] = TORSO
    if points is None:
        return labels
    p = points[:, :2].astype(np.float64)
    oval = np.round(p[list(FACE_OVAL)]).astype(np.int32)
    face = np.zeros((h, w), np.uint8)
    cv2.fillPoly(face, [oval], 1)
    chin, top = p[CHIN], p[FOREHEAD]
    axis = top - chin
    fh = float(np.linalg.norm(axis)) + 1e-6
    up = axis / fh  # unit vector from chin to forehead
    fw = float(np.linalg.norm(p[CHEEK_L] - p[CHEEK_R])) + 1e-6
    jaw_mid = 0.5 * (p[JAW_R] + p[JAW_L])
    fallback = chin[1] + 1.2 * fh
    # everything below happens near the head and neck: work inside that window (all rows above the shoulders)
    reach = max(cfg.head_width, cfg.neck_width) * fw + 2
    x0, x1 = int(max(0, min(chin[0], top[0]) - reach)), int(min(w, max(chin[0], top[0]) + reach + 1))
    cols = np.arange(x0, x1, dtype=np.float64)
    low = shoulder_row(cols, shoulders, fallback).max() if x1 > x0 else fallback
    y1 = int(np.clip(max(low, chin[1]) + 1, 0, h))
    if x1 <= x0 or y1 <= 0:
        labels[face > 0] = FACE
        return labels
    ys, xs = np.ogrid[0:y1, x0:x1]
    xs, ys = xs.astype(np.float32), ys.astype(np.float32)
    pw = person[:y1, x0:x1]
    fw_ = face[:y1, x0:x1] > 0
    along = (xs - jaw_mid[0]) * up[0] + (ys - jaw_mid[1]) * up[1]  # signed distance above the jaw line
    lateral = np.abs((xs - chin[0]) * up[1] - (ys - chin[1]) * up[0])  # distance from the face axis
    head = fw_ | (pw & (along > 0) & (lateral < cfg.head_width * fw))
    win = labels[:y1, x0:x1]
    neck = pw & ~head & (lateral < cfg.neck_width * fw) & (ys < shoulder_row(xs, shoulders, fallback))
    ycrcb = cv2.cvtColor(np.ascontiguousarray(rgb[:y1, x0:x1]), cv2.COLOR_RGB2YCrCb)
    k = max(1, int(0.08 * fw)) | 1
    inner = cv2.erode(fw_.astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    skin = skin_model(ycrcb, inner)
    if skin is None:
        neck[:] = False
    else:
        med, spread = skin
        at = np.flatnonzero(neck)  # the chroma test only where the neck can be
        px = ycrcb.reshape(-1, 3)[at, 1:].astype(np.float32)  # [n, 2]
        d0, d1 = (px[:, 0] - med[0]) / spread[0], (px[:, 1] - med[1]) / spread[1]
        np.put(neck, at, d0 * d0 + d1 * d1 < cfg.skin_tolerance ** 2)
        neck = cv2.morphologyEx(neck.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
        # only the skin that hangs from the head: components touching the head's lower edge
        n, comp = cv2.connectedComponents(neck.astype(np.uint8), connectivity=8)
        if n > 1:
            rim = cv2.dilate(head.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            keep = np.zeros(n, bool)
            keep[np.unique(comp[rim & neck])] = True
            keep &= np.bincount(comp.ravel(), minlength=n) >= (0.1 * fw) ** 2  # no specks
            keep[0] = False
            neck = keep[comp]
            neck = cv2.morphologyEx(neck.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((k, k), np.uint8)) > 0
            neck &= pw & ~head
    win[neck] = NECK
    win[head] = HEAD
    win[fw_] = FACE
    labels[face > 0] = FACE
    return labels


class GeometricSegmenter:
    """Per-frame label maps; ``start()`` resets the trackers at a discontinuity."""

    def __init__(self, config: GeometricSegConfig) -> None:
        self.config = config
        self._selfie = None
        self._pose = None
        self._shoulders: np.ndarray | None = None
        self._count = 0

    def start(self) -> None:
        self.close()
        mp = import_mediapipe()
        with silenced_stderr():
            self._selfie = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=self.config.selfie_model)
            # model_complexity=1 ("full") is the pose model that ships inside the wheel
            self._pose = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, enable_segmentation=False)
        self._shoulders = None
        self._count = 0

    def person(self, rgb: np.ndarray) -> np.ndarray:
        """Person probability -> mask. rgb: [H, W, 3] uint8 -> [H, W] bool."""
        if self._selfie is None:
            self.start()
        prob = self._selfie.process(rgb).segmentation_mask
        return prob > self.config.threshold

    def shoulders(self, rgb: np.ndarray) -> np.ndarray | None:
        """The two shoulder joints ``[2, 2]`` (x, y pixels; one visible joint given twice), refreshed every
        ``pose_every`` calls and held between."""
        if self._pose is None:
            self.start()
        if self._count % self.config.pose_every == 0:
            res = self._pose.process(rgb)
            if res.pose_landmarks is not None:
                lm = res.pose_landmarks.landmark
                vis = [lm[i] for i in POSE_SHOULDERS if lm[i].visibility > 0.5]
                if vis:
                    pts = np.array([[v.x * rgb.shape[1], v.y * rgb.shape[0]] for v in vis], np.float64)
                    self._shoulders = pts if len(pts) == 2 else np.repeat(pts, 2, 0)
        self._count += 1
        return self._shoulders

    def segment(self, rgb: np.ndarray, points: np.ndarray | None) -> np.ndarray:
        """rgb: [H, W, 3] uint8, points: [478, 3] or None -> labels [H, W] uint8 (see split_person)."""
        return split_person(rgb, self.person(rgb), points, self.shoulders(rgb), self.config)

    def close(self) -> None:
        for m in (self._selfie, self._pose):
            if m is not None:
                m.close()
        self._selfie = self._pose = None


def _check(config: GeometricSegConfig) -> str | None:
    return mediapipe_missing()


SPEC = Spec(
    name="mediapipe-geometric",
    config_model=GeometricSegConfig,
    build=GeometricSegmenter,
    description="MediaPipe selfie segmentation + face mesh + pose, split geometrically into head/neck/torso/face",
    check=_check,
)
