"""``syncanim bench``: frames per second and per-stage latency of the path ``render`` and ``live`` run.

``end_to_end`` is that path: per call, the next B frames (``batch``) of speech pushed into a
:class:`~syncanim.stream.speech.SpeechStream`, the calls it completes prepared and drawn by an
:class:`~syncanim.stream.avatar.AvatarStream` (frames per call = B), back on the host as uint8 (with
``portrait``, pasted into the original frames), encoded. The stage rows time its parts on their own, with the
functions the stream calls, on calls that stream prepared:

1. ``audio_features``: a speech stream's push of the next B frames' samples (the backend's windowed
   extraction, or whole frames of context for backends without one).
2. ``conditioning``: an avatar stream's ``prepare`` of B frames of features: the motion syncer (head pose,
   blinks, brows; models with one), the mouth predictor over its window, the lighting latent.
3. ``torso`` (models with a torso): the torso for the frames' head poses over the plate, on the device.
4. ``head_render``: :func:`~syncanim.stream.draw.render_batch` of the call over that (or over its backdrops).
5. ``composite``: the frames back to the host as uint8 (:func:`~syncanim.model.frames.to_uint8`); with
   ``portrait``, the feathered paste of the face into the original frame.
6. ``encode``: H.264 (:class:`~syncanim.media.video.VideoWriter`, libx264 ``veryfast``) into a temporary
   file, frame by frame, after at least :data:`ENCODER_WARMUP_FRAMES` frames (x264's look-ahead full).

Every figure is per frame: a call's time divided by B, timed by :func:`~syncanim.bench.timing.time_calls`
(warm-up, device synchronisation around each call, median and p95). The speech cycles through a clip, so no
stage sees one frame over and over.

Renderers (``renderer``) of the ``head_render`` row and of ``end_to_end``; ``auto`` is what render and live
draw with: ``static`` on CUDA, ``compact`` on CPU (``render.cuda_graphs`` / ``live.cuda_graphs`` off: compact).

- ``compact``: rays only inside the projected head box, samples compacted to occupied cells, later runs of a
  ray's samples only while it is still visible. Its shapes depend on the data (host synchronisation).
- ``static``: the same images from tensors of fixed size (:class:`~syncanim.stream.graphs.StaticDraw`), on
  CUDA replayed from a CUDA graph. Its ``head_render`` row is the whole graphed call: the torso (no row of
  its own), the head, the conversion to uint8 and the copy to the host (the ``composite`` row then only
  pastes, with ``portrait``).
- ``dense`` (the ``head_render`` row only; ``end_to_end`` draws compact): static shapes with every sample
  evaluated, the ones compact skips masked to zero density; ``cuda_graphs`` captures it.

Without a model folder, the model is a randomly initialised one of the configured architecture around a
synthetic face (:mod:`syncanim.bench.synthetic`) with no torso or motion syncer. Its ray and sample counts
match a trained model of the same size on screen; a random field is half transparent everywhere in the
shell, so the compact renderer skips fewer samples than it does for a trained, opaque head.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from ..config import BenchConfig, PluginSection, RuntimeConfig, format_validation_error
from ..console import ProgressFn, no_progress
from ..device import resolve_device, resolve_precision, to_device
from ..errors import CheckpointError, ConfigError, DataError, KernelUnavailable, ResourceError
from ..registry import Registry, default_registry

if TYPE_CHECKING:
    from ..stream.graphs import GraphedStep

log = logging.getLogger(__name__)

STAGES = ("audio_features", "conditioning", "torso", "head_render", "composite", "encode", "end_to_end")
CLIP_FRAMES = 250  # frames of synthetic poses, expressions and audio (10 s at 25 fps), cycled through
POOL_CALLS = 8  # distinct prepared calls whose inputs the stage timings cycle through
ENCODER_WARMUP_FRAMES = 32  # frames written before the encode stage is timed (fills x264's look-ahead)
SYNTHETIC_SIZE = 512  # output size without a model folder when no resolution is given


def speech_context_s() -> float:
    """Seconds of audio before a call's frames that backends without windowed extraction get (as in the stream)."""
    from ..stream.speech import CONTEXT_S

    return CONTEXT_S


def bench_config(**options: Any) -> BenchConfig:
    """A :class:`BenchConfig` from keyword options; invalid values raise ConfigError naming the option."""
    try:
        return BenchConfig(**options)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, prefix="bench")) from e


@dataclass(frozen=True)
class StageTiming:
    """Milliseconds per frame of one stage. ``gpu_*``: CUDA-event time on the stream (CUDA only)."""

    median_ms: float
    p95_ms: float
    min_ms: float
    mean_ms: float
    gpu_median_ms: float | None = None
    gpu_p95_ms: float | None = None

    @classmethod
    def per_frame(cls, t: dict[str, float], batch: int) -> StageTiming:
        return cls(t["median_ms"] / batch, t["p95_ms"] / batch, t["min_ms"] / batch, t["mean_ms"] / batch,
                   t["gpu_median_ms"] / batch if "gpu_median_ms" in t else None,
                   t["gpu_p95_ms"] / batch if "gpu_p95_ms" in t else None)


@dataclass(frozen=True)
class BenchResult:
    """What ``syncanim bench`` measured. Every timing is per frame (a call's time / ``batch``)."""

    model: str  # "synthetic" or the model folder's name
    device: str  # "cpu" | "cuda"
    resolution: int
    batch: int
    precision: str  # the autocast actually used: fp32 | bf16 | fp16
    renderer: str  # compact | static | dense (resolved)
    compile: bool
    cuda_graphs: bool
    portrait: bool
    runs: int
    warmup: int
    audio_backend: str
    rays_per_frame: float  # camera rays rendered per frame (mean over the clip's poses)
    samples_per_ray: int
    stages: dict[str, StageTiming]  # keys: STAGES ("torso" only for a model with a torso)
    fps: float  # 1000 / end-to-end median ms per frame
    fps_p95: float  # 1000 / end-to-end p95 ms per frame (the rate sustained by 95% of calls)
    render_fps: float  # 1000 / head-render median ms per frame
    environment: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    peer: dict[str, Any] | None = None  # syncanim.bench.peer.peer_comparison, when a peer figure was given

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``from_json`` reads it back)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchResult:
        d = dict(data)
        d["stages"] = {k: StageTiming(**v) for k, v in d["stages"].items()}
        d["notes"] = list(d.get("notes", []))
        return cls(**d)

    table_columns = ("stage", "median ms/frame", "p95 ms/frame", "share of end-to-end")

    def table_rows(self) -> list[tuple[str, str, str, str]]:
        """Rows for a rich table (columns: :attr:`table_columns`): one per stage, then FPS."""
        e2e = self.stages["end_to_end"].median_ms
        rows = []
        for name in (n for n in STAGES if n in self.stages):
            t = self.stages[name]
            share = "" if name == "end_to_end" else f"{100 * t.median_ms / e2e:.0f} %" if e2e > 0 else ""
            rows.append((name.replace("_", " "), f"{t.median_ms:.2f}", f"{t.p95_ms:.2f}", share))
        rows.append(("frames per second", f"{self.fps:.1f}", f"{self.fps_p95:.1f}", ""))
        if self.peer:
            rows.append((f"vs {self.peer['peer']} ({self.peer['peer_ms']:.2f} ms)", f"{self.peer['ours_ms']:.2f}", "",
                         f"{self.peer['speedup']:.2f}x"))
        return rows


# --- compile ---------------------------------------------------------------------------------------


def compile_field(model, dynamic: bool) -> None:
    """Replace the field's MLPs (density and colour nets, after their first layers) by ``torch.compile``d versions, and compile
    them once on a few points so that a missing toolchain shows here. KernelUnavailable if it cannot. The fused field
    kernels (``model.fused_field``) do not run those nets: they are turned off, so the compiled nets are what is timed."""
    import torch

    f = model.field
    if model.config.fused_field != "off":
        log.info("compile: the field's fused kernels (model.fused_field = %s) are off; the compiled MLPs render",
                 model.config.fused_field)
        model.config = model.config.model_copy(update={"fused_field": "off"})
    hint = "run without compile; torch.compile needs a C++ compiler on CPU and Triton on CUDA"
    if not hasattr(torch, "compile"):
        raise KernelUnavailable(f"torch {torch.__version__} has no torch.compile", hint=hint)
    try:
        for name in ("density_net", "color_net"):  # the field runs a net's first layer on its own (split_linear)
            net = getattr(f, name)
            setattr(f, name, torch.nn.Sequential(net[0], torch.compile(net[1:], dynamic=dynamic)))
        dev = f.tables.device
        n = 37  # a few points of an odd count: the compile happens here, not inside a timed call
        with torch.no_grad():
            f(torch.rand(n, 3, device=dev) * 2 - 1, torch.nn.functional.normalize(torch.randn(n, 3, device=dev), dim=-1),
              torch.randn(n, model.config.audio_dim, device=dev), torch.rand(n, f.expr_gate.out_features, device=dev),
              model.latent_for(None, n))
    except RuntimeError as e:  # torch._dynamo's errors (BackendCompilerFailed, ...) are RuntimeErrors
        raise KernelUnavailable(f"torch.compile cannot compile the field's MLPs here: {str(e).splitlines()[0]}",
                                hint=hint) from e


# --- the subject: the avatar and its clip ------------------------------------------------------------


@dataclass
class _Subject:
    name: str
    avatar: Any  # syncanim.stream.avatar.Avatar on the device, its camera at the bench's size
    extractor: Any
    audio_backend: str
    wave: Any  # Waveform at the model's sample rate: the speech pushed, cycled
    frames: list[np.ndarray]  # M x [H, W, 3] uint8: drawn over without a torso (portrait: the originals), cycled
    notes: list[str]

    @property
    def model(self):
        return self.avatar.model

    @property
    def size(self) -> int:
        return self.avatar.info.image_size


def _synthetic_subject(cfg: BenchConfig, model_section: PluginSection, audio_section: PluginSection,
                       registry: Registry, device) -> _Subject:
    from pathlib import PurePath

    from ..model.folder import ModelInfo, Replay
    from ..model.head import EXPRESSIONS
    from ..stream.avatar import Avatar
    from . import synthetic as syn

    if model_section.kind != "nerf-head":
        raise ConfigError(f"bench without a model folder builds nerf-head models, not {model_section.kind!r}",
                          hint="give a trained model folder of that kind instead")
    _, head_cfg = registry.resolve("syncanim.renderers", model_section, where="model")
    extractor = registry.build("syncanim.asr", audio_section)
    size = cfg.resolution or SYNTHETIC_SIZE
    model, canonical = syn.synthetic_model(head_cfg, extractor.per_frame, extractor.dim, seed=cfg.seed)
    camera, distance = syn.synthetic_camera(size, canonical)
    fps, n, rate = 25.0, CLIP_FRAMES, 16000
    rot, trans = syn.synthetic_poses(n, distance, fps, cfg.seed)
    outlines = np.stack([syn.face_outline(canonical, r, t, camera) for r, t in zip(rot, trans, strict=True)])
    info = ModelInfo(model={"kind": "nerf-head"}, audio={"kind": audio_section.kind}, audio_per_frame=extractor.per_frame,
                     audio_dim=extractor.dim, num_latents=int(model.latents.shape[0]), expressions=list(EXPRESSIONS),
                     image_size=size, fps=fps, focal=camera.focal, cx=camera.cx, cy=camera.cy, dataset="",
                     sample_rate=rate, mouth={})
    replay = Replay(rot.astype(np.float32), trans.astype(np.float32),
                    syn.synthetic_expressions(n, len(EXPRESSIONS), cfg.seed), outlines.astype(np.float32), n)
    avatar = Avatar(Path(PurePath("synthetic")), model.to(device), info, replay, None, None, device)
    frames = [syn.synthetic_background(size, cfg.seed + i) for i in range(POOL_CALLS)]
    wave = syn.synthetic_speech(n / fps, rate, cfg.seed)
    return _Subject("synthetic", avatar, extractor, audio_section.kind, wave, frames,
                    ["synthetic subject: a randomly initialised model (half-transparent shell, so the compact "
                     "renderer skips fewer samples than for a trained head)"])


def _read_frames(path: Path, fps: float, count: int, size: int) -> list[np.ndarray]:
    import cv2

    from ..media.video import iter_frames

    out = []
    for _, img in iter_frames(path, fps, 0, None):
        out.append(img if img.shape[0] == size else cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA))
        if len(out) >= count:
            break
    return out


def _folder_subject(model_dir: Path, cfg: BenchConfig, registry: Registry, device,
                    render_settings: dict[str, Any] | None = None) -> _Subject:
    import dataclasses

    from ..model.folder import ModelLayout
    from ..stream.avatar import load_avatar
    from . import synthetic as syn

    avatar = load_avatar(model_dir, device, torso=not cfg.portrait, render_settings=render_settings)
    info, layout = avatar.info, ModelLayout(model_dir)
    extractor = registry.build("syncanim.asr", PluginSection(**info.audio))
    size = cfg.resolution or info.image_size
    if size != info.image_size:  # the same cameras at another size
        k = size / info.image_size
        avatar = dataclasses.replace(
            avatar, info=dataclasses.replace(info, image_size=size, focal=info.focal * k, cx=info.cx * k, cy=info.cy * k),
            replay=dataclasses.replace(avatar.replay, face_outline=(avatar.replay.face_outline * k).astype(np.float32)))
    notes = []
    source = layout.frames_video if cfg.portrait else layout.backgrounds_video
    frames = []
    if avatar.torso is None:
        if source.is_file():
            try:
                frames = _read_frames(source, info.fps, POOL_CALLS, size)
            except DataError as e:
                raise CheckpointError(f"{source} is unreadable: {e}", hint="the model folder is incomplete") from e
        if not frames:
            frames = [syn.synthetic_background(size, cfg.seed + i) for i in range(POOL_CALLS)]
            notes.append(f"{source.relative_to(layout.root)} is missing: synthetic backgrounds were used")
            log.info("bench: %s is missing; rendering over synthetic backgrounds", source)
    wave = syn.synthetic_speech(CLIP_FRAMES / info.fps, info.sample_rate, cfg.seed)
    return _Subject(model_dir.name, avatar, extractor, str(info.audio.get("kind")), wave, frames, notes)


# --- the measured path ------------------------------------------------------------------------


class _Path:
    """The path ``render`` and ``live`` run, for one subject, device and precision: speech pushed in blocks of B
    frames (:class:`~syncanim.stream.speech.SpeechStream`), each block's frames prepared and drawn
    (:class:`~syncanim.stream.avatar.AvatarStream`), encoded. ``end_to_end`` is that stream; the stage rows time
    its parts on their own, with the functions the stream calls, on calls it prepared."""

    def __init__(self, subject: _Subject, cfg: BenchConfig, device, precision: str, writer) -> None:
        from ..model.frames import DenseRects
        from ..stream.avatar import StreamSettings

        self.s, self.cfg, self.device, self.precision, self.writer = subject, cfg, device, precision, writer
        self.b = cfg.batch
        a = subject.avatar
        self.renderer = resolve_renderer(cfg.renderer, device)
        self.settings = StreamSettings(pose="audio" if a.syncer is not None else "replay", frames_per_call=self.b,
                                       chunk_rays=cfg.chunk_rays, precision=precision, portrait=cfg.portrait,
                                       static=self.renderer == "static")
        self.windowed = hasattr(subject.extractor, "extract_window") and hasattr(subject.extractor, "samples_needed")
        self.graphs: dict[int, GraphedStep] = {}  # the dense renderer's, per frames in a call
        self.hop = subject.wave.sample_rate / a.info.fps  # samples per frame
        rep = a.replay
        rects = subject.model.head_rects(self.camera(rep.rotation, rep.translation))  # [N, 4]
        self.dense = DenseRects.covering(rects, subject.size, device) if self.renderer == "dense" else None
        if self.dense is not None:
            self.rays_per_frame = float(self.dense.pixels)
        else:
            self.rays_per_frame = float(np.mean((rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])))
        # the measured path, and a speech stream and an avatar stream of their own for the
        # audio_features and conditioning rows
        self.speech, self.stream, self.pos, self.pending = self._open()
        self.speech_alone, self.prep_stream, self.pos_alone, _ = self._open()
        self.prep_known = 0

    def _open(self):
        from collections import deque

        from ..stream.avatar import AvatarStream
        from ..stream.speech import SpeechStream

        s = self.s
        speech = SpeechStream(s.extractor, s.avatar.info.fps, s.wave.sample_rate, max_frames=max(25, self.b))
        stream = AvatarStream(s.avatar, self.settings, backdrops=itertools.cycle(s.frames) if s.frames else None)
        return speech, stream, 0, deque()

    def camera(self, rotation: np.ndarray, translation: np.ndarray):
        """The cameras of head poses rotation [B, 3, 3], translation [B, 3], on the device."""
        from ..model.camera import Camera

        info = self.s.avatar.info
        return Camera.from_numpy(rotation, translation, info.focal, info.cx, info.cy, info.image_size, self.device)

    def _audio(self, pos: int, frames: int) -> tuple[np.ndarray, int]:
        """The clip's next samples for ``frames`` frames from sample ``pos`` (cycled) -> (samples, new pos)."""
        x = self.s.wave.samples
        stop = int(round((round(pos / self.hop) + frames) * self.hop))
        return np.take(x, np.arange(pos, stop), mode="wrap"), stop

    # 1. audio features: the next B frames' speech pushed
    def features(self, call: int):
        block, self.pos_alone = self._audio(self.pos_alone, self.b)
        return self.speech_alone.push(block)

    # 2. conditioning: the stream's prepare (motion syncer, mouth) of B frames of features
    def condition(self, feats, call: int) -> list:
        from ..stream.speech import FeatureBlock

        if not len(feats):
            return []
        calls = self.prep_stream.prepare(FeatureBlock(self.prep_known, feats.features, feats.rms))
        self.prep_known += len(feats)
        return calls

    # 3. torso and head, as AvatarStream.draw calls them
    def under(self, call):
        """What the head of ``call`` is drawn over, on the device: the torso for its poses, or its backdrops."""
        from ..model.frames import from_uint8

        a = self.s.avatar
        if a.torso is not None:
            return a.torso.render(a.torso.codes(call.rotation, call.translation), chunk=self.cfg.chunk_rays,
                                  size=self.s.size)
        return from_uint8(np.stack(call.backdrops), self.device)

    def render(self, call, backgrounds):

        from ..render.pipeline import render_batch

        camera = self.camera(call.rotation, call.translation)
        if self.renderer == "static":  # the whole call, as the stream draws it: [B, H, W, 3] uint8 on the host
            a = self.s.avatar
            drawer = a.static_draw(self.precision, a.torso is not None and not self.cfg.portrait)
            return drawer.draw(camera, call.cond, None if drawer.torso is not None else np.stack(call.backdrops))
        if self.dense is None:
            return render_batch(self.s.model, camera, call.cond, backgrounds, precision=self.precision,
                                chunk=self.cfg.chunk_rays)
        from ..model.frames import fixed_rects

        rects = self.s.model.head_rects(camera)
        _, offsets = fixed_rects(rects, self.s.size, (self.dense.width, self.dense.height))
        inputs = {"rotation": camera.rotation, "translation": camera.translation,
                  "offsets": to_device(offsets, self.device), "mouth": call.cond.mouth,
                  "expressions": call.cond.expressions, "latent": call.cond.latent, "backgrounds": backgrounds}
        if self.cfg.cuda_graphs:
            b = len(camera)
            if b not in self.graphs:  # the stream's last call may hold fewer frames
                from ..stream.graphs import GraphedStep

                self.graphs[b] = GraphedStep(self._dense_step, inputs)
            return self.graphs[b](**inputs)
        return self._dense_step(**inputs)

    def _dense_step(self, rotation, translation, offsets, mouth, expressions, latent, backgrounds):
        """The dense render of one call from tensors alone (what a CUDA graph captures)."""
        from ..model.camera import Camera
        from ..model.conditioning import Conditioning
        from ..model.frames import DenseRects
        from ..render.pipeline import render_batch

        info, dense = self.s.avatar.info, self.dense
        assert dense is not None
        return render_batch(self.s.model, Camera(rotation, translation, info.focal, info.cx, info.cy, info.image_size),
                            Conditioning(mouth, expressions, latent), backgrounds, precision=self.precision,
                            chunk=self.cfg.chunk_rays, dense=DenseRects(dense.width, dense.height, offsets),
                            autocast_cache=not self.cfg.cuda_graphs)

    # 4. composite: the frames back to the host (and the portrait paste)
    def download(self, images, call) -> list[np.ndarray]:
        from ..model.frames import to_uint8

        out = images if isinstance(images, np.ndarray) else to_uint8(images).cpu().numpy()  # [B, H, W, 3] uint8
        return self._paste(list(out), call)

    def _paste(self, images: list[np.ndarray], call) -> list[np.ndarray]:
        if not self.cfg.portrait:
            return images
        from ..render.pipeline import paste_face

        track = self.stream.track
        return [paste_face(img, under, track.outline(int(k)))
                for img, under, k in zip(images, call.backdrops, call.idx, strict=True)]

    # 5. encode
    def encode(self, frames: list[np.ndarray]) -> None:
        for f in frames:
            self.writer.write(f)

    def end_to_end(self, call: int) -> None:
        """The stream: B frames of speech pushed, the calls they complete prepared and drawn, encoded."""
        audio, self.pos = self._audio(self.pos, self.b)
        self.pending.extend(self.stream.prepare(self.speech.push(audio)))
        while self.pending:
            c = self.pending.popleft()
            drawn = self.stream.draw(c)
            self.encode(self._paste([f.image for f in drawn], c))

    def prime(self) -> None:
        """Push speech until the stream draws: its look-ahead filled, every later push draws B frames."""
        for _ in range(10_000):
            if self.stream.done:
                return
            self.end_to_end(0)
        raise RuntimeError("bench: the stream never drew a frame")


def resolve_renderer(renderer: str, device) -> str:
    """``auto`` -> what render and live draw with on ``device``: ``static`` on CUDA, else ``compact``."""
    if renderer == "auto":
        return "static" if device.type == "cuda" else "compact"
    return renderer


def _validate(cfg: BenchConfig, device) -> str:
    """The resolved precision; ConfigError for options this device or renderer cannot do."""
    precision = resolve_precision(device, cfg.precision)
    if cfg.cuda_graphs:
        if device.type != "cuda":
            raise ConfigError("cuda_graphs needs a CUDA device", hint="set runtime.device=cuda, or turn cuda_graphs off")
        if cfg.renderer != "dense":
            raise ConfigError("cuda_graphs captures the dense renderer; the static one (renderer=static, the "
                              "default on CUDA) is always replayed from CUDA graphs",
                              hint="use renderer=dense, or leave cuda_graphs off")
    return precision


def run_bench(
    bench: BenchConfig,
    runtime: RuntimeConfig,
    model_dir: str | os.PathLike[str] | None = None,
    *,
    model: PluginSection | None = None,
    audio: PluginSection | None = None,
    registry: Registry | None = None,
    progress: ProgressFn = no_progress,
) -> BenchResult:
    """Time the render path per stage for the model in ``model_dir``, or, without one, for a randomly
    initialised model of the architecture ``model`` (default: nerf-head defaults) with the audio
    backend ``audio`` (default: logmel). See the module docstring for what each stage covers.

    Raises ResourceError (no CUDA device, out of memory), ConfigError (an option this device cannot
    do: fp16 on CPU, CUDA graphs on CPU or with the compact renderer), KernelUnavailable (torch.compile
    or graph capture fails), CheckpointError (an unusable model folder).
    """
    import torch

    from .timing import environment, time_calls

    reg = registry or default_registry()
    device = resolve_device(runtime)
    precision = _validate(bench, device)
    torch.manual_seed(bench.seed)
    progress("load", 0, 1)
    if model_dir is not None:
        subject = _folder_subject(Path(model_dir), bench, reg, device, runtime.render_settings)
    else:
        subject = _synthetic_subject(bench, model or PluginSection(kind="nerf-head"),
                                     audio or PluginSection(kind="logmel"), reg, device)
    progress("load", 1, 1)
    if bench.compile:
        compile_field(subject.model, dynamic=not bench.cuda_graphs)
    log.info("bench: %s on %s, %dx%d, batch %d, %s, renderer %s%s%s", subject.name, device.type, subject.size,
             subject.size, bench.batch, precision, bench.renderer, ", compiled" if bench.compile else "",
             ", CUDA graphs" if bench.cuda_graphs else "")
    threads = torch.get_num_threads()
    if bench.threads is not None:
        torch.set_num_threads(bench.threads)
    try:
        with tempfile.TemporaryDirectory(prefix="syncanim-bench-") as tmp:
            from ..media.video import VideoWriter

            writer = VideoWriter(Path(tmp) / "bench.mp4", subject.avatar.info.fps, subject.size, subject.size, crf=bench.crf)
            try:
                path = _Path(subject, bench, device, precision, writer)
                stages = _measure(path, bench, device, time_calls, progress)
            finally:
                writer.abort()  # the encoded file is not kept
    except torch.OutOfMemoryError as e:
        raise ResourceError(f"out of memory on {device.type} at {subject.size}x{subject.size}, batch {bench.batch}",
                            hint="lower batch, resolution or chunk_rays") from e
    finally:
        used = torch.get_num_threads()
        torch.set_num_threads(threads)
    return BenchResult(
        model=subject.name, device=device.type, resolution=subject.size, batch=bench.batch, precision=precision,
        renderer=path.renderer, compile=bench.compile, cuda_graphs=bench.cuda_graphs, portrait=bench.portrait,
        runs=bench.runs, warmup=bench.warmup, audio_backend=subject.audio_backend,
        rays_per_frame=path.rays_per_frame, samples_per_ray=subject.model.config.render_samples or subject.model.config.samples, stages=stages,
        fps=1000.0 / stages["end_to_end"].median_ms, fps_p95=1000.0 / stages["end_to_end"].p95_ms,
        render_fps=1000.0 / stages["head_render"].median_ms, environment={**environment(), "torch_threads": used},
        notes=subject.notes + ([] if path.windowed else
                               [f"the {subject.audio_backend} backend has no windowed extraction: each call "
                                f"extracts its frames plus {speech_context_s():g} s of audio before them"]))


def _measure(path: _Path, cfg: BenchConfig, device, time_calls, progress: ProgressFn) -> dict[str, StageTiming]:
    """Prime the stream, prepare POOL_CALLS calls' inputs, then time each stage and the end-to-end call."""
    b = cfg.batch
    path.prime()
    pool, pool_feats = [], []
    while len(pool) < POOL_CALLS:
        feats = path.features(len(pool))
        if len(feats):
            pool_feats.append(feats)
        for c in path.condition(feats, len(pool)):
            bg = path.under(c)
            images = path.render(c, bg)
            images = images.clone() if path.graphs else images  # the graph overwrites its output
            pool.append((c, bg, images, path.download(images, c)))

    def stage(fn: Callable[[int], Any]) -> Callable[[], Any]:
        counter = itertools.count(POOL_CALLS)
        return lambda: fn(next(counter))

    def timed(name: str, fn: Callable[[], Any], warmup: int) -> StageTiming:
        t = time_calls(fn, device, warmup=warmup, runs=cfg.runs, events=True)
        timing = StageTiming.per_frame(t, b)
        log.info("bench: %-14s median %.2f ms/frame, p95 %.2f", name, timing.median_ms, timing.p95_ms)
        return timing

    torso = path.s.avatar.torso is not None
    static = path.renderer == "static"  # its head_render row draws the torso too
    jobs: list[tuple[str, Callable[[], Any], int]] = [
        ("audio_features", stage(path.features), cfg.warmup),
        ("conditioning", stage(lambda c: path.condition(pool_feats[c % len(pool_feats)], c)), cfg.warmup),
        *([("torso", stage(lambda c: path.under(pool[c % POOL_CALLS][0])), cfg.warmup)] if torso and not static else []),
        ("head_render", stage(lambda c: path.render(pool[c % POOL_CALLS][0], pool[c % POOL_CALLS][1])), cfg.warmup),
        ("composite", stage(lambda c: (None if torso or static else path.under(pool[c % POOL_CALLS][0]),
                                       path.download(pool[c % POOL_CALLS][2], pool[c % POOL_CALLS][0]))), cfg.warmup),
        ("encode", stage(lambda c: path.encode(pool[c % POOL_CALLS][3])),
         max(cfg.warmup, math.ceil(ENCODER_WARMUP_FRAMES / b))),
        ("end_to_end", stage(path.end_to_end), cfg.warmup),
    ]
    out: dict[str, StageTiming] = {}
    for i, (name, fn, warmup) in enumerate(jobs):
        progress("bench", i, len(jobs), name)
        out[name] = timed(name, fn, warmup)
    progress("bench", len(jobs), len(jobs))
    return out
