"""pydantic models for every section, TOML preset loading and ``--set`` override merging.

Precedence, lowest first: model defaults < preset (``extends = "base"`` chains) < ``--set a.b=value``
< explicit CLI options. Configs are frozen: anything derived from them is computed, never written back.
"""

from __future__ import annotations

import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError

CONFIG_VERSION = 1


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PluginSection(BaseModel):
    """A config section that names a registered component (``kind``) plus that component's options.

    The options are validated against the component's own config model by the registry.
    """

    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RuntimeConfig(Frozen):
    device: Literal["auto", "cpu", "cuda"] = "auto"  # "auto": cuda when present, logged
    workers: int = Field(0, ge=0)  # CPU worker processes for prep; 0 = one per core
    seed: int = 0
    # settings of a trained model's renderer that change only how it renders (its config's ``render_only``, e.g.
    # render_samples), over the ones model.json keeps; for render, eval, live and bench:
    #   --set runtime.render_settings.render_samples=6
    render_settings: dict[str, Any] = Field(default_factory=dict)


class PrepConfig(Frozen):
    fps: float = Field(25.0, gt=0, le=120)  # frames are resampled to this rate (with a warning)
    size: int = Field(512, ge=64, le=2048)  # output frames are size x size
    # framing: "auto" = whole frame if square, else a square around the subject; "subject" = always a
    # square around the subject; "center" = the largest centred square; "none" = pad to a square
    crop: Literal["auto", "subject", "center", "none"] = "auto"
    crop_scale: float = Field(3.0, gt=1.0, le=8.0)  # subject square side / face height
    scan_frames: int = Field(48, ge=4)  # frames sampled (keyframes first) to frame the subject
    max_gap_frames: int = Field(12, ge=0)  # face gaps up to this many frames are interpolated
    sample_rate: int = Field(16000, ge=8000)  # audio is resampled to this rate, mono
    val_fraction: float = Field(1 / 11, gt=0, lt=0.5)  # the last share of frames is the val split
    chunk_frames: int = Field(250, ge=16)  # frames per resumable work unit
    jpeg_quality: int = Field(95, ge=50, le=100)
    min_face_px: int = Field(80, ge=16)  # warn when the face is smaller than this at output size
    # warn below this: lip sync is learned from the clip's own speech, and on cnn2 the mouth predictor's held-out
    # correlation still rose by about 0.06 per doubling of the footage at the clip's 57 s (mouth_predictor_cnn2_footage)
    min_duration_s: float = Field(120.0, ge=0)
    min_train_s: float = Field(5.0, ge=0)  # refuse below this: too short to train (held-out frames, speech windows)
    decoder: PluginSection = PluginSection(kind="pyav")
    landmarks: PluginSection = PluginSection(kind="mediapipe-facemesh")
    masks: PluginSection = PluginSection(kind="mediapipe-geometric")
    background: PluginSection = PluginSection(kind="median-inpaint")
    head_pose: PluginSection = PluginSection(kind="landmark-ba")
    expressions: PluginSection = PluginSection(kind="landmark-geometry")
    audio: PluginSection = PluginSection(kind="whisper")


class MouthTrainConfig(Frozen):
    """How the mouth predictor (speech -> mouth code) is fitted, and how the head sees the codes (``[train.mouth]``)."""

    steps: int = Field(800, ge=0)  # steps of each of the two passes (calibration, final); 0 = no fitting
    batch: int = Field(1024, ge=1)  # frames per step ...
    run: int = Field(64, ge=1)  # ... in runs of this many consecutive frames (they share their windows' work)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    # spread (log-normal) of a random factor each run's features are scaled by about their mean: keeps
    # the mouth moving on speech that reaches the encoder softer than the subject's (0 = off)
    feature_scale: float = Field(0.3, ge=0.0)
    # the targets are the codes smoothed over this many frames (Hann window; 1 = as measured): the landmarks jitter
    # from frame to frame, and the jitter is not in the speech (cnn2, 5 parts held out in turn: see ema)
    target_taps: int = Field(3, ge=1, le=9)
    # the predictor kept is an exponential moving average of its weights over the steps, this decay a step (0 = the
    # last step's weights); with target_taps 3, held-out mouth correlation 0.761 -> 0.772 on cnn2 (5 parts, CPU)
    ema: float = Field(0.995, ge=0.0, lt=1.0)
    # the loss also weighs the error of the mouth opening (the gap between the inner lips), this much against the
    # mouth's shape as a whole (0 = the shape alone; syncanim.train.mouth.opening_loss_weight). cnn2, mouth opening
    # as shown: held-out correlation 0.729 -> 0.741 (seeds 0-2), five parts held out in turn 0.769 -> 0.778 (10: 0.778)
    opening_weight: float = Field(3.0, ge=0.0)
    holdout: float = Field(0.15, ge=0.0, lt=0.5)  # share of the training frames the gain is calibrated on
    max_gain: float = Field(1.6, ge=1.0)  # the calibrated gain never exceeds this (1 = no calibration)
    # the head renders about 0.75 of the mouth motion its code asks for (measured on held-out frames
    # driven by their real codes), so the predicted codes ask for this much more on top of the calibration
    render_gain: float = Field(1.3, ge=1.0, le=2.0)
    # each component's calibrated gain is also multiplied by its held-out correlation (at least 0.05) to this power,
    # then all by one factor that keeps the spread of the mouth opening (syncanim.train.mouth.shaped_gain). Off (0)
    # by default: 1 raised cnn2's held-out mouth correlation 0.741 -> 0.758 before rendering (0.68-0.69 -> 0.73-0.75
    # rendered), but lowered it 0.778 -> 0.744 over five parts of the clip held out in turn (README, lip sync)
    shape_shrink: float = Field(0.0, ge=0.0)
    # the predicted shape across the mouth opening (all of the code but its part along the opening's direction) is
    # multiplied by this (1 = as predicted), or by the factor with the least squared error on the calibration's
    # held-out frames ("fit"), or per component by its held-out correlation ("corr"); the opening stays as predicted
    # (syncanim.train.mouth.cross_mix). "corr" against 1 on cnn2, predictors refitted on one head: CPU (256 px) held-out
    # mouth correlation 0.61 -> 0.64, LMD 2.24 -> 2.00 px; GPU (512 px) 0.72 -> 0.70, LMD 2.59 -> 2.49 px (README)
    cross_shape: Annotated[float, Field(ge=0.0, le=1.0)] | Literal["fit", "corr"] = "corr"
    # the head is trained on the real codes from the landmarks plus this much noise (code units: one
    # standard deviation of the subject's own mouth motion), so it also renders slightly imperfect codes
    code_noise: float = Field(0.1, ge=0.0)
    # prepped datasets of other speakers (or other recordings of the subject), with the subject's speech features,
    # whose speech and mouths also train the predictor, each through an output layer of its own
    # (syncanim.train.mouth.OtherClip). cnn2 with a second speaker's 60 s clip: the predictor's held-out mouth
    # correlation 0.775 -> 0.787 over five parts of the clip held out in turn; rendered by three GPU heads
    # 0.697 / 0.716 / 0.704 -> 0.682 / 0.729 / 0.742 (README, speech features)
    other_clips: tuple[str, ...] = ()
    other_weight: float = Field(1.0, ge=0.0)  # each other clip's loss, against the subject's

    @field_validator("target_taps")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"must be odd (a window centred on its frame), got {v}")
        return v


class MotionTrainConfig(Frozen):
    """The motion syncer (speech -> head pose, brows, blinks; :mod:`syncanim.motion.syncer`) and its fit
    (``[train.motion]``)."""

    steps: int = Field(400, ge=0)  # steps of each of the two passes (calibration, final); 0 = speech ignored
    batch: int = Field(512, ge=1)  # frames per step ...
    run: int = Field(64, ge=1)  # ... in runs of this many consecutive frames
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-2, ge=0)
    feature_scale: float = Field(0.3, ge=0.0)  # random loudness of each run's features, as for the mouth
    holdout: float = Field(0.15, ge=0.0, lt=0.5)  # share of the training frames the spread is calibrated on
    hidden: int = Field(64, ge=4)
    layers: int = Field(2, ge=1, le=8)
    past: int = Field(12, ge=0, le=64)  # frames of speech before the frame the network reads
    future: int = Field(2, ge=0, le=10)  # frames after it: the look-ahead a live stream waits for (2 = 80 ms at 25 fps)
    cutoff_hz: float = Field(2.5, gt=0.0)  # the motion's low-pass: smooth, still quick enough for nods
    # share of the unpredicted motion's drive drawn at random (the rest follows the speech; silence keeps only this)
    noise_share: float = Field(0.3, ge=0.0, le=1.0)
    min_residual: float = Field(0.5, ge=0.0, le=1.0)  # the unpredicted motion keeps at least this share of the spread


class TorsoTrainConfig(Frozen):
    """The torso field (:mod:`syncanim.model.torso`): its shape and its fit after the head (``[train.torso]``)."""

    steps: int = Field(2000, ge=0)  # 0 = no torso: renders show the training frames' bodies
    frames_per_step: int = Field(8, ge=1)
    pixels: int = Field(16384, ge=64)  # pixels per step ...
    person_share: float = Field(0.75, ge=0.0, le=1.0)  # ... this share inside the box around the person
    lr_planes: float = Field(2e-2, gt=0)
    lr_net: float = Field(2e-3, gt=0)
    levels: int = Field(6, ge=1, le=10)  # feature planes, resolutions from base_res to max_res (at 512 px)
    base_res: int = Field(16, ge=2)
    max_res: int = Field(256, ge=4)
    features: int = Field(4, ge=1, le=16)  # channels per plane
    hidden: int = Field(64, ge=8)
    frequencies: int = Field(4, ge=0, le=10)  # of the position encoding the offset MLP reads
    max_offset: float = Field(0.08, gt=0.0, le=0.5)  # largest offset a pose gives a pixel, a share of the image side
    # scene codes (training only): what the pose does not explain (a camera that moved, light, clothes settling)
    # is given a code that changes slowly through the clip, knots this many training frames apart (0: none);
    # renders take the clip's last code, folded into the weights
    scene_frames: int = Field(100, ge=0)
    scene_dim: int = Field(4, ge=1, le=32)


class TrainConfig(Frozen):
    """How the head is trained. Two stages, as in the reference: the whole head, then the lips."""

    head_steps: int = Field(20000, ge=0)  # optimisation steps of the head stage
    lips_steps: int = Field(4000, ge=0)  # steps of the lip fine-tuning stage (patches around the mouth)
    max_minutes: float | None = Field(None, gt=0)  # wall budget: the step counts shrink to fit it (measured
    # after the first steps, then fixed, so a resumed run follows the same schedule)
    rays: int = Field(32768, ge=64)  # rays per step (more = smoother gradients, slower steps)
    frames_per_step: int = Field(8, ge=1)  # the rays of a step come from this many random frames
    head_share: float = Field(0.75, ge=0.0, le=1.0)  # share of rays drawn inside the head's rectangle
    # share drawn in the lip patch around the mouth, before head_share; with the defaults (0.25 + 0.75)
    # every ray falls in the head's rectangle, which is all a render covers
    mouth_share: float = Field(0.25, ge=0.0, le=1.0)
    # share drawn in the box around the eyes, after the mouth's: a blink shuts a few pixels in a few frames,
    # which rays spread over the head rarely see
    eye_share: float = Field(0.0, ge=0.0, le=1.0)
    # training frames are drawn by ray batches with weight 1 + blink_boost * eye closure (0: all alike), so the
    # few frames with shut eyes are seen often enough for the head to learn to blink
    blink_boost: float = Field(0.0, ge=0.0, le=50.0)
    # training frames are drawn, by ray batches and lip patches, with weight 1 + mouth_boost * how open the mouth is
    # (0 at the clip's median opening, 1 at its 95th percentile; syncanim.data.batches.mouth_weight), so the head
    # learns the few wide-open frames as well as the many near-closed ones (0: all alike)
    mouth_boost: float = Field(0.0, ge=0.0, le=50.0)
    lr_grid: float = Field(1e-2, gt=0)  # hash tables
    lr_net: float = Field(1e-3, gt=0)  # MLPs, audio encoder, lighting latents
    lr_final: float = Field(0.1, gt=0, le=1)  # learning rates decay exponentially to this share
    # L1 on the mean region gates, so audio and expressions act locally. Expressions (blinks) change few
    # frames, so a strong pull closes their gates for good and the eyes never blink: theirs is weaker.
    audio_gate_weight: float = Field(1e-3, ge=0)
    expr_gate_weight: float = Field(1e-5, ge=0)
    # pulls each ray's weight into a short stretch (a surface), so rendering stops after a few samples
    # (model.march_parts); 0: off
    distortion_weight: float = Field(0.0, ge=0)
    patch: int = Field(64, ge=8)  # lip patch side in pixels at 512x512 (scaled with the image size)
    lips_frames_per_step: int = Field(4, ge=1)
    perceptual_weight: float = Field(0.1, ge=0)  # weight of the perceptual term on lip patches
    lpips_backbone: str | None = None  # torchvision AlexNet weights (alexnet-owt-7be5be79.pth) for LPIPS
    lpips_linear: str | None = None  # lpips v0.1 alex linear weights (alex.pth); both or neither
    eval_every: int = Field(1000, ge=1)  # validation PSNR every n steps
    eval_frames: int = Field(4, ge=1)  # validation frames rendered each time
    checkpoint_every: int = Field(1000, ge=1)  # a resumable checkpoint every n steps (and at the end, and on Ctrl-C)
    occupancy_every: int = Field(16, ge=1)  # refresh the occupancy grid every n steps ...
    occupancy_warmup: int = Field(256, ge=0)  # ... from this step on (before it, every cell counts as occupied)
    occupancy_conditions: int = Field(4, ge=1)  # training frames whose audio/expressions each refresh looks at
    # auto: bf16 autocast on a CUDA device that has it, else fp32; a named precision runs as named (bf16 on a
    # CPU too, slowly) or is refused (syncanim.device.resolve_precision)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    mouth: MouthTrainConfig = MouthTrainConfig()
    motion: MotionTrainConfig = MotionTrainConfig()
    torso: TorsoTrainConfig = TorsoTrainConfig()
    write_assets: bool = True  # write the frame and background videos render needs (off only for benchmarks)
    seed: int = 0


class RenderConfig(Frozen):
    # audio: head pose, brows and blinks from the speech (the model's motion syncer); replay: the training
    # clip's poses and expressions, looped; static: the first training frame's pose, blinks from the speech.
    # --portrait pastes the face into the original frames, so it always keeps their poses (replay).
    pose: Literal["audio", "replay", "static"] = "audio"
    seed: int = 0  # the random part of the audio-driven motion (with the speech's first frame)
    torso: bool = True  # the model's torso under the head (false: the training frames' bodies, replayed)
    portrait: bool = False  # paste the rendered face into the original frames
    frames_per_call: int = Field(4, ge=1)  # frames rendered together (throughput vs memory)
    chunk_rays: int = Field(1 << 16, ge=1024)
    # H.264 quality (lower = better, bigger). At 256 px x264's crf 18 smooths the rendered inner lips enough that a
    # face tracker reads 10-20 % less mouth motion in them than crf 12 keeps (about twice the file size)
    crf: int = Field(12, ge=0, le=51)
    loop_join: int = Field(12, ge=0)  # frames blended where the replayed poses loop back to the start
    # fp32 by default: bf16 autocast renders ~12 % faster on a GPU but costs ~1.2 dB of validation PSNR
    # (benchmarks/render_precision.py); auto = bf16 on a CUDA device that has it, else fp32
    precision: Literal["auto", "fp32", "bf16"] = "fp32"
    # on CUDA, draw from tensors of fixed size replayed from CUDA graphs (the same images, none of the host's
    # launching and waiting inside a frame; syncanim.stream.graphs); off: the compact renderer, eagerly
    cuda_graphs: bool = True
    # speech the subject's predictor has not heard (another voice or language) moves the mouth less than their own:
    # raise its level to the subject's speaking level by at most this factor (syncanim.motion.mouth_level); 1: off
    mouth_level: float = Field(1.6, ge=1.0, le=3.0)
    # a predicted mouth shape less common among the training frames than this share of the subject's typical shape is
    # drawn nearer the mouth at rest until it is that common: the head draws rare shapes badly
    # (syncanim.motion.mouth_support); 0: off
    mouth_support: float = Field(0.1, ge=0.0, le=1.0)


class LiveConfig(Frozen):
    """Settings of ``syncanim live`` (``[live]``)."""

    host: str = "127.0.0.1"  # the viewer page's address; any other than 127.0.0.1 / localhost needs a token
    port: int = Field(8765, ge=0, le=65535)  # 0: any free port
    token: str | None = None  # required in the page's URL (?token=...) when set; generated for a non-local host
    pose: Literal["audio", "replay", "static"] = "audio"  # as [render]
    torso: bool = True
    seed: int = 0
    # frames of speech the mouth reads after the frame drawn (render: the predictor's own 8); each one adds 40 ms of
    # latency at 25 fps. 1: speech in -> frame out 109 ms p50 / 131 ms p95 on an H200 at 512 px; 2: 157 / 198 ms,
    # mouth codes closer to render's (docs/live.md). Below the motion syncer's 2 its pose is carried on.
    lookahead: int = Field(1, ge=0, le=16)
    frames_per_call: int = Field(1, ge=1, le=16)  # frames drawn together (1: lowest latency)
    block_ms: int = Field(20, ge=5, le=200)  # microphone / file blocks
    max_behind_ms: int = Field(300, ge=40)  # a frame whose speech is older than this is not drawn (its sound still plays)
    viewer_queue: int = Field(25, ge=1, le=250)  # frames queued per viewer (25: 1 s); a slow viewer loses its oldest
    viewer_window: int = Field(12, ge=0, le=250)  # frames on their way to a viewer, not yet acknowledged (0: any)
    jpeg_quality: int = Field(85, ge=10, le=100)
    # frames of silence drawn before the clock starts, so kernels compiling on their first call make no frame late
    warmup_frames: int = Field(3, ge=0, le=100)
    chunk_rays: int = Field(1 << 16, ge=1024)
    loop_join: int = Field(12, ge=0)
    precision: Literal["auto", "fp32", "bf16"] = "fp32"  # as [render]
    cuda_graphs: bool = True  # as [render]
    mouth_level: float = Field(1.6, ge=1.0, le=3.0)  # as [render]
    mouth_support: float = Field(0.1, ge=0.0, le=1.0)  # as [render]
    # blocks of this many KiB and more are returned to the system when freed (glibc), so a long session's memory
    # stays flat; 0 leaves the allocator as it is (docs/live.md)
    heap_mmap_kib: int = Field(128, ge=0, le=1 << 20)


class SampleConfig(Frozen):
    seconds: float = Field(10.0, gt=1.0, le=60.0)
    fps: int = Field(25, ge=10, le=60)
    size: int = Field(512, ge=128, le=1024)
    seed: int = 0
    text: str = (
        "Hello, I am a talking head made by syncanim. I can speak any sentence you give me, "
        "with my lips moving in time with the words. Now let me blink and say a little more."
    )
    voice: str = "en-us"


class SyncConfig(Frozen):
    """Settings of the sync score (``[eval.sync]``)."""

    window_s: float = Field(2.0, gt=0.0)  # correlation window; longer = steadier, less time detail
    hop_s: float = Field(0.5, gt=0.0)  # step between windows
    max_lag: int = Field(10, ge=1, le=50)  # lags searched, frames each way (10 = 0.4 s at 25 fps)
    highpass_s: float = Field(0.5, gt=0.0)  # trends slower than this (Gaussian std, s) are removed
    floor_db: float = Field(40.0, gt=0.0)  # envelope floor below the loud level (silence is flat)
    speech_db: float = Field(30.0, gt=0.0)  # a frame within this of the loud level counts as speech
    min_speech: float = Field(0.25, ge=0.0, le=1.0)  # share of speech frames a window needs
    max_missing: float = Field(0.1, ge=0.0, le=1.0)  # share of faceless frames a window may have

class BlinkConfig(Frozen):
    """Blink detector settings (``[eval.blinks]``)."""

    open_percentile: float = Field(75.0, gt=50.0, le=100.0)  # EAR of an open eye, per eye and clip
    close_ratio: float = Field(0.35, gt=0.0, lt=1.0)  # closure that starts a blink (EAR 35 % below open)
    open_ratio: float = Field(0.15, ge=0.0, lt=1.0)  # closure below which the blink has ended
    min_duration_s: float = Field(0.03, ge=0.0)  # shorter events are noise (0.03 s: one frame at 25 fps)
    max_duration_s: float = Field(0.8, gt=0.0)  # longer closures are not blinks

class EvalConfig(Frozen):
    """Settings of ``syncanim eval`` (``[eval]``)."""

    sync: SyncConfig = SyncConfig()
    blinks: BlinkConfig = BlinkConfig()
    face_margin: float = Field(0.1, ge=0.0, le=1.0)  # face box = landmark box grown by this share of its size
    strip_frames: int = Field(6, ge=1, le=32)  # columns of strip.png
    batch: int = Field(8, ge=1)  # frames per PSNR / SSIM / LPIPS step (more = faster, more memory)

class BenchConfig(Frozen):
    """Settings of ``syncanim bench``. The device comes from ``runtime.device``."""

    resolution: int | None = Field(None, ge=64, le=2048)  # output frames are N x N; None: the model's own (synthetic: 512)
    batch: int = Field(1, ge=1, le=64)  # frames per call: more = throughput, but more latency and memory
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "fp32"  # head render autocast (render's default: fp32); auto: bf16 on CUDA
    compile: bool = False  # torch.compile the field's MLPs (the first calls compile: a slow start)
    cuda_graphs: bool = False  # capture the dense renderer's step in a CUDA graph (needs renderer = "dense" and CUDA)
    # auto: what render and live draw with (static on CUDA, compact on CPU); see syncanim.bench.pipeline
    renderer: Literal["auto", "compact", "static", "dense"] = "auto"
    runs: int = Field(30, ge=1)  # timed calls per stage
    warmup: int = Field(5, ge=0)  # untimed calls before them
    portrait: bool = False  # also time the face paste into the original frame
    chunk_rays: int = Field(1 << 16, ge=1024)  # rays per field evaluation (memory vs launch count)
    crf: int = Field(12, ge=0, le=51)  # H.264 quality of the encode stage (render's default)
    threads: int | None = Field(None, ge=1)  # torch CPU threads during the run (None: torch's default)
    seed: int = 0  # synthetic model, poses and audio

    @field_validator("resolution")
    @classmethod
    def _even(cls, v: int | None) -> int | None:
        if v is not None and v % 2:
            raise ValueError(f"must be even (H.264 needs even frame sizes), got {v}")
        return v


class Config(Frozen):
    """The whole tree. Functions take the smallest sub-config they need."""

    version: int = CONFIG_VERSION
    runtime: RuntimeConfig = RuntimeConfig()
    prep: PrepConfig = PrepConfig()
    model: PluginSection = PluginSection(kind="nerf-head")
    train: TrainConfig = TrainConfig()
    render: RenderConfig = RenderConfig()
    live: LiveConfig = LiveConfig()
    sample: SampleConfig = SampleConfig()
    eval: EvalConfig = EvalConfig()
    bench: BenchConfig = BenchConfig()


# --- presets ---------------------------------------------------------------------------


def presets_dir() -> Path:
    """The folder of built-in presets (``presets/`` in a checkout, ``syncanim/_presets`` in a wheel)."""
    packaged = resources.files("syncanim") / "_presets"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "presets"


def list_presets() -> list[str]:
    d = presets_dir()
    return sorted(p.stem for p in d.glob("*.toml")) if d.is_dir() else []


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from e
    except OSError as e:
        raise ConfigError(f"cannot read preset {path}: {e.strerror}") from e


def _preset_path(name_or_path: str) -> Path:
    """A ``.toml`` or a path with a folder in it is a file; a bare name is a built-in preset first (a folder of that
    name where the command runs, such as a model called ``base``, does not hide it), then a file of that name."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or len(p.parts) > 1:
        if not p.is_file():
            raise ConfigError(f"preset file {p} does not exist")
        return p
    candidate = presets_dir() / f"{name_or_path}.toml"
    if candidate.is_file():
        return candidate
    if p.is_file():
        return p
    raise ConfigError(f"unknown preset {name_or_path!r}", hint=f"built-in presets: {', '.join(list_presets())}")


def load_preset(name_or_path: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The preset as a nested dict, with its ``extends`` chain merged in (child wins)."""
    path = _preset_path(name_or_path)
    key = str(path.resolve())
    if key in _seen:
        raise ConfigError(f"preset {path} extends itself (cycle: {' -> '.join(_seen)})")
    data = _read_toml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: `extends` must be a preset name")
    if parent.endswith(".toml") and not Path(parent).is_absolute():
        parent = str(path.parent / parent)  # a file named relative to the preset that extends it
    return merge(load_preset(parent, (*_seen, key)), data)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge two nested dicts; ``over`` wins. A changed plugin ``kind`` drops the old options."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            old = out[k]
            if "kind" in v and old.get("kind") not in (None, v["kind"]):
                old = {}
            out[k] = merge(old, v)
        else:
            out[k] = v
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``"prep.fps=30"`` -> ``{"prep": {"fps": 30}}``. The value is read as TOML, else as a string."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    parts = [p.strip() for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"--set: bad key {key!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    out: dict[str, Any] = {parts[-1]: value}
    for p in reversed(parts[:-1]):
        out = {p: out}
    return out


def format_validation_error(e: ValidationError, prefix: str = "", shown: int = 4) -> str:
    """One line naming the bad fields (the first ``shown`` of them), e.g.
    ``prep.fps: Input should be greater than 0 (got -1); prep.size: unknown setting``."""
    errors = e.errors()
    parts = []
    for err in errors[:shown]:
        loc = ".".join(str(x) for x in err["loc"])
        name = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or "config")
        got = err.get("input")
        value = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg, value = "unknown setting", ""
        parts.append(f"{name}: {msg}{value}")
    more = f" (+{len(errors) - shown} more)" if len(errors) > shown else ""
    return "; ".join(parts) + more


def build_config(
    preset: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    explicit: dict[str, Any] | None = None,
) -> Config:
    """Defaults < preset < ``--set`` overrides < explicit CLI options, validated into a ``Config``."""
    data: dict[str, Any] = Config().model_dump()
    if preset:
        data = merge(data, load_preset(preset))
    for o in overrides:
        data = merge(data, parse_override(o))
    if explicit:
        data = merge(data, explicit)
    try:
        return Config(**data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e)) from e


def to_toml(config: BaseModel) -> str:
    """A config as TOML text (for ``config.resolved.toml`` and ``--dry-run``)."""
    return dump_toml(config.model_dump(mode="json"))


def dump_toml(data: dict[str, Any]) -> str:
    """Nested dicts of plain values as TOML text (``None`` values are left out)."""
    return _dump_toml(data)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _dump_toml(data: dict[str, Any], prefix: str = "") -> str:
    scalars = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict) and v is not None]
    blocks = ["\n".join(([f"[{prefix}]"] if prefix else []) + scalars)] if scalars or prefix else []
    for k, v in data.items():
        if isinstance(v, dict):
            blocks.append(_dump_toml(v, f"{prefix}.{k}" if prefix else k).rstrip("\n"))
    return "\n\n".join(b for b in blocks if b) + "\n"
