"""The ``mediapipe-geometric`` segmenter: person / head / neck / torso / face label maps.

MediaPipe SelfieSegmentation gives the person; the face mesh gives the face outline and where the
head ends; MediaPipe Pose (run every few frames) gives the shoulder line. The split between them
is geometric (:func:`split_person`), so no face-parsing weights are needed.
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
    head_width: float = Field(0.80, gt=0.3, le=2.0)  # half-width of the head ellipse, in face widths
    head_height: float = Field(0.80, gt=0.3, le=2.0)  # half-height of the head ellipse, in face heights
    neck_width: float = Field(0.50, gt=0.1, le=2.0)  # half-width of the neck band, in face widths


def split_person(
    person: np.ndarray, points: np.ndarray | None, shoulder_y: float | None, cfg: GeometricSegConfig
) -> np.ndarray:
    """Label map from a person mask and face landmarks.

    person: [H, W] bool. points: [478, 3] float (pixels) or None. shoulder_y: image row of the
    shoulder line or None. Returns labels: [H, W] uint8 with 0 background, 1 torso, 2 neck,
    3 head (hair, ears: head but not face), 4 face (inside the face outline).
    """
    h, w = person.shape
    labels = np.zeros((h, w), np.uint8)
    if points is None:
        labels[person] = TORSO
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
    centre = oval.mean(0) + up * 0.12 * fh
    angle = float(np.degrees(np.arctan2(up[0], -up[1])))  # roll of the face in the image
    ellipse = np.zeros((h, w), np.uint8)
    cv2.ellipse(ellipse, (int(round(centre[0])), int(round(centre[1]))),
                (int(round(cfg.head_width * fw)), int(round(cfg.head_height * fh))), angle, 0, 360, 1, -1)
    base = shoulder_y if shoulder_y is not None else chin[1] + 0.7 * fh
    # all further tests only matter near the head and neck: work inside that window
    reach = max(cfg.head_width * fw, cfg.head_height * fh) + 2
    x0, x1 = int(max(0, min(centre[0], chin[0]) - reach)), int(min(w, max(centre[0], chin[0]) + reach + 1))
    y0, y1 = int(max(0, centre[1] - reach)), int(min(h, max(base, chin[1]) + 1))
    labels[person] = TORSO
    if x1 <= x0 or y1 <= y0:
        labels[face > 0] = FACE
        return labels
    ys, xs = np.ogrid[y0:y1, x0:x1]
    xs, ys = xs.astype(np.float32), ys.astype(np.float32)
    pw = person[y0:y1, x0:x1]
    fw_ = face[y0:y1, x0:x1] > 0
    # signed distance along the face axis from the line through the jaw angles (positive: above)
    jaw_mid = 0.5 * (p[JAW_R] + p[JAW_L])
    along = (xs - jaw_mid[0]) * up[0] + (ys - jaw_mid[1]) * up[1]
    head = fw_ | (pw & (ellipse[y0:y1, x0:x1] > 0) & (along > 0))
    # the neck: below the chin, within a band around the face axis, above the shoulders
    lateral = np.abs((xs - chin[0]) * up[1] - (ys - chin[1]) * up[0])
    neck = pw & ~head & (lateral < cfg.neck_width * fw) & (ys < base)
    win = labels[y0:y1, x0:x1]
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
        self._shoulder_y: float | None = None
        self._count = 0

    def start(self) -> None:
        self.close()
        mp = import_mediapipe()
        with silenced_stderr():
            self._selfie = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=self.config.selfie_model)
            # model_complexity=1 ("full") is the pose model that ships inside the wheel
            self._pose = mp.solutions.pose.Pose(static_image_mode=False, model_complexity=1, enable_segmentation=False)
        self._shoulder_y = None
        self._count = 0

    def person(self, rgb: np.ndarray) -> np.ndarray:
        """Person probability -> mask. rgb: [H, W, 3] uint8 -> [H, W] bool."""
        if self._selfie is None:
            self.start()
        prob = self._selfie.process(rgb).segmentation_mask
        return prob > self.config.threshold

    def shoulders(self, rgb: np.ndarray) -> float | None:
        """Image row of the shoulder line, refreshed every ``pose_every`` calls and held between."""
        if self._pose is None:
            self.start()
        if self._count % self.config.pose_every == 0:
            res = self._pose.process(rgb)
            if res.pose_landmarks is not None:
                lm = res.pose_landmarks.landmark
                vis = [lm[i] for i in POSE_SHOULDERS if lm[i].visibility > 0.5]
                if vis:
                    self._shoulder_y = float(np.mean([v.y for v in vis]) * rgb.shape[0])
        self._count += 1
        return self._shoulder_y

    def segment(self, rgb: np.ndarray, points: np.ndarray | None) -> np.ndarray:
        """rgb: [H, W, 3] uint8, points: [478, 3] or None -> labels [H, W] uint8 (see split_person)."""
        return split_person(self.person(rgb), points, self.shoulders(rgb), self.config)

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
