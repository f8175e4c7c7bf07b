"""``syncanim render MODEL --audio speech.wav``: the person saying new speech, as an mp4 with the audio.

Audio of any common format and rate -> features from the backend the model was trained with ->
one conditioning vector per output frame -> head pose, brows and blinks from the speech (the model's
motion syncer, :mod:`syncanim.motion`; or replayed from the training track, looped with smooth joins;
or held still) -> the model's torso for each head pose over the background plate and the head over it
(models without a torso: the head over the replayed training frames' bodies; ``--portrait``: pasted
into the original frames, keeping their poses) -> H.264 with the speech muxed in (AAC).

Every call of B frames runs :func:`render_batch` (the model's
:meth:`~syncanim.model.base.HeadModel.render_frames` under the run's precision): the renderer here,
``render --split val``, ``eval`` and ``bench`` alike.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..audio.framing import frame_rms
from ..audio.waveform import Waveform, read_audio
from ..config import PluginSection, RenderConfig, RuntimeConfig
from ..console import ProgressFn, no_progress
from ..device import autocast, resolve_device, resolve_precision
from ..errors import DataError
from ..media.video import VideoWriter, iter_frames, probe
from ..model.base import HeadModel
from ..model.camera import Camera
from ..model.conditioning import Conditioning, FrameBatch
from ..model.folder import ModelInfo, ModelLayout, load_model, load_replay, load_torso
from ..model.frames import DenseRects, from_uint8, to_uint8
from ..model.torso import TorsoField
from ..motion.store import load_motion
from ..motion.syncer import EXPRESSIONS as MOTION_EXPRESSIONS
from ..motion.syncer import generate_motion
from ..registry import Registry, default_registry
from .replay import ReplayPlan, blend_poses, replay_plan, static_plan

log = logging.getLogger(__name__)

MUX_RATE = 48000  # AAC at 48 kHz: its 1024-sample frames (21 ms) keep audio and video within a frame


@dataclass
class RenderResult:
    path: Path
    frames: int
    duration_s: float
    fps: float
    seconds: float
    render_fps: float


def speech_features(info: ModelInfo, wave: Waveform, num_frames: int, registry: Registry) -> np.ndarray:
    """Per-frame speech features [T, P, F] of ``wave`` from the model's own feature backend."""
    backend = registry.build("syncanim.asr", PluginSection(**info.audio))
    return backend.extract(wave, info.fps, num_frames=num_frames)


def load_features(path: Path, info: ModelInfo, num_frames: int) -> np.ndarray:
    """Precomputed speech features [T, P, F] from an .npy file (``syncanim features``), checked against the model
    and cut or padded (last frame repeated) to ``num_frames``."""
    try:
        feats = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read features from {path.name}: {e}") from None
    if not isinstance(feats, np.ndarray):
        raise DataError(f"{path.name} is not a single array (.npy)", hint="write it with `syncanim features`")
    want = (info.audio_per_frame, info.audio_dim)
    if feats.ndim != 3 or feats.shape[1:] != want or len(feats) == 0:
        raise DataError(f"{path.name} holds features of shape {feats.shape}, the model expects [T, {want[0]}, {want[1]}]",
                        hint=f"compute them with the model's backend ({info.audio.get('kind')})")
    if abs(len(feats) - num_frames) > 2:
        raise DataError(f"{path.name} has {len(feats)} frames of features, the audio lasts {num_frames} frames")
    idx = np.minimum(np.arange(num_frames), len(feats) - 1)
    return feats[idx].astype(np.float32)


def speech_conditioning(model: HeadModel, info: ModelInfo, feats: np.ndarray, expressions: np.ndarray,
                        device: torch.device) -> Conditioning:
    """The conditioning of T frames of new speech: the mouth codes the model's predictor reads from the
    features [T, P, F] (the whole clip at once), the expressions [T, E], the mean lighting latent."""
    if feats.shape[1:] != (info.audio_per_frame, info.audio_dim):
        raise DataError(f"the audio backend gives {feats.shape[1:]} features per frame, the model expects "
                        f"{(info.audio_per_frame, info.audio_dim)}")
    f = torch.from_numpy(np.ascontiguousarray(feats)).to(device)
    with torch.no_grad():
        codes = model.predictor.predict(f)  # [T, C]
        return model.condition(FrameBatch(torch.from_numpy(np.ascontiguousarray(expressions)).to(device), codes=codes))


class PlanFrames:
    """The images of a replay plan from an asset video, decoded forward once per pass."""

    def __init__(self, path: Path, fps: float, plan: ReplayPlan) -> None:
        self.path, self.fps, self.plan = path, fps, plan
        join = int(plan.b[plan.w > 0].max()) + 1 if (plan.w > 0).any() else 0
        self.head = {k: img for k, img in iter_frames(path, fps, 0, join)} if join else {}

    def __iter__(self) -> Iterator[np.ndarray]:
        it: Iterator[tuple[int, np.ndarray]] | None = None
        expect = -1
        for a, b, w in zip(self.plan.a.tolist(), self.plan.b.tolist(), self.plan.w.tolist(), strict=False):
            if it is None or a != expect:
                it = iter_frames(self.path, self.fps, a, None)
            k, img = next(it)
            expect = a + 1
            if w > 0:
                img = ((1 - w) * img.astype(np.float32) + w * self.head[b].astype(np.float32)).round().astype(np.uint8)
            yield img


def face_mask(outline: np.ndarray, size: int, feather: int) -> np.ndarray:
    """A soft mask [H, W] float32 of the face polygon [K, 2] (pixels), feathered over ``feather`` px."""
    m = np.zeros((size, size), np.uint8)
    cv2.fillPoly(m, [outline.round().astype(np.int32)], 1)
    k = 2 * feather + 1
    m = cv2.erode(m, np.ones((feather, feather), np.uint8))
    return cv2.GaussianBlur(m.astype(np.float32), (k, k), 0)


def paste_face(rendered: np.ndarray, original: np.ndarray, outline: np.ndarray) -> np.ndarray:
    """The rendered face pasted into the original frame (``--portrait``): rendered, original [H, W, 3]
    uint8, the face polygon outline [K, 2] (pixels) -> [H, W, 3] uint8, the seam feathered over
    1/64 of the frame."""
    size = rendered.shape[0]
    m = face_mask(outline, size, max(2, size // 64))[..., None]  # [H, W, 1]
    return (m * rendered + (1 - m) * original).round().astype(np.uint8)


def pose_mode(render: RenderConfig, layout: ModelLayout, info: ModelInfo) -> str:
    """The pose a render uses: ``render.pose``, except replay with ``--portrait`` (the face is pasted into the
    original frames, whose heads keep their poses) and for a model without a motion syncer (a warning)."""
    if render.portrait and render.pose != "replay":
        log.info("--portrait keeps the original frames' head poses (pose replay); blinks follow them too")
        return "replay"
    if render.pose != "replay" and (info.motion is None or not layout.motion.is_file()):
        log.warning("this model has no motion syncer (trained by an earlier syncanim): poses and blinks replay "
                    "the training clip; train it again for motion from the speech")
        return "replay"
    return render.pose


def expressions_in(values: np.ndarray, order: list[str], fallback: np.ndarray) -> np.ndarray:
    """The syncer's expressions ``values: [T, 3]`` (:data:`syncanim.motion.syncer.EXPRESSIONS`) in the model's
    ``order``; a coefficient the syncer does not drive keeps its column of ``fallback: [T, E]``."""
    out = np.array(fallback, np.float32, copy=True)
    for j, name in enumerate(order):
        if name in MOTION_EXPRESSIONS:
            out[:, j] = values[:, MOTION_EXPRESSIONS.index(name)]
    return out


def render_batch(model: HeadModel, camera: Camera, cond: Conditioning, backgrounds: torch.Tensor, *, precision: str,
                 chunk: int, dense: DenseRects | None = None, autocast_cache: bool = True) -> torch.Tensor:
    """One call: B frames of the head over ``backgrounds`` [B, H, W, 3] float in [0, 1] -> images
    [B, H, W, 3] float, on the device.

    The model's :meth:`~syncanim.model.base.HeadModel.render_frames` under the run's resolved
    ``precision`` (fp32 | bf16 | fp16); ``chunk``: rays per ray-renderer call. ``dense`` (the
    static-shape layout) and ``autocast_cache`` (off inside CUDA graph capture) serve ``bench``.
    """
    with autocast(backgrounds.device, precision, cache=autocast_cache):
        return model.render_frames(camera, cond, backgrounds, dense=dense, chunk=chunk).images


def render_batch_uint8(model: HeadModel, camera: Camera, cond: Conditioning, backgrounds: np.ndarray, *,
                       precision: str, chunk: int) -> np.ndarray:
    """:func:`render_batch` from and to the host: backgrounds [B, H, W, 3] uint8 -> frames [B, H, W, 3] uint8."""
    images = render_batch(model, camera, cond, from_uint8(backgrounds, camera.rotation.device), precision=precision,
                          chunk=chunk)
    return to_uint8(images).cpu().numpy()


def render_person(model: HeadModel, torso: TorsoField, camera: Camera, cond: Conditioning, *, precision: str,
                  chunk: int, under: np.ndarray | None = None) -> np.ndarray:
    """B frames of the whole person: the torso for each frame's head pose over the background plate (or over
    ``under [B, H, W, 3] uint8``), the head over that -> ``[B, H, W, 3] uint8`` on the host."""
    rotation, translation = camera.poses_numpy()
    below = None if under is None else from_uint8(under, camera.rotation.device)
    backgrounds = torso.render(torso.codes(rotation, translation), chunk=chunk, under=below)
    return to_uint8(render_batch(model, camera, cond, backgrounds, precision=precision, chunk=chunk)).cpu().numpy()


def run_render(
    model_dir: str | os.PathLike[str],
    audio_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    render: RenderConfig,
    runtime: RuntimeConfig,
    *,
    registry: Registry | None = None,
    features: Path | None = None,
    progress: ProgressFn = no_progress,
) -> RenderResult:
    """Render ``audio_path`` spoken by the model in ``model_dir`` into the mp4 ``out``; with ``features`` (an .npy
    of the model's speech features for that audio) the feature backend is skipped."""
    import time

    reg = registry or default_registry()
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise DataError(f"the output must be an .mp4 file, got {out.name}")
    device = resolve_device(runtime)
    precision = resolve_precision(device, render.precision)
    model, info = load_model(model_dir, device)
    layout = ModelLayout(model_dir)
    replay = load_replay(layout)
    wave = read_audio(audio_path, info.sample_rate)
    if wave.rms() < 1e-4:
        raise DataError(f"{Path(audio_path).name} is silent", hint="give speech to render")
    n = max(1, math.ceil(wave.duration_s * info.fps - 1e-6))
    t0 = time.perf_counter()
    progress("audio", 0, 1)
    feats = load_features(Path(features), info, n) if features is not None else speech_features(info, wave, n, reg)
    pose = pose_mode(render, layout, info)
    plan = static_plan(n) if pose == "static" else replay_plan(n, replay.rotation, replay.translation, render.loop_join)
    rot, trans = blend_poses(replay.rotation, replay.translation, plan)
    expr = ((1 - plan.w)[:, None] * replay.expressions[plan.a] + plan.w[:, None] * replay.expressions[plan.b])
    if pose in ("audio", "static"):
        syncer = load_motion(layout, info, device)
        if syncer is not None:
            rms = frame_rms(wave.samples, wave.sample_rate, info.fps, 0, n)
            motion = generate_motion(syncer, torch.from_numpy(feats).to(device), rms, seed=render.seed)
            expr = expressions_in(motion.expressions, info.expressions, expr)
            if pose == "audio":
                rot, trans = motion.rotation, motion.translation
    cond = speech_conditioning(model, info, feats, expr.astype(np.float32), device)
    progress("audio", 1, 1)
    torso = None if render.portrait or not render.torso else load_torso(layout, info, device)
    source = layout.frames_video if render.portrait else layout.backgrounds_video
    images = iter(PlanFrames(source, info.fps, plan)) if torso is None else None
    mux = read_audio(audio_path, MUX_RATE)
    s = info.image_size
    t_render = 0.0
    with VideoWriter(out, info.fps, s, s, audio=mux, crf=render.crf) as writer:
        for start in range(0, n, render.frames_per_call):
            idx = np.arange(start, min(n, start + render.frames_per_call))
            base = [next(images) for _ in idx] if images is not None else []
            t1 = time.perf_counter()
            camera = Camera.from_numpy(rot[idx], trans[idx], info.focal, info.cx, info.cy, s, device)
            if torso is not None:
                frames = render_person(model, torso, camera, cond[idx], precision=precision, chunk=render.chunk_rays)
            else:
                frames = render_batch_uint8(model, camera, cond[idx], np.stack(base), precision=precision,
                                            chunk=render.chunk_rays)
            t_render += time.perf_counter() - t1
            for j, k in enumerate(idx):
                img = frames[j]
                if render.portrait:
                    outline = (1 - plan.w[k]) * replay.face_outline[plan.a[k]] + plan.w[k] * replay.face_outline[plan.b[k]]
                    img = paste_face(img, base[j], outline)
                writer.write(img)
            progress("render", int(idx[-1]) + 1, n)
    seconds = time.perf_counter() - t0
    return RenderResult(out, n, probe(out).duration_s, info.fps, seconds, n / max(t_render, 1e-9))
