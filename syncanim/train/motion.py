"""Fitting the motion syncer (:class:`syncanim.motion.syncer.MotionSyncer`) to a subject's clip.

The targets are the clip's own head poses (prep's track) and brow raises, so the fit needs no weights;
the blinks come from the eyes' closure track (:func:`syncanim.motion.blinks.fit_blinks`, then
:func:`~syncanim.motion.blinks.calibrate_blinks` over the clip's speech). Seconds on a CPU.

1. Channels: each training frame's rotation as a rotation vector about the mean rotation, its
   translation, its brow raise; in the subject's units (:func:`~syncanim.motion.syncer.motion_basis`: the pose's
   principal components and the brow, each of unit spread). Steps 2-5 treat each unit on its own.
2. **Calibration**: a copy of the network is trained on the first ``1 - holdout`` of the training
   frames and predicts the rest. Each unit's prediction is scaled by its least-squares factor
   there (``beta``, within [0, 1]: 0 where the speech predicts nothing of it, so a network that only
   learned the clip by heart adds no motion), and the variance it then explains (``v_m``, at most 0.75)
   leaves ``residual = sqrt(max(min_residual^2, 1 - v_m))`` to the AR(2) process.
3. **Dynamics**: the AR(2) of each channel is fitted to the subject's motion (:func:`fit_ar2`).
4. **Final**: the network is trained again, from the same start, on all training frames, its output
   scaled by ``beta``.
5. **Spread**: the syncer runs over the training clip's speech with the calibration network's
   held-out predictions standing for what new speech gives; ``gain`` makes the low-passed sum have the
   subject's spread (unit variance in these units).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import MotionTrainConfig
from ..console import ProgressFn, no_progress
from ..geometry import project_to_rotation
from ..motion.blinks import calibrate_blinks, fit_blinks
from ..motion.filters import ar2_run, fit_ar2, lowpass, lowpass_alpha
from ..motion.syncer import CHANNELS, MotionArch, MotionSyncer, SpeechGate, motion_basis, motion_channels
from .mouth import train_window_net


@dataclass
class MotionFitReport:
    """What fitting found: per unit (the pose's six principal components, then the brow) the held-out correlation of
    the network, its scale ``beta``, the residual weight and the gain; per channel (rotation x, y, z, translation
    x, y, z, brow) its spread; the blinks found and the rate used."""

    seconds: float = 0.0
    holdout_frames: int = 0
    holdout_correlation: list[float] = field(default_factory=list)
    beta: list[float] = field(default_factory=list)
    residual: list[float] = field(default_factory=list)
    gain: list[float] = field(default_factory=list)
    spread: list[float] = field(default_factory=list)  # the channels' spread (radians, dataset units, brow units)
    blinks_found: int = 0
    blink_rate_per_min: float = 0.0


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


def fit_motion(features: torch.Tensor, rms: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
               expressions: np.ndarray, num_train: int, fps: float, cfg: MotionTrainConfig, gen: torch.Generator,
               progress: ProgressFn = no_progress) -> tuple[MotionSyncer, MotionFitReport]:
    """The subject's syncer (module doc). features ``[N, P, F]`` (on the training device); rms ``[N]``: each
    frame's loudness; rotation ``[N, 3, 3]``; translation ``[N, 3]``; expressions ``[N, 3]`` (blink_left,
    blink_right, brow_raise); frames ``0 .. num_train - 1`` are the training frames."""
    t0 = time.perf_counter()
    n = num_train
    if n < 32:
        raise ValueError(f"fit_motion: {n} training frames; at least 32 are needed")
    expr = np.asarray(expressions, np.float64)[:n]
    gate = SpeechGate(fps)
    blinks = calibrate_blinks(fit_blinks(expr[:, :2], fps), np.array([gate.step(float(v)) for v in rms[:n]]), fps)
    brow = np.nan_to_num(expr[:, 2], nan=float(np.nanmedian(expr[:, 2])) if np.isfinite(expr[:, 2]).any() else 0.0)
    mean_rot = project_to_rotation(np.asarray(rotation[:n], np.float64).mean(0))
    x = motion_channels(mean_rot, rotation[:n], translation[:n], brow)
    mean, basis = motion_basis(x)
    u = (x - mean) @ np.linalg.inv(basis)  # [n, 7]
    arch = MotionArch(features.shape[1], features.shape[2], fps, hidden=cfg.hidden, layers=cfg.layers, past=cfg.past,
                      future=cfg.future, cutoff_hz=cfg.cutoff_hz, noise_share=cfg.noise_share)
    syncer = MotionSyncer(arch, blinks).to(features.device)
    net = syncer.net
    dev = features.device
    rows = torch.arange(n, device=dev)
    flat = features[:n].flatten(1).float()
    with torch.no_grad():
        net.feat_mean.copy_(flat.mean(0))
        net.feat_std.copy_(flat.std(0).clamp_min(1e-5))
    target = torch.zeros(features.shape[0], CHANNELS, device=dev)
    target[:n] = torch.as_tensor(u, dtype=torch.float32, device=dev)
    weight = torch.ones(CHANNELS, device=dev)
    start = copy.deepcopy(net.state_dict())
    report = MotionFitReport(blinks_found=blinks.found, blink_rate_per_min=blinks.rate_per_min,
                             spread=[float(s) for s in x.std(0)])
    alpha = lowpass_alpha(fps, cfg.cutoff_hz)

    cut = int(round(n * (1 - cfg.holdout)))
    explained = np.zeros(CHANNELS)
    beta = np.ones(CHANNELS)
    held_lp = np.zeros((0, CHANNELS))
    if cfg.steps > 0 and cfg.holdout > 0 and n - cut >= 16:
        train_window_net(net, features, target, rows[:cut], weight, cfg, gen, progress, "motion calibration")
        with torch.no_grad():
            pred = net(features, rows[cut:]).double().cpu().numpy()  # [H, 7]
        report.holdout_frames = n - cut
        report.holdout_correlation = [_corr(pred[:, c], u[cut:, c]) for c in range(CHANNELS)]
        pc, uc = pred - pred.mean(0), u[cut:] - u[cut:].mean(0)
        beta = np.clip((pc * uc).mean(0) / np.maximum(pc.var(0), 1e-9), 0.0, 1.0)
        explained = np.minimum((beta * pc).var(0), 0.75)
        held_lp = lowpass(pred * beta, alpha)
        net.load_state_dict(start)
    residual = np.sqrt(np.maximum(cfg.min_residual ** 2, 1 - explained))
    coef, noise = fit_ar2(u)
    if cfg.steps > 0:
        train_window_net(net, features, target, rows, weight, cfg, gen, progress, "motion")
        with torch.no_grad():
            net.gain.copy_(torch.as_tensor(beta, dtype=torch.float32))
    else:  # no speech-driven part: the network says nothing
        with torch.no_grad():
            net.out.weight.zero_()
            net.out.bias.zero_()
    with torch.no_grad():
        proj = syncer.project(features[:n])  # [n, 7]
        proj_scale = np.maximum(np.diff(proj, axis=0).std(0), 1e-6)
        # the residual process over the training speech, innovations as the stream makes them
        rng = np.random.default_rng(0)
        e = np.sqrt(1 - cfg.noise_share) * np.concatenate([np.zeros((1, CHANNELS)), np.diff(proj, axis=0) / proj_scale]) \
            + np.sqrt(cfg.noise_share) * rng.standard_normal((n, CHANNELS))
        r_lp = lowpass(ar2_run(e, coef, noise) * residual, alpha)
        v = r_lp[n // 10:].var(0) + (held_lp.var(0) if len(held_lp) > 1 else 0.0)
        gain = 1.0 / np.sqrt(np.maximum(v, 1e-6))
        for name, value in (("mean_rotation", mean_rot), ("mean", mean), ("basis", basis), ("ar", coef),
                            ("ar_noise", noise), ("residual", residual), ("gain", gain), ("proj_scale", proj_scale)):
            getattr(syncer, name).copy_(torch.as_tensor(value, dtype=torch.float32))
    syncer.eval()
    report.beta = [float(b) for b in beta]
    report.residual = [float(r) for r in residual]
    report.gain = [float(g) for g in gain]
    report.seconds = time.perf_counter() - t0
    return syncer, report
