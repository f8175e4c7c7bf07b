"""A prepared dataset loaded for training and rendering the head.

Everything the head needs, per frame: the image, the background the head is composited over (the
frame with the head replaced by the plate, the neck's colour stretched up into the gap), the camera
(head pose), the audio features, the expression coefficients and the mouth position.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError
from .labels import HEAD, NECK, TORSO
from .manifest import DatasetLayout, Manifest, read_manifest

log = logging.getLogger(__name__)

#: FaceMesh indices of the lips (outer and inner contours)
LIPS = (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269,
        270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415)


@dataclass
class HeadData:
    """Arrays of one dataset. N frames of H x W pixels."""

    manifest: Manifest
    frames: np.ndarray  # [N, H, W, 3] uint8
    backgrounds: np.ndarray  # [N, H, W, 3] uint8: frame with the head replaced (see torso_background)
    labels: np.ndarray  # [N, H, W] uint8
    plate: np.ndarray  # [H, W, 3] uint8
    rotation: np.ndarray  # [N, 3, 3] float32
    translation: np.ndarray  # [N, 3] float32
    focal: float
    cx: float
    cy: float
    canonical: np.ndarray  # [478, 3] float32
    audio: np.ndarray  # [N, P, F] float32
    expressions: np.ndarray  # [N, E] float32 (the columns of EXPRESSIONS)
    landmarks: np.ndarray  # [N, 478, 3] float32

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def num_train(self) -> int:
        return self.manifest.num_train

    @property
    def size(self) -> int:
        return self.frames.shape[1]


def torso_background(frame: np.ndarray, labels: np.ndarray, plate: np.ndarray, stretch_px: int) -> np.ndarray:
    """The frame with the head (hair included) replaced by the plate; where the head sat on the neck,
    the neck's colour is stretched up into the gap over ``stretch_px`` rows, fading into the plate.

    frame, plate: [H, W, 3] uint8; labels: [H, W] uint8 -> [H, W, 3] uint8. This is what the head is
    rendered over, so a jaw that opens less than in the original frame does not uncover the plate.
    """
    head = cv2.dilate((labels >= HEAD).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    out = np.where(head[..., None], plate, frame)
    h, w = labels.shape
    rows = np.arange(h)[:, None]
    # lowest head row per column, and whether neck/torso continues right below it
    has = head.any(0)
    bottom = np.where(has, h - 1 - np.argmax(head[::-1], axis=0), -1)  # [W]
    below = np.clip(bottom + 3, 0, h - 1)
    body = has & np.isin(labels[below, np.arange(w)], (NECK, TORSO))
    if body.any() and stretch_px > 0:
        colour = frame[below, np.arange(w)].astype(np.float32)  # [W, 3]
        dist = bottom[None, :] - rows  # rows above the bottom of the gap: 0 .. stretch
        weight = np.clip(1.0 - dist / stretch_px, 0.0, 1.0) * ((dist >= 0) & head & body[None, :])  # [H, W]
        mixed = weight[..., None] * colour[None] + (1 - weight[..., None]) * out.astype(np.float32)
        out = np.where(weight[..., None] > 0, mixed, out).round().astype(np.uint8)
    return out


def read_rgb(path: Path) -> np.ndarray:
    """A dataset image (a frame, the plate) as ``[H, W, 3] uint8`` RGB (DataError if missing)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DataError(f"{path} is missing or unreadable; rerun syncanim prep")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_labels(path: Path) -> np.ndarray:
    """A frame's label map (``parsing/NNNNNN.png``, :mod:`syncanim.data.labels`) as ``[H, W] uint8``."""
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if lab is None:
        raise DataError(f"{path} is missing or unreadable; rerun syncanim prep")
    return lab


def read_array(path: Path) -> np.ndarray:
    """A dataset array (``landmarks.npy``, ``expressions.npy``, ``audio_features.npy``; DataError if missing)."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:  # EOFError: an empty file
        raise DataError(f"{path} is missing or unreadable; rerun syncanim prep") from e


def load_head_data(root: str | Path, expressions: tuple[str, ...], threads: int = 4) -> HeadData:
    """Load a finished dataset (DataError if prep did not finish there)."""
    from .track import load_track

    m = read_manifest(root)
    lay = DatasetLayout(root)
    n = m.num_frames
    missing = [e for e in expressions if e not in m.expressions]
    if missing:
        raise DataError(f"{root}: the dataset has no expression coefficients {missing} (it has {m.expressions})")
    with ThreadPoolExecutor(threads) as pool:
        frames = np.stack(list(pool.map(read_rgb, (lay.frame(k) for k in range(n)))))
        labels = np.stack(list(pool.map(read_labels, (lay.parsing(k) for k in range(n)))))
        plate = read_rgb(lay.background)
        face_h = max(8, int(m.face_height_px))
        backgrounds = np.stack(list(pool.map(lambda k: torso_background(frames[k], labels[k], plate, face_h // 3),
                                             range(n))))
    track = load_track(lay.track)
    ex = read_array(lay.expressions)
    cols = [m.expressions.index(e) for e in expressions]
    audio = read_array(lay.audio_features).astype(np.float32)
    landmarks = read_array(lay.landmarks).astype(np.float32)
    if not (len(track.rotation) == len(ex) == len(audio) == len(landmarks) == n):
        raise DataError(f"{root}: dataset arrays disagree on the number of frames; rerun syncanim prep")
    scale = m.image_size / (2 * track.cx)
    return HeadData(
        manifest=m, frames=frames, backgrounds=backgrounds, labels=labels, plate=plate,
        rotation=track.rotation.astype(np.float32), translation=track.translation.astype(np.float32),
        focal=float(track.focal * scale), cx=float(track.cx * scale), cy=float(track.cy * scale),
        canonical=track.canonical.astype(np.float32), audio=audio, expressions=ex[:, cols].astype(np.float32),
        landmarks=landmarks,
    )


def clip_rms(root: str | Path, manifest: Manifest) -> np.ndarray:
    """The loudness of each of the dataset's frames: [N] float64."""
    from ..audio.framing import frame_rms
    from ..audio.waveform import read_audio

    wave = read_audio(DatasetLayout(root).audio, manifest.sample_rate)
    return frame_rms(wave.samples, wave.sample_rate, manifest.fps, 0, manifest.num_frames)


#: landmarks that bound the eyes: outer and inner corners, upper and lower lids of both
EYE_POINTS = (33, 133, 159, 145, 263, 362, 386, 374)


def eye_boxes(landmarks: np.ndarray, size: int, margin: float = 0.25) -> np.ndarray:
    """Boxes [N, 4] (x0, y0, x1, y1; pixels, inside the image) around both eyes of each frame's landmarks
    ``[N, 478, >= 2]``, widened on every side by ``margin`` times the eyes' span (outer corner to outer corner)."""
    pts = landmarks[:, list(EYE_POINTS), :2].astype(np.float64)  # [N, 8, 2]
    lo, hi = pts.min(1), pts.max(1)  # [N, 2]
    pad = margin * (hi[:, :1] - lo[:, :1])  # [N, 1]
    box = np.concatenate([lo - pad, hi + pad], 1)
    return np.clip(np.round(box), 0, size).astype(np.int64)


def mouth_boxes(landmarks: np.ndarray, size: int, patch: int) -> np.ndarray:
    """Top-left corners [N, 2] (x, y) of ``patch``-sized squares centred on the mouth, inside the image."""
    centre = landmarks[:, list(LIPS), :2].mean(1)  # [N, 2]
    return np.clip(np.round(centre - patch / 2), 0, size - patch).astype(np.int64)
