"""``syncanim render MODEL --audio speech.wav``: the person saying new speech, as an mp4 with the audio.

The render is the stream ``syncanim live`` runs (:mod:`syncanim.stream`), fed a whole file: audio of any
common format and rate -> features from the backend the model was trained with, one second of audio at
a time (:class:`~syncanim.stream.speech.SpeechStream`) -> mouth codes, head pose, brows and blinks from
the speech (the model's motion syncer; or replayed from the training track, looped with smooth joins;
or held still) -> the model's torso for each head pose over the background plate and the head over it
(models without a torso: the head over the replayed training frames' bodies; ``--portrait``: pasted
into the original frames, keeping their poses) -> H.264 with the speech muxed in (AAC).

Every call of B frames runs :func:`~syncanim.stream.draw.render_batch` (the model's
:meth:`~syncanim.model.base.HeadModel.render_frames` under the run's precision): the renderer here,
``live``, ``render --split val``, ``eval`` and ``bench`` alike.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..audio.framing import frame_rms
from ..audio.waveform import read_audio
from ..config import RenderConfig, RuntimeConfig
from ..console import ProgressFn, no_progress
from ..data.files import writable_file
from ..device import resolve_device, resolve_precision
from ..errors import DataError
from ..media.video import VideoWriter, probe
from ..model.folder import ModelInfo, ModelLayout, read_info
from ..registry import Registry, default_registry
from ..stream.avatar import AvatarStream, StreamSettings, load_avatar
from ..stream.draw import render_batch, render_batch_uint8, render_person
from ..stream.speech import FeatureBlock, build_extractor, stream_features

__all__ = ["RenderResult", "load_features", "paste_face", "pose_mode", "render_batch", "render_batch_uint8",
           "render_person", "run_render"]

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
        if not layout.weights.is_file():
            return "replay"  # no weights yet either: loading says so, the one message that matters
        log.warning("this model has no motion syncer (trained by an earlier syncanim): poses and blinks replay "
                    "the training clip; train it again for motion from the speech")
        return "replay"
    return render.pose


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
    writable_file(out)  # before the model loads and the speech is heard
    device = resolve_device(runtime)
    precision = resolve_precision(device, render.precision)
    layout = ModelLayout(model_dir)
    info = read_info(model_dir)
    pose = pose_mode(render, layout, info)
    avatar = load_avatar(model_dir, device, syncer=pose != "replay", torso=render.torso and not render.portrait,
                         render_settings=runtime.render_settings)
    wave = read_audio(audio_path, info.sample_rate)
    if wave.rms() < 1e-4:
        raise DataError(f"{Path(audio_path).name} is silent", hint="give speech to render")
    n = max(1, math.ceil(wave.duration_s * info.fps - 1e-6))
    t0 = time.perf_counter()
    progress("audio", 0, 1)
    if features is not None:
        feats = load_features(Path(features), info, n)
        speech = FeatureBlock(0, feats, frame_rms(wave.samples, wave.sample_rate, info.fps, 0, n))
    else:
        extractor = build_extractor(dict(info.audio), reg, device)
        speech = stream_features(extractor, wave, info.fps, n)
    progress("audio", 1, 1)
    settings = StreamSettings(pose=pose, seed=render.seed, loop_join=render.loop_join,
                              frames_per_call=render.frames_per_call, chunk_rays=render.chunk_rays,
                              precision=precision, portrait=render.portrait,
                              static=render.cuda_graphs and device.type == "cuda", mouth_level=render.mouth_level,
                              mouth_support=render.mouth_support)
    stream = AvatarStream(avatar, settings)
    mux = read_audio(audio_path, MUX_RATE)
    s = info.image_size
    t_render = 0.0
    with VideoWriter(out, info.fps, s, s, audio=mux, crf=render.crf) as writer:
        step = max(1, render.frames_per_call)
        for start in range(0, n + step, step):
            t1 = time.perf_counter()
            if start < n:
                block = FeatureBlock(start, speech.features[start:start + step], speech.rms[start:start + step])
                frames = stream.push(block)
            else:
                frames = stream.flush()
            t_render += time.perf_counter() - t1
            for f in frames:
                img = f.image
                assert img is not None
                if render.portrait:
                    img = paste_face(img, f.backdrop, stream.track.outline(f.index))
                writer.write(img)
            if frames:
                progress("render", frames[-1].index + 1, n)
    seconds = time.perf_counter() - t0
    return RenderResult(out, n, probe(out).duration_s, info.fps, seconds, n / max(t_render, 1e-9))
