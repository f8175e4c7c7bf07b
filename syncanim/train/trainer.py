"""``syncanim train``: a prepared dataset in, a trained head model folder out.

First the mouth predictor is fitted (speech features -> the subject's mouth code measured on the
landmarks, :mod:`syncanim.train.mouth`; seconds). Then two stages as in the reference workflow: the
head (random rays, mostly inside the head's projected box, photometric loss; the mouth conditioned
on each frame's real mouth code plus a little noise), then the lips (patches around the mouth with
an added perceptual term, alternating with ordinary ray batches). Validation renders are driven by
the predicted codes, as a render of new speech is. Validation PSNR on held-out frames at intervals,
``metrics.jsonl``, and checkpoints that resume exactly (same batches, same numbers) after Ctrl-C.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..config import PluginSection, RuntimeConfig, TrainConfig, dump_toml
from ..console import ProgressFn, no_progress
from ..data.batches import Batch, DeviceData, blink_weight, mouth_weight, patch_batch, ray_batch, to_device
from ..data.dataset import HeadData, clip_rms, load_head_data
from ..data.files import writable_folder, write_text_atomic
from ..data.manifest import dataset_audio_section
from ..device import autocast, resolve_device, resolve_precision
from ..errors import CheckpointError, ConfigError, ResourceError  # noqa: F401
from ..face.landmarks import FACE_OVAL
from ..face.mouth import MOUTH_POINTS, MouthBasis, mouth_opening
from ..media.video import VideoWriter
from ..metrics.mouth import speaking_spread, speech_frames
from ..model.backstop import mouth_inside_colour
from ..model.base import HeadSetup
from ..model.batch import RayBatch
from ..model.camera import Camera
from ..model.conditioning import FrameBatch
from ..model.folder import (
    ModelInfo,
    ModelLayout,
    Replay,
    build_model,
    dataset_path,
    dataset_reference,
    read_info,
    save_replay,
    save_weights,
    write_info,
)
from ..model.frames import to_uint8
from ..model.head import EXPRESSIONS, NerfHead
from ..model.losses import LossWeights, PerceptualLoss, make_perceptual
from ..motion.mouth_level import level_reference
from ..motion.mouth_support import support_json
from ..motion.store import motion_section, save_motion
from ..registry import Registry, default_registry
from .checkpoint import load_checkpoint, save_checkpoint
from .interrupt import DeferredInterrupt
from .motion import fit_motion
from .mouth import fit_mouth_predictor, mouth_loss_weight
from .other_clips import load_other_clips
from .torso import fit_torso, person_boxes

log = logging.getLogger(__name__)


def _learned_settings(config_type: type, model: dict[str, Any]) -> dict[str, Any]:
    """A model section without the settings its config class calls render-only (``render_only``): the part a
    resumed run must share with the run it continues."""
    skip = getattr(config_type, "render_only", frozenset())
    return {k: v for k, v in model.items() if k not in skip}


@dataclass
class TrainResult:
    layout: ModelLayout
    info: ModelInfo
    step: int
    total: int
    val_psnr: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: int = 0
    device: str = "cpu"


class Schedule:
    """Step counts of the two stages and the learning-rate decay (pure arithmetic)."""

    def __init__(self, head: int, lips: int, lr_final: float) -> None:
        self.head, self.lips, self.lr_final = head, lips, lr_final

    @property
    def total(self) -> int:
        return self.head + self.lips

    def stage(self, step: int) -> str:
        return "head" if step < self.head else "lips"

    def lr_scale(self, step: int) -> float:
        """Exponential decay from 1 to ``lr_final`` over the run."""
        return self.lr_final ** (step / max(1, self.total))

    def fitted(self, steps: int, seconds: float, budget_s: float, done: int = 0) -> Schedule:
        """Both stages shrunk (in proportion) so that, at ``steps`` per ``seconds``, the run ends within
        ``budget_s`` more seconds after the ``done`` steps already taken; once the head stage is done, the lip stage
        alone."""
        rate = steps / max(seconds, 1e-6)
        allowed = done + int(0.95 * rate * budget_s)  # 5 % for validation and checkpoints
        if allowed >= self.total:
            return self
        if done >= self.head:
            return Schedule(self.head, max(done, allowed) - self.head, self.lr_final)
        k = allowed / self.total
        head = max(done, int(self.head * k))
        return Schedule(head, max(0, allowed - head), self.lr_final)


class StepTimer:
    """The seconds of ``span`` steps from step ``start``: :meth:`tick` after each step returns them once, at step
    ``start + span``, and None otherwise."""

    def __init__(self, start: int, span: int = 100) -> None:
        self.start, self.span = start, span
        self._t0: float | None = None

    def tick(self, step: int) -> float | None:
        if step == self.start:
            self._t0 = time.perf_counter()
        elif step == self.start + self.span and self._t0 is not None:
            return time.perf_counter() - self._t0
        return None


def _optimizer(model: NerfHead, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam over the head's parameters (the mouth predictor is fitted on its own beforehand)."""
    grid = [model.field.tables]
    nets = [p for n, p in model.named_parameters() if n != "field.tables" and not n.startswith("predictor.")]
    return torch.optim.Adam([
        {"params": grid, "lr": cfg.lr_grid, "eps": 1e-15, "base_lr": cfg.lr_grid},
        {"params": nets, "lr": cfg.lr_net, "eps": 1e-15, "base_lr": cfg.lr_net},
    ], betas=(0.9, 0.99))


def _psnr(mse: float) -> float:
    return float("inf") if mse <= 0 else -10.0 * math.log10(mse)


def camera_of(d: DeviceData, frames: torch.Tensor) -> Camera:
    """The cameras of dataset frames ``frames: [B] long``."""
    return Camera(d.rotation[frames], d.translation[frames], d.focal, d.cx, d.cy, d.size)


def step_batch(d: DeviceData, batch: Batch, gen: torch.Generator | None, code_noise: float = 0.0,
               patch: int = 0) -> RayBatch:
    """What the model fits on a batch of rays: the mouth conditioned on each frame's real mouth code (plus
    ``code_noise`` times unit Gaussian noise from ``gen``), each frame's own lighting latent. ``patch``:
    the side of the square patches of a ``patch_batch`` (their image losses apply), else 0."""
    codes = d.codes[batch.frames]  # [B, C]
    if code_noise > 0 and gen is not None:
        codes = codes + code_noise * torch.randn(codes.shape, generator=gen, device=gen.device).to(codes.device)
    inputs = FrameBatch(d.expressions[batch.frames], codes=codes, latent_frames=batch.frames)
    return RayBatch(camera_of(d, batch.frames), inputs, batch.pixels, batch.target, batch.background, patch)


def refresh_occupancy(model: NerfHead, d: DeviceData, conditions: int, gen: torch.Generator) -> float:
    """Update the model's occupancy grid under the mouths/expressions of a few random training frames."""
    frames = torch.randint(0, d.num_train, (conditions,), generator=gen, device=gen.device).to(d.audio.device)
    with torch.no_grad():
        cond = model.condition(FrameBatch(d.expressions[frames], codes=d.codes[frames]))
    return model.update_occupancy(cond, gen)


@torch.no_grad()
def validate(model: NerfHead, d: DeviceData, frames: list[int], chunk: int = 1 << 15) -> tuple[float, np.ndarray]:
    """Mean PSNR (dB) of full rendered frames against the ground truth, and the renders [B, H, W, 3] uint8.
    The mouth follows the codes predicted from the frames' speech."""
    model.eval()
    idx = torch.tensor(frames, device=d.frames.device)
    cond = model.condition(FrameBatch(d.expressions[idx], features=d.audio, frames=idx))
    images = model.render_frames(camera_of(d, idx), cond, d.backgrounds[idx].float() / 255, chunk=chunk).images
    out = to_uint8(images)  # [B, H, W, 3]
    gt = d.frames[idx].float() / 255
    mse = ((out.float() / 255 - gt) ** 2).mean(dim=(1, 2, 3)).cpu().numpy()
    model.train()
    return float(np.mean([_psnr(m) for m in mse])), out.cpu().numpy()


def mouth_targets(data: HeadData, rms: np.ndarray, components: int, variance: float
                  ) -> tuple[MouthBasis, float]:
    """The subject's mouth basis (fitted on the training frames) and the subject's mouth-opening spread
    while speaking in the training frames (``rms``: each frame's loudness [N])."""
    n = data.num_train
    basis = MouthBasis.fit(data.landmarks[:n], components, variance)
    spread = speaking_spread(mouth_opening(data.landmarks[:n]), speech_frames(rms[:n]))
    return basis, spread


def write_assets(layout: ModelLayout, data: HeadData, fps: float, videos: bool = True) -> None:
    """The replay material render needs: poses, expressions and face outlines (always), and with
    ``videos`` the frames and backgrounds."""
    layout.assets.mkdir(parents=True, exist_ok=True)
    if not layout.replay.is_file():
        save_replay(layout, Replay(data.rotation, data.translation, data.expressions,
                                   data.landmarks[:, list(FACE_OVAL), :2].astype(np.float32), data.num_train))
    if not videos or (layout.frames_video.is_file() and layout.backgrounds_video.is_file()):
        return
    s = data.size
    for path, images in ((layout.frames_video, data.frames), (layout.backgrounds_video, data.backgrounds)):
        with VideoWriter(path, fps, s, s, crf=12) as w:
            for img in images:
                w.write(img)


def _log_metrics(layout: ModelLayout, row: dict[str, Any]) -> None:
    with layout.metrics.open("a") as f:
        f.write(json.dumps(row) + "\n")


def _trim_metrics(layout: ModelLayout, step: int) -> None:
    """Drop lines logged after ``step`` (a run that crashed after its last checkpoint)."""
    if not layout.metrics.is_file():
        return
    keep = [ln for ln in layout.metrics.read_text().splitlines() if ln.strip() and json.loads(ln).get("step", 0) <= step]
    write_text_atomic(layout.metrics, "".join(k + "\n" for k in keep))


def run_train(
    dataset: str | os.PathLike[str],
    out: str | os.PathLike[str],
    model_section: PluginSection,
    train: TrainConfig,
    runtime: RuntimeConfig,
    *,
    registry: Registry | None = None,
    progress: ProgressFn = no_progress,
) -> TrainResult:
    """Train (or resume training of) the head model of ``dataset`` into the folder ``out``."""
    reg = registry or default_registry()
    dataset, layout = Path(dataset), ModelLayout(out)
    spec, model_cfg = reg.resolve("syncanim.renderers", model_section, where="model")
    if train.head_steps + train.lips_steps == 0:
        raise ConfigError("train.head_steps and train.lips_steps are both 0: nothing to train")
    device = resolve_device(runtime)
    precision = resolve_precision(device, train.precision)
    # a resumed run has its mouth predictor (it is fitted before the first checkpoint)
    resume = layout.state_info.is_file()
    # the other clips the mouth predictor learns from, checked before the subject's frames are read
    others = [] if resume else load_other_clips(dataset, train.mouth, model_cfg.mouth.components,
                                                 model_cfg.mouth.variance, device)
    torch.manual_seed(train.seed)
    progress("load", 0, 1)
    data = load_head_data(dataset, EXPRESSIONS)
    m = data.manifest
    progress("load", 1, 1)
    writable_folder(layout.root)
    rms = clip_rms(dataset, data.manifest)  # [N]
    basis, spread = mouth_targets(data, rms, model_cfg.mouth.components, model_cfg.mouth.variance)
    mouth_info: dict[str, Any] = {"components": basis.size, "points": len(MOUTH_POINTS), "speaking_spread": spread}
    info = ModelInfo(model={"kind": model_section.kind, **model_cfg.model_dump()}, audio=dataset_audio_section(dataset),
                     audio_per_frame=m.audio_per_frame, audio_dim=m.audio_dim, num_latents=m.num_train,
                     expressions=list(EXPRESSIONS), image_size=m.image_size, fps=m.fps, focal=data.focal, cx=data.cx,
                     cy=data.cy, dataset=dataset_reference(dataset, layout.root), sample_rate=m.sample_rate, mouth=mouth_info)
    if resume:
        old = read_info(layout.root)
        same_data = dataset_path(layout.root, old).resolve() == dataset.resolve()
        learned = functools.partial(_learned_settings, type(model_cfg))
        if learned(old.model) != learned(info.model) or not same_data or old.audio != info.audio:
            raise CheckpointError(f"{layout.root} holds a run with another model or dataset",
                                  hint="use another --out folder, or delete this one to start over")
        model = build_model(info, reg)
        info = replace(info, mouth=old.mouth, motion=old.motion, torso=old.torso)
    else:
        n = m.num_train
        typical = np.nanmedian(data.expressions[:n], 0)  # where blinks and brows do not act
        # what shows through a mouth the head draws with too little density behind the lips (syncanim.model.backstop)
        inside = mouth_inside_colour(data.frames[:n], data.landmarks[:n], mouth_opening(data.landmarks[:n]))
        model = spec.build(model_cfg)(HeadSetup(m.audio_per_frame, m.audio_dim, n, basis, data.canonical, typical,
                                                inside))
    write_info(layout, info)
    write_text_atomic(layout.config, dump_toml({"model": info.model, "train": train.model_dump(mode="json"),
                                                "runtime": runtime.model_dump(mode="json")}))
    progress("assets", 0, 1)
    write_assets(layout, data, m.fps, videos=train.write_assets)
    progress("assets", 1, 1)

    patch = max(8, int(round(train.patch * m.image_size / 512)))
    model = model.to(device)
    opt = _optimizer(model, train)
    gen = torch.Generator(device=device)
    gen.manual_seed(train.seed)
    schedule = Schedule(train.head_steps, train.lips_steps, train.lr_final)
    step = 0
    # time steps once kernels are compiled and the occupancy grid skips empty space (steps before it are slower,
    # and timing them would end the run well inside its budget); no budget, or a resumed run, times nothing
    timer = StepTimer(train.occupancy_warmup + 20) if train.max_minutes is not None else None
    if resume:
        state = load_checkpoint(layout, model, opt, gen)
        step = state["step"]
        schedule = Schedule(state["head_steps"], state["lips_steps"], train.lr_final)
        timer = None
        _trim_metrics(layout, step)
        log.info("resuming at step %d of %d", step, schedule.total)
    elif layout.metrics.exists():
        layout.metrics.unlink()
    # codes from the basis kept with the weights, fresh or resumed alike (a basis fitted again, e.g. on
    # another machine, could differ in its components' signs)
    kept = model.mouth_basis()
    codes = kept.encode(data.landmarks)
    if "level" not in info.mouth:  # the speaking level streams aim for (syncanim.motion.mouth_level)
        n = data.num_train
        ref = level_reference(codes[:n], mouth_opening(data.landmarks[:n]), speech_frames(rms[:n]), kept.weight,
                              train.mouth.render_gain)
        info = replace(info, mouth={**info.mouth, "level": ref.to_json()})
    if "seen" not in info.mouth:  # the shapes the head is trained on (syncanim.motion.mouth_support)
        info = replace(info, mouth={**info.mouth, "seen": support_json(codes[:data.num_train])})
    # the head's box comes with the weights: project it only once they are loaded
    rects = model.head_rects(Camera.from_numpy(data.rotation, data.translation, data.focal, data.cx, data.cy,
                                               data.size, "cpu"))
    blinks = [i for i, name in enumerate(EXPRESSIONS) if name.startswith("blink")]
    lips = mouth_weight(mouth_opening(data.landmarks), data.num_train, train.mouth_boost)  # [N] or None
    eyes = blink_weight(data.expressions, blinks, train.blink_boost)
    rays_weight = eyes if lips is None else lips if eyes is None else eyes * lips
    d = to_device(data, device, rects, patch, codes, rays_weight, lips)
    plate, boxes = data.plate, person_boxes(data.labels, margin=data.size // 32)
    del data
    perceptual: PerceptualLoss | None = make_perceptual(train, device) if schedule.lips else None
    weights = LossWeights.from_train(train)
    val_ids = np.linspace(d.num_train, m.num_frames - 1, min(train.eval_frames, m.num_frames - d.num_train)).round()
    val_ids = sorted({int(v) for v in val_ids})
    result = TrainResult(layout, info, step, schedule.total, resumed_from=step, device=device.type)
    t_start = time.perf_counter()
    if not resume:
        report = fit_mouth_predictor(model.predictor, d.audio, d.codes, d.num_train,
                                     mouth_loss_weight(kept, train.mouth.opening_weight, device), train.mouth, gen,
                                     progress, kept.opening_direction(), others)
        del others
        info = replace(info, mouth={**info.mouth, "fit": asdict(report)})
        corr = report.holdout_correlation[0] if report.holdout_correlation else float("nan")
        log.info("mouth predictor: %.1f s, held-out correlation of the main component %.2f, gain %.2f",
                 report.seconds, corr, report.gain[0] if report.gain else 1.0)
        _log_metrics(layout, {"step": 0, "stage": "mouth", **asdict(report)})
    if info.motion is None or not layout.motion.is_file():
        syncer, motion_report = fit_motion(d.audio, rms, d.rotation.cpu().numpy(), d.translation.cpu().numpy(),
                                           d.expressions.cpu().numpy(), d.num_train, m.fps, train.motion, gen, progress)
        save_motion(layout, syncer)
        info = replace(info, motion=motion_section(syncer, asdict(motion_report)))
        write_info(layout, info)
        log.info("motion syncer: %.1f s, %d blinks in the clip, %.1f per minute generated",
                 motion_report.seconds, motion_report.blinks_found, motion_report.blink_rate_per_min)
        _log_metrics(layout, {"step": 0, "stage": "motion", **asdict(motion_report)})
    t_last, steps_last = t_start, step
    model.train()
    loss_acc, n_acc = 0.0, 0

    def checkpoint() -> None:
        save_checkpoint(layout, model, opt, gen, {"step": step, "head_steps": schedule.head, "lips_steps": schedule.lips})
        save_weights(layout.weights, model, {"step": str(step)})
        write_info(layout, ModelInfo(**{**info.__dict__, "stage": schedule.stage(max(0, step - 1)), "step": step}))

    saved = -1  # the step the last checkpoint holds
    with DeferredInterrupt() as stop:
        try:
            while step < schedule.total:
                stage = schedule.stage(step)
                scale = schedule.lr_scale(step)
                for g in opt.param_groups:
                    g["lr"] = g["base_lr"] * scale
                lip_patch = stage == "lips" and step % 2 == 0
                if lip_patch:
                    batch = patch_batch(d, train.lips_frames_per_step, gen)
                else:
                    batch = ray_batch(d, train.frames_per_step, train.rays, train.head_share, gen, train.mouth_share,
                                      train.eye_share)
                fit = step_batch(d, batch, gen, train.mouth.code_noise, d.patch if lip_patch else 0)
                with autocast(device, precision):
                    losses = model.train_step(fit, weights, perceptual, generator=gen)
                opt.zero_grad(set_to_none=True)
                sum(losses.values()).backward()
                opt.step()
                step += 1
                loss_acc += float(losses["rgb"].detach())
                n_acc += 1
                seconds = timer.tick(step) if timer is not None else None
                if seconds is not None:
                    lips = step > schedule.head
                    budget = train.max_minutes * 60 - (time.perf_counter() - t_start)
                    schedule = schedule.fitted(timer.span, seconds, budget, done=step)
                    result.total = schedule.total
                    if lips:
                        log.info("time budget: %d lip steps", schedule.lips)
                        timer = None
                    else:
                        log.info("time budget: %d head + %d lip steps", schedule.head, schedule.lips)
                        # the lip stage is timed again, shrunk alone: its patches and perceptual term step at their own
                        # rate (on two cores 8.5 lip steps a second against 11.7 head steps in one run, as fast in another)
                        timer = StepTimer(schedule.head + 20)
                if step % 25 == 0 or step == schedule.total:
                    now = time.perf_counter()
                    rate = (step - steps_last) / max(now - t_last, 1e-9)
                    t_last, steps_last = now, step
                    row = {"step": step, "stage": stage, "loss": loss_acc / n_acc, "psnr": _psnr(loss_acc / n_acc),
                           "lr_scale": scale, "it_s": rate, "seconds": now - t_start}
                    _log_metrics(layout, row)
                    progress("train", step, schedule.total, f"{stage} loss {row['loss']:.4f} psnr {row['psnr']:.1f} {rate:.1f} it/s")
                    loss_acc, n_acc = 0.0, 0
                else:
                    progress("train", step, schedule.total)
                if val_ids and (step % train.eval_every == 0 or step == schedule.total):
                    with autocast(device, precision):
                        val, _ = validate(model, d, val_ids)
                    result.val_psnr.append((step, val))
                    _log_metrics(layout, {"step": step, "val_psnr": val, "seconds": time.perf_counter() - t_start})
                    log.info("step %d: validation PSNR %.2f dB", step, val)
                if step >= train.occupancy_warmup and (step % train.occupancy_every == 0 or step == schedule.total):
                    refresh_occupancy(model, d, train.occupancy_conditions, gen)
                if step % train.checkpoint_every == 0 or step == schedule.total:
                    with stop.saving():
                        checkpoint()
                    saved = step
                if stop.requested:  # Ctrl-C came during this step: stop between two, so the checkpoint resumes exactly
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            if saved != step:  # else the checkpoint of this very step is on disk, written between two steps
                if stop.forced:
                    log.warning("stopped in the middle of a step: the resumed run will not be bit for bit an "
                                "uninterrupted one")
                with stop.saving():
                    checkpoint()
            raise
    if stop.requested:  # Ctrl-C after the last step's check: the checkpoint of the last step is written
        raise KeyboardInterrupt
    if train.torso.steps > 0 and (info.torso is None or not layout.torso.is_file()):
        field, torso_report = fit_torso(d.backgrounds, d.rotation.cpu().numpy(), d.translation.cpu().numpy(), plate,
                                        boxes, d.num_train, train.torso, gen, progress)
        save_weights(layout.torso, field)
        info = replace(info, torso={"arch": field.arch.to_json(), "fit": asdict(torso_report)})
        checkpoint()
        log.info("torso: %.1f s, held-out PSNR %s dB over the person", torso_report.seconds,
                 "n/a" if torso_report.holdout_psnr is None else f"{torso_report.holdout_psnr:.2f}")
        _log_metrics(layout, {"step": step, "stage": "torso", **asdict(torso_report)})
    result.step = step
    result.seconds = time.perf_counter() - t_start
    if step == result.resumed_from:  # nothing left to do: keep the finished folder as it is
        checkpoint()
    result.info = read_info(layout.root)
    return result


def render_val_strip(images: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Rendered frames over their ground truth, side by side: [B, H, W, 3] x 2 -> [2H, B*W, 3] uint8."""
    return np.concatenate([np.concatenate(list(images), 1), np.concatenate(list(gt), 1)], 0)


def save_png(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
