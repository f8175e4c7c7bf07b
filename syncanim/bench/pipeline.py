"""``syncanim bench``: frames per second and per-stage latency of the render path.

The measured path is the one ``syncanim render`` runs for each call of B frames (``batch``):

1. ``audio_features``: the model's audio backend on the window of audio those B frames need (for
   ``logmel``, :meth:`~syncanim.audio.logmel.LogMelExtractor.extract_window` over exactly
   ``samples_needed``; backends without windowed extraction get the frames' audio plus 1 s before
   it) -> ``[B, P, F]`` on the host.
2. ``conditioning``: the features to the device, appended to a ring of the last ``W - 1`` frames'
   features, and the model's conditioning of the B frames (:meth:`~syncanim.model.base.HeadModel.condition`:
   the mouth predictor over a window of ``past + future + 1`` frames, the code embedding, the frames'
   expressions, the lighting latent).
3. ``head_render``: the frames' cameras to the device and
   :func:`~syncanim.render.pipeline.render_batch`, the call ``syncanim render`` makes: head
   rectangles, rays -> shell samples -> field -> compositing, written over the background on the
   device -> ``[B, H, W, 3]`` float.
   For a model with a torso (:mod:`syncanim.model.torso`), ``torso``: the torso for the B frames' head
   poses over the background plate, on the device: what the head is rendered over.
4. ``composite``: the background frames to the device (models without a torso), and the finished frames back to the host as
   uint8 (:func:`~syncanim.model.frames.from_uint8`, :func:`~syncanim.model.frames.to_uint8`); with
   ``portrait``, the feathered paste of the face into the original frame
   (:func:`~syncanim.render.pipeline.paste_face`).
5. ``encode``: H.264 (:class:`~syncanim.media.video.VideoWriter`, libx264 ``veryfast``) into a
   temporary file, frame by frame. The encoder is warmed up with at least
   :data:`ENCODER_WARMUP_FRAMES` frames, so its look-ahead is full; the final flush is not timed.

``end_to_end`` runs 1-5 in sequence as one timed call. Every figure is per frame: a call's time
divided by B. Each stage is timed on its own (:func:`~syncanim.bench.timing.time_calls`: warm-up,
device synchronisation around each call, median and p95), on inputs that advance through a clip
(poses, expressions, audio and backgrounds cycle, as in a render), so no stage sees one frame
over and over.

Renderers (``renderer``):

- ``compact``: the model's own layout, the one ``render`` uses: rays only inside the projected head
  box, samples compacted to occupied cells, the back half of the shell only for rays the front half
  left visible. Its shapes depend on the data (host synchronisation).
- ``dense``: the same images with static shapes (:class:`~syncanim.model.frames.DenseRects`):
  fixed-size rectangles for all frames, every sample of every ray evaluated, the samples the compact
  renderer skips masked to zero density. More arithmetic, no data-dependent shapes; the only
  renderer that ``cuda_graphs`` can capture.

Without a model folder, the model is a randomly initialised one of the configured architecture around
a synthetic face (:mod:`syncanim.bench.synthetic`). Its ray and sample counts match a trained model
of the same size on screen; a random field is half transparent everywhere in the shell, so the
compact renderer skips fewer back-half samples than it does for a trained, opaque head.
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
from typing import Any

import numpy as np
from pydantic import ValidationError

from ..config import BenchConfig, PluginSection, RuntimeConfig, format_validation_error
from ..console import ProgressFn, no_progress
from ..device import resolve_device, resolve_precision
from ..errors import CheckpointError, ConfigError, DataError, KernelUnavailable, ResourceError
from ..registry import Registry, default_registry

log = logging.getLogger(__name__)

STAGES = ("audio_features", "conditioning", "torso", "head_render", "composite", "encode", "end_to_end")
CLIP_FRAMES = 250  # frames of synthetic poses, expressions and audio (10 s at 25 fps), cycled through
POOL_CALLS = 8  # distinct prepared calls whose inputs the stage timings cycle through
ENCODER_WARMUP_FRAMES = 32  # frames written before the encode stage is timed (fills x264's look-ahead)
CONTEXT_S = 1.0  # audio before a call's frames given to backends without windowed extraction
SYNTHETIC_SIZE = 512  # output size without a model folder when no resolution is given


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
    renderer: str  # compact | dense
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
        return rows


# --- compile ---------------------------------------------------------------------------------------


def compile_field(model, dynamic: bool) -> None:
    """Replace the field's MLPs (density and colour nets) by ``torch.compile``d versions, and compile
    them once on a few points so that a missing toolchain shows here. KernelUnavailable if it cannot."""
    import torch

    f = model.field
    hint = "run without compile; torch.compile needs a C++ compiler on CPU and Triton on CUDA"
    if not hasattr(torch, "compile"):
        raise KernelUnavailable(f"torch {torch.__version__} has no torch.compile", hint=hint)
    try:
        f.density_net = torch.compile(f.density_net, dynamic=dynamic)
        f.color_net = torch.compile(f.color_net, dynamic=dynamic)
        dev = f.tables.device
        n = 37  # a few points of an odd count: the compile happens here, not inside a timed call
        with torch.no_grad():
            f(torch.rand(n, 3, device=dev) * 2 - 1, torch.nn.functional.normalize(torch.randn(n, 3, device=dev), dim=-1),
              torch.randn(n, model.config.audio_dim, device=dev), torch.rand(n, f.expr_gate.out_features, device=dev),
              model.latent_for(None, n))
    except RuntimeError as e:  # torch._dynamo's errors (BackendCompilerFailed, ...) are RuntimeErrors
        raise KernelUnavailable(f"torch.compile cannot compile the field's MLPs here: {str(e).splitlines()[0]}",
                                hint=hint) from e


# --- CUDA graphs ------------------------------------------------------------------------------------


class GraphedStep:
    """A function of static-shape tensors captured once in a CUDA graph and replayed.

    ``fn(**inputs)`` must only launch device work (no host synchronisation, no data-dependent
    shapes). Calling copies new values into the captured input buffers and replays the graph; the
    returned tensor is the graph's own output buffer, overwritten by the next call.
    """

    def __init__(self, fn: Callable[..., Any], inputs: dict[str, Any], warmup: int = 3) -> None:
        import torch

        self.inputs = {k: v.clone() for k, v in inputs.items()}
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(stream):
                for _ in range(warmup):  # lazy initialisation (kernel loading, compilation) happens here
                    fn(**self.inputs)
            torch.cuda.current_stream().wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.output = fn(**self.inputs)
        except RuntimeError as e:
            if isinstance(e, torch.OutOfMemoryError):
                raise
            raise KernelUnavailable(f"CUDA graph capture of the render step failed: {str(e).splitlines()[0]}",
                                    hint="run without cuda_graphs") from e

    def __call__(self, **inputs: Any):
        for k, v in inputs.items():
            self.inputs[k].copy_(v, non_blocking=True)
        self.graph.replay()
        return self.output


# --- the subject: model, camera, clip -----------------------------------------------------------


@dataclass
class _Subject:
    name: str
    model: Any  # NerfHead on the device
    extractor: Any
    audio_backend: str
    wave: Any  # Waveform at the extractor's rate
    fps: float
    size: int
    focal: float
    cx: float
    cy: float
    rotation: np.ndarray  # [N, 3, 3] float32
    translation: np.ndarray  # [N, 3] float32
    expressions: np.ndarray  # [N, E] float32
    outlines: np.ndarray  # [N, K, 2] float32 face polygons (pixels)
    frames: list[np.ndarray]  # M x [H, W, 3] uint8: what the head is rendered over, cycled
    notes: list[str]
    torso: Any = None  # TorsoField on the device: the body under the head, for each pose (else the frames)


def _synthetic_subject(cfg: BenchConfig, model_section: PluginSection, audio_section: PluginSection,
                       registry: Registry, device) -> _Subject:
    from ..model.head import EXPRESSIONS
    from . import synthetic as syn

    if model_section.kind != "nerf-head":
        raise ConfigError(f"bench without a model folder builds nerf-head models, not {model_section.kind!r}",
                          hint="give a trained model folder of that kind instead")
    _, head_cfg = registry.resolve("syncanim.renderers", model_section, where="model")
    extractor = registry.build("syncanim.asr", audio_section)
    size = cfg.resolution or SYNTHETIC_SIZE
    model, canonical = syn.synthetic_model(head_cfg, extractor.per_frame, extractor.dim, seed=cfg.seed)
    camera, distance = syn.synthetic_camera(size, canonical)
    fps = 25.0
    n = CLIP_FRAMES
    rot, trans = syn.synthetic_poses(n, distance, fps, cfg.seed)
    outlines = np.stack([syn.face_outline(canonical, r, t, camera) for r, t in zip(rot, trans, strict=True)])
    frames = [syn.synthetic_background(size, cfg.seed + i) for i in range(POOL_CALLS)]
    wave = syn.synthetic_speech((n + cfg.batch) / fps + 1.0, 16000, cfg.seed)
    return _Subject("synthetic", model.to(device), extractor, audio_section.kind, wave, fps, size, camera.focal,
                    camera.cx, camera.cy, rot, trans, syn.synthetic_expressions(n, len(EXPRESSIONS), cfg.seed),
                    outlines, frames,
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


def _folder_subject(model_dir: Path, cfg: BenchConfig, registry: Registry, device) -> _Subject:
    from ..model.folder import ModelLayout, load_model, load_replay, load_torso
    from . import synthetic as syn

    model, info = load_model(model_dir, device)
    layout = ModelLayout(model_dir)
    replay = load_replay(layout)
    extractor = registry.build("syncanim.asr", PluginSection(**info.audio))
    size = cfg.resolution or info.image_size
    scale = size / info.image_size
    notes = []
    source = layout.frames_video if cfg.portrait else layout.backgrounds_video
    if source.is_file():
        try:
            frames = _read_frames(source, info.fps, POOL_CALLS, size)
        except DataError as e:
            raise CheckpointError(f"{source} is unreadable: {e}", hint="the model folder is incomplete") from e
    else:
        frames = []
    if not frames:
        frames = [syn.synthetic_background(size, cfg.seed + i) for i in range(POOL_CALLS)]
        notes.append(f"{source.relative_to(layout.root)} is missing: synthetic backgrounds were used")
        log.info("bench: %s is missing; rendering over synthetic backgrounds", source)
    n = len(replay.rotation)
    wave = syn.synthetic_speech((n + cfg.batch) / info.fps + 1.0, info.sample_rate, cfg.seed)
    torso = None if cfg.portrait else load_torso(layout, info, device)
    return _Subject(model_dir.name, model, extractor, str(info.audio.get("kind")), wave, info.fps, size,
                    info.focal * scale, info.cx * scale, info.cy * scale, replay.rotation.astype(np.float32),
                    replay.translation.astype(np.float32), replay.expressions.astype(np.float32),
                    (replay.face_outline * scale).astype(np.float32), frames, notes, torso)


# --- the measured path ------------------------------------------------------------------------


class _Path:
    """The per-call stages of the render path for one subject, device and precision."""

    def __init__(self, subject: _Subject, cfg: BenchConfig, device, precision: str, writer) -> None:
        import torch

        self.s, self.cfg, self.device, self.precision, self.writer = subject, cfg, device, precision, writer
        self.b = cfg.batch
        m = subject.model
        self.window = m.predictor.window
        self.ring = torch.zeros(self.window - 1 + self.b, subject.extractor.per_frame, subject.extractor.dim,
                                device=device)  # [W - 1 + B, P, F]: the last frames' features
        # frames conditioned (rows of the ring): the newest ones whose look-ahead has arrived
        self.local = torch.arange(self.b, device=device) + m.predictor.past
        self.n = len(subject.rotation)
        self.windowed = hasattr(subject.extractor, "extract_window") and hasattr(subject.extractor, "samples_needed")
        self.graph: GraphedStep | None = None
        from ..model.frames import DenseRects

        rects = m.head_rects(self.camera(np.arange(self.n)))  # [N, 4]
        self.dense = DenseRects.covering(rects, subject.size, device) if cfg.renderer == "dense" else None
        if self.dense is not None:
            self.rays_per_frame = float(self.dense.pixels)
        else:
            self.rays_per_frame = float(np.mean((rects[:, 2] - rects[:, 0]) * (rects[:, 3] - rects[:, 1])))

    def camera(self, idx: np.ndarray):
        """The cameras of clip frames ``idx`` [B], on the device."""
        from ..model.camera import Camera

        s = self.s
        return Camera.from_numpy(s.rotation[idx], s.translation[idx], s.focal, s.cx, s.cy, s.size, self.device)

    def frames_of(self, call: int) -> np.ndarray:
        """The clip frames [B] of call number ``call``."""
        start = (call * self.b) % self.n
        return (start + np.arange(self.b)) % self.n

    # 1. audio features
    def features(self, call: int) -> np.ndarray:
        from ..audio.waveform import Waveform

        s = self.s
        k0 = call * self.b % self.n
        k1 = k0 + self.b
        wave = s.wave
        if self.windowed:
            a, b = s.extractor.samples_needed(k0, k1, s.fps)
            lo = max(0, a)
            win = Waveform(wave.samples[lo:max(lo + 1, b)], wave.sample_rate)
            return s.extractor.extract_window(win, lo, s.fps, k0, k1)  # [B, P, F]
        c0 = max(0, k0 - math.ceil(CONTEXT_S * s.fps))
        a, b = int(c0 / s.fps * wave.sample_rate), int(math.ceil(k1 / s.fps * wave.sample_rate))
        feats = s.extractor.extract(Waveform(wave.samples[a:b], wave.sample_rate), s.fps, num_frames=k1 - c0)
        return feats[-self.b:]

    # 2. conditioning
    def condition(self, feats: np.ndarray, call: int):
        import torch

        from ..model.conditioning import FrameBatch

        idx = self.frames_of(call)
        new = torch.from_numpy(np.ascontiguousarray(feats)).to(self.device)  # [B, P, F]
        self.ring = torch.cat([self.ring[self.b:], new])
        expr = torch.from_numpy(self.s.expressions[idx]).to(self.device)  # [B, E]
        with torch.no_grad():
            return self.s.model.condition(FrameBatch(expr, features=self.ring, frames=self.local))

    # 3. head render
    def render(self, cond, backgrounds, call: int):
        import torch

        from ..render.pipeline import render_batch

        idx = self.frames_of(call)
        camera = self.camera(idx)
        if self.dense is None:
            return render_batch(self.s.model, camera, cond, backgrounds, precision=self.precision,
                                chunk=self.cfg.chunk_rays)
        inputs = {"rotation": camera.rotation, "translation": camera.translation,
                  "offsets": self.dense.offsets[torch.from_numpy(idx).to(self.device)], "mouth": cond.mouth,
                  "expressions": cond.expressions, "latent": cond.latent, "backgrounds": backgrounds}
        if self.cfg.cuda_graphs:
            if self.graph is None:
                self.graph = GraphedStep(self._dense_step, inputs)
            return self.graph(**inputs)
        return self._dense_step(**inputs)

    def _dense_step(self, rotation, translation, offsets, mouth, expressions, latent, backgrounds):
        """The dense render of one call from tensors alone (what a CUDA graph captures)."""
        from ..model.camera import Camera
        from ..model.conditioning import Conditioning
        from ..model.frames import DenseRects
        from ..render.pipeline import render_batch

        s, dense = self.s, self.dense
        assert dense is not None
        return render_batch(s.model, Camera(rotation, translation, s.focal, s.cx, s.cy, s.size),
                            Conditioning(mouth, expressions, latent), backgrounds, precision=self.precision,
                            chunk=self.cfg.chunk_rays, dense=DenseRects(dense.width, dense.height, offsets),
                            autocast_cache=not self.cfg.cuda_graphs)

    # 4. composite: backgrounds up, finished frames down (and the portrait paste)
    def upload(self, call: int):
        """What the head of call ``call`` is rendered over, on the device: the torso for its poses, or background frames."""
        from ..model.frames import from_uint8

        s = self.s
        if s.torso is not None:
            idx = self.frames_of(call)
            return s.torso.render(s.torso.codes(s.rotation[idx], s.translation[idx]), chunk=self.cfg.chunk_rays,
                                  size=s.size)
        base = np.stack([self.s.frames[(call + j) % len(self.s.frames)] for j in range(self.b)])  # [B, H, W, 3]
        return from_uint8(base, self.device)

    def download(self, images, call: int) -> list[np.ndarray]:
        from ..model.frames import to_uint8

        out = to_uint8(images).cpu().numpy()  # [B, H, W, 3] uint8
        if not self.cfg.portrait:
            return list(out)
        from ..render.pipeline import paste_face

        s, idx = self.s, self.frames_of(call)
        return [paste_face(out[j], s.frames[(call + j) % len(s.frames)], s.outlines[k]) for j, k in enumerate(idx)]

    # 5. encode
    def encode(self, frames: list[np.ndarray]) -> None:
        for f in frames:
            self.writer.write(f)

    def end_to_end(self, call: int) -> None:
        feats = self.features(call)
        cond = self.condition(feats, call)
        bg = self.upload(call)
        images = self.render(cond, bg, call)
        self.encode(self.download(images, call))


def _validate(cfg: BenchConfig, device) -> str:
    """The resolved precision; ConfigError for options this device or renderer cannot do."""
    precision = resolve_precision(device, cfg.precision)
    if cfg.cuda_graphs:
        if device.type != "cuda":
            raise ConfigError("cuda_graphs needs a CUDA device", hint="set runtime.device=cuda, or turn cuda_graphs off")
        if cfg.renderer != "dense":
            raise ConfigError("cuda_graphs is not supported for the compact renderer: its sample compaction has "
                              "data-dependent shapes, which a CUDA graph cannot capture",
                              hint="use renderer=dense (static shapes, same images, every sample evaluated)")
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
        subject = _folder_subject(Path(model_dir), bench, reg, device)
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

            writer = VideoWriter(Path(tmp) / "bench.mp4", subject.fps, subject.size, subject.size, crf=bench.crf)
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
        renderer=bench.renderer, compile=bench.compile, cuda_graphs=bench.cuda_graphs, portrait=bench.portrait,
        runs=bench.runs, warmup=bench.warmup, audio_backend=subject.audio_backend,
        rays_per_frame=path.rays_per_frame, samples_per_ray=subject.model.config.samples, stages=stages,
        fps=1000.0 / stages["end_to_end"].median_ms, fps_p95=1000.0 / stages["end_to_end"].p95_ms,
        render_fps=1000.0 / stages["head_render"].median_ms, environment={**environment(), "torch_threads": used},
        notes=subject.notes + ([] if path.windowed else
                               [f"the {subject.audio_backend} backend has no windowed extraction: each call "
                                f"extracts its frames plus {CONTEXT_S:g} s of audio before them"]))


def _measure(path: _Path, cfg: BenchConfig, device, time_calls, progress: ProgressFn) -> dict[str, StageTiming]:
    """Prepare POOL_CALLS calls' inputs, then time each stage and the end-to-end call."""
    b = cfg.batch
    pool = []
    for c in range(POOL_CALLS):
        feats = path.features(c)
        cond = path.condition(feats, c)
        bg = path.upload(c)
        images = path.render(cond, bg, c)
        images = images.clone() if path.graph is not None else images  # the graph overwrites its output
        frames = path.download(images, c)
        pool.append((feats, cond, bg, images, frames))

    def stage(fn: Callable[[int], Any]) -> Callable[[], Any]:
        counter = itertools.count(POOL_CALLS)
        return lambda: fn(next(counter))

    def timed(name: str, fn: Callable[[], Any], warmup: int) -> StageTiming:
        t = time_calls(fn, device, warmup=warmup, runs=cfg.runs, events=True)
        timing = StageTiming.per_frame(t, b)
        log.info("bench: %-14s median %.2f ms/frame, p95 %.2f", name, timing.median_ms, timing.p95_ms)
        return timing

    jobs: list[tuple[str, Callable[[], Any], int]] = [
        ("audio_features", stage(path.features), cfg.warmup),
        ("conditioning", stage(lambda c: path.condition(pool[c % POOL_CALLS][0], c)), cfg.warmup),
        ("head_render", stage(lambda c: path.render(pool[c % POOL_CALLS][1], pool[c % POOL_CALLS][2], c)), cfg.warmup),
        *([("torso", stage(path.upload), cfg.warmup)] if path.s.torso is not None else []),
        ("composite", stage(lambda c: (None if path.s.torso is not None else path.upload(c),
                                       path.download(pool[c % POOL_CALLS][3], c))), cfg.warmup),
        ("encode", stage(lambda c: path.encode(pool[c % POOL_CALLS][4])),
         max(cfg.warmup, math.ceil(ENCODER_WARMUP_FRAMES / b))),
        ("end_to_end", stage(path.end_to_end), cfg.warmup),
    ]
    out: dict[str, StageTiming] = {}
    for i, (name, fn, warmup) in enumerate(jobs):
        progress("bench", i, len(jobs), name)
        out[name] = timed(name, fn, warmup)
    progress("bench", len(jobs), len(jobs))
    return out
