"""The ``mediapipe-blendshapes`` expression extractor: MediaPipe FaceLandmarker's 52 blendshapes.

Needs the user's ``face_landmarker.task`` file (set ``prep.expressions.task_path``); nothing is
downloaded. The five standard coefficients are mapped from the blendshapes so downstream stages
see the same names as with ``landmark-geometry``; the raw blendshapes follow as ``bs_<name>``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from ..config import Frozen
from ..console import ProgressFn, no_progress
from ..errors import DataError, PluginError
from ..mp_runtime import import_mediapipe, mediapipe_missing, silenced_stderr
from ..registry import Spec
from .expressions import NAMES, Expressions, FrameSource, savgol

#: standard name -> blendshape categories averaged for it
MAPPING = {
    "blink_left": ("eyeBlinkLeft",),
    "blink_right": ("eyeBlinkRight",),
    "brow_raise": ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"),
    "mouth_open": ("jawOpen",),
    "mouth_width": ("mouthStretchLeft", "mouthStretchRight"),
}


class BlendshapeConfig(Frozen):
    task_path: str | None = None  # path to face_landmarker.task (MediaPipe's FaceLandmarker model bundle)
    smooth_window: int = Field(5, ge=1)  # Savitzky-Golay window in frames (order 3), as the reference does


def _check(config: BlendshapeConfig) -> str | None:
    missing = mediapipe_missing()
    if missing:
        return missing
    if not config.task_path:
        return ("a FaceLandmarker model bundle: place face_landmarker.task somewhere and set "
                "prep.expressions.task_path to it")
    if not Path(config.task_path).expanduser().is_file():
        return f"the FaceLandmarker bundle {config.task_path} does not exist"
    return None


class BlendshapeExtractor:
    needs_frames = True

    def __init__(self, config: BlendshapeConfig) -> None:
        missing = _check(config)
        if missing:
            raise PluginError(f"mediapipe-blendshapes cannot run: needs {missing}")
        self.config = config

    def extract(self, landmarks: np.ndarray, valid: np.ndarray, frames: FrameSource | None = None,
                fps: float = 25.0, progress: ProgressFn = no_progress) -> Expressions:
        if frames is None:
            raise ValueError("mediapipe-blendshapes needs the frames")
        mp = import_mediapipe()
        from mediapipe.tasks import python as mp_tasks
        from mediapipe.tasks.python import vision

        options = vision.FaceLandmarkerOptions(
            base_options=mp_tasks.BaseOptions(model_asset_path=str(Path(self.config.task_path).expanduser())),
            running_mode=vision.RunningMode.VIDEO, output_face_blendshapes=True, num_faces=1)
        n = len(landmarks)
        names: list[str] | None = None
        rows: list[np.ndarray | None] = [None] * n
        try:
            with silenced_stderr():
                marker = vision.FaceLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as e:
            raise PluginError(f"cannot load {self.config.task_path}: {e}") from e
        with marker:
            for k, rgb in frames():
                res = marker.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)),
                                              int(round(k * 1000 / fps)))
                if res.face_blendshapes:
                    cats = [c for c in res.face_blendshapes[0] if c.category_name != "_neutral"]
                    names = names or [c.category_name for c in cats]
                    rows[k] = np.array([c.score for c in cats], np.float32)
                if k % 25 == 0:
                    progress("expressions", k + 1, n)
        if names is None:
            raise DataError("FaceLandmarker found no face in any frame")
        raw = _fill_gaps(rows, len(names))
        w = self.config.smooth_window | 1
        if w >= 5 and n > w:
            raw = savgol(raw, w, 3).clip(0.0, 1.0).astype(np.float32)
        std = np.stack([raw[:, [names.index(c) for c in MAPPING[s]]].mean(1) for s in NAMES], axis=1)
        progress("expressions", n, n)
        return Expressions(np.concatenate([std, raw], 1).astype(np.float32),
                           NAMES + tuple(f"bs_{c}" for c in names))


def _fill_gaps(rows: list[np.ndarray | None], dim: int) -> np.ndarray:
    """Rows where no face was found take the nearest found row. -> [N, dim] float32."""
    found = [i for i, r in enumerate(rows) if r is not None]
    out = np.zeros((len(rows), dim), np.float32)
    if not found:
        return out
    idx = np.array(found)
    for i in range(len(rows)):
        j = found[int(np.abs(idx - i).argmin())]
        out[i] = rows[j]
    return out


SPEC = Spec(
    name="mediapipe-blendshapes",
    config_model=BlendshapeConfig,
    build=BlendshapeExtractor,
    description="MediaPipe FaceLandmarker blendshapes (52) from a user-supplied face_landmarker.task",
    check=_check,
)
