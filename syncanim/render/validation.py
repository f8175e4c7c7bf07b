"""``syncanim render MODEL --split val``: the held-out frames rendered next to the ground truth, scored.

Each validation frame is rendered from its own head pose, audio and expressions (the lighting latent
is the training mean, as for new audio) over the model's torso and background plate (a model without
a torso: over the frame's own background), then compared with the real frame:
PSNR over the whole frame and over the face box, SSIM, and LMD (mouth landmarks from MediaPipe
FaceMesh on both, in pixels at 512x512). Over the plate, the whole-frame PSNR cannot pass the plate's
own match to the frames' backgrounds (a studio graphic that moves, a camera that drifts): that
bound is reported beside it (:func:`plate_bound`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..config import RenderConfig, RuntimeConfig
from ..console import ProgressFn, no_progress
from ..data.dataset import HeadData, clip_rms, load_head_data
from ..data.files import finite_json, write_json_atomic
from ..data.labels import BACKGROUND
from ..device import resolve_device, resolve_precision
from ..errors import DataError
from ..face.boxes import face_boxes
from ..media.video import VideoWriter
from ..metrics.frames import score_frames
from ..metrics.lmd import lmd_stats, mouth_landmarks
from ..model.base import HeadModel
from ..model.camera import Camera
from ..model.conditioning import FrameBatch
from ..model.folder import ModelLayout, dataset_path, load_model, load_torso
from ..model.head import EXPRESSIONS
from ..model.torso import TorsoField
from ..motion.mouth_level import MouthLevel, stream_level
from ..motion.mouth_support import MouthSupport, mouth_support
from .pipeline import render_batch_uint8, render_person


@dataclass
class ValResult:
    frames: int
    psnr: float
    psnr_face: float
    ssim: float
    lmd: float
    lmd_frames: int
    plate_bound: float | None  # PSNR a perfect person over the plate would reach (None: rendered without a torso)
    video: str
    stills: str
    render_fps: float


def own_backdrops(frames: np.ndarray, labels: np.ndarray, plate: np.ndarray) -> np.ndarray:
    """Each frame's own background where it is labelled background, the plate under the person.
    frames ``[B, H, W, 3] uint8``, labels ``[B, H, W] uint8``, plate ``[H, W, 3] uint8`` -> ``[B, H, W, 3] uint8``."""
    return np.where((labels == BACKGROUND)[..., None], frames, plate[None])


def plate_bound(frames: np.ndarray, labels: np.ndarray, plate: np.ndarray) -> float:
    """The whole-frame PSNR (dB) a perfect person over ``plate`` would score against ``frames``: the error left
    is the plate's against each frame's own background. Shapes as :func:`own_backdrops`."""
    bg = (labels == BACKGROUND)[..., None]
    err = np.where(bg, frames.astype(np.float64) - plate[None].astype(np.float64), 0.0)
    mse = float((err ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def render_split(model: HeadModel, data: HeadData, ids: list[int], device: torch.device, chunk: int,
                 per_call: int, progress: ProgressFn = no_progress, precision: str = "fp32",
                 torso: TorsoField | None = None, backdrop: str = "plate",
                 level: tuple[MouthLevel, np.ndarray] | None = None,
                 support: MouthSupport | None = None) -> tuple[np.ndarray, float]:
    """Render dataset frames ``ids`` from their own poses, speech and expressions, ``per_call`` frames at a
    time (:func:`~syncanim.render.pipeline.render_batch`), the lighting latent the training mean: over the
    model's ``torso`` for each pose and the plate (:func:`~syncanim.render.pipeline.render_person`), or
    without one over the frames' own backgrounds. With a torso, ``backdrop`` "frame" puts it over each frame's
    own background pixels instead of the plate (:func:`own_backdrops`: scores the person alone, not how well a
    still plate matches a changing background). ``precision``: auto | fp32 | bf16 | fp16
    (:func:`syncanim.device.resolve_precision`). ``level``: a stream's mouth level and the loudness [N] of the
    dataset's frames, ``ids`` then being consecutive frames heard in order (as a stream would); ``support``: the
    shapes the codes are held to (:mod:`syncanim.motion.mouth_support`), after the level, as a stream does.
    -> ([B, H, W, 3] uint8, frames/s)."""
    import time

    precision = resolve_precision(device, precision)
    feats = torch.from_numpy(data.audio).to(device)  # [N, P, F]
    out, spent = [], 0.0
    for s in range(0, len(ids), per_call):
        idx = ids[s:s + per_call]
        t0 = time.perf_counter()
        camera = Camera.from_numpy(data.rotation[idx], data.translation[idx], data.focal, data.cx, data.cy, data.size,
                                   device)
        with torch.no_grad():
            codes = model.predictor(feats, torch.tensor(idx, device=device))  # [B, C]
            if level is not None:
                codes = level[0].apply(codes, level[1][idx])
            if support is not None:
                codes = support.apply(codes)
            cond = model.condition(FrameBatch(torch.from_numpy(data.expressions[idx]).to(device), codes=codes))
        if torso is not None:
            under = own_backdrops(data.frames[idx], data.labels[idx], data.plate) if backdrop == "frame" else None
            out.append(render_person(model, torso, camera, cond, precision=precision, chunk=chunk, under=under))
        else:
            out.append(render_batch_uint8(model, camera, cond, data.backgrounds[idx], precision=precision, chunk=chunk))
        spent += time.perf_counter() - t0
        progress("render val", s + len(idx), len(ids))
    return np.concatenate(out), len(ids) / max(spent, 1e-9)


def split_level(mouth: dict, fps: float, dataset: str | os.PathLike[str], data: HeadData,
                max_gain: float) -> tuple[MouthLevel, np.ndarray] | None:
    """What :func:`render_split` levels the mouth with, for a model's ``mouth`` section (model.json) and its
    ``dataset``: a stream's mouth level and each frame's loudness, or None (off, or no reference)."""
    lvl = stream_level(mouth, fps, max_gain)
    return None if lvl is None else (lvl, clip_rms(dataset, data.manifest))


def run_validation(model_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str], render: RenderConfig,
                   runtime: RuntimeConfig, *, dataset: str | os.PathLike[str] | None = None,
                   progress: ProgressFn = no_progress) -> ValResult:
    device = resolve_device(runtime)
    model, info = load_model(model_dir, device, render_settings=runtime.render_settings)
    ds = dataset or dataset_path(model_dir, info)
    data = load_head_data(ds, EXPRESSIONS)
    if data.size != info.image_size:
        raise DataError(f"the dataset is {data.size} px, the model was trained at {info.image_size} px")
    ids = list(range(data.num_train, data.num_frames))
    if not ids:
        raise DataError("the dataset has no validation frames")
    torso = load_torso(ModelLayout(model_dir), info, device) if render.torso else None
    rendered, fps = render_split(model, data, ids, device, render.chunk_rays, render.frames_per_call, progress,
                                 render.precision, torso,
                                 level=split_level(info.mouth, info.fps, ds, data, render.mouth_level),
                                 support=mouth_support(info.mouth, render.mouth_support, device))
    gt = data.frames[ids]
    scores = score_frames(rendered, gt, face_boxes(data.landmarks[ids], (data.size, data.size))).means()
    progress("lmd", 0, 1)
    lm = lmd_stats(mouth_landmarks(list(rendered)), mouth_landmarks(list(gt)), (data.size, data.size))
    progress("lmd", 1, 1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    video = out / "val_side_by_side.mp4"
    with VideoWriter(video, data.manifest.fps, 2 * data.size, data.size, crf=render.crf) as w:
        for r, g in zip(rendered, gt, strict=True):
            w.write(np.concatenate([r, g], 1))
    picks = np.linspace(0, len(ids) - 1, min(4, len(ids))).round().astype(int)
    strip = np.concatenate([np.concatenate([rendered[i], gt[i]], 0) for i in picks], 1)
    stills = out / "val_stills.png"
    cv2.imwrite(str(stills), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    bound = plate_bound(gt, data.labels[ids], data.plate) if torso is not None else None
    result = ValResult(len(ids), scores["psnr"], scores["psnr_face"], scores["ssim"], float(lm.value),
                       int(lm.frames_used), bound, str(video), str(stills), fps)
    write_json_atomic(out / "val_metrics.json", finite_json(asdict(result)))
    return result


def result_json(result: ValResult) -> str:
    return json.dumps(finite_json(asdict(result)), indent=2)
