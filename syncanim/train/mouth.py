"""Fitting the mouth predictor (:class:`syncanim.model.mouth_net.MouthPredictor`) to a subject's clip.

Targets are the mouth codes of the training frames (:class:`syncanim.face.mouth.MouthBasis`), so the
supervision needs no weights: prep's landmarks give the real mouth shape of every frame. Two passes:

1. **Calibration**: a copy is trained on the first ``1 - holdout`` of the training frames and predicts
   the rest. A regression toward the mean shrinks the predicted motion on speech it has not heard;
   the ratio of the real spread to the predicted spread of each component there (clamped to
   ``[1, max_gain]``), times ``render_gain`` (the head renders less motion than its code asks for),
   becomes the predictor's ``gain``, so rendered lips move as much as the real ones.
   The held-out correlation of each component is reported. With ``shape_shrink``, components the speech
   predicts poorly get less gain, and the opening keeps its spread (:func:`shaped_gain`). Then the shape
   across the mouth opening (all of the code but its part along the opening's direction) is damped by
   ``cross_shape`` (by default each component by its held-out correlation), the opening left as predicted
   (:func:`cross_mix`): the head reads each component in units of its own spread, so a component the speech
   barely tells, at full gain, asks it for shapes far from any it was trained on.
2. **Final**: the predictor is trained again, from the same start, on all training frames, and gets
   that gain and mix.

Each pass: AdamW, ``steps`` steps of ``batch`` random frames (in runs of ``run`` consecutive frames,
which share the work of their overlapping windows), mean squared error weighted by each component's
share of the mouth's variance (with ``opening_weight``, the error of the mouth opening on top: :func:`mouth_loss_weight`),
against the codes smoothed over ``target_taps`` frames
(:func:`smooth_codes`: the landmarks' frame-to-frame jitter is nothing the speech can predict); the
predictor kept is an exponential moving average of its weights over the steps (``ema``). Each run's
features are scaled about their mean by a random factor (log-normal, spread ``feature_scale``):
speech of another voice, language or microphone reaches the encoder louder or softer than the
subject's, and a predictor that answers only to the feature pattern, not its strength, keeps the
mouth moving as much on it. The random stream comes from
``generator``, so a fit is repeatable.

**Other clips** (``[train.mouth] other_clips``: prepped datasets of other speakers, or other recordings of the
subject) train the predictor's speech-reading layers alongside the subject's frames, each through an output layer
of its own onto its own mouth codes (:class:`OtherClip`): what is shared is how speech sounds move a mouth, not one
mouth's shape. A minute of footage is little to learn phonemes from, and each second of another's speech adds some.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import MotionTrainConfig, MouthTrainConfig
from ..console import ProgressFn, no_progress
from ..face.mouth import MouthBasis
from ..model.mouth_net import MouthPredictor


@dataclass
class MouthFitReport:
    """What fitting found. ``holdout_*`` per component on the calibration pass's held-out frames."""

    steps: int
    seconds: float
    holdout_frames: int
    holdout_correlation: list[float] = field(default_factory=list)
    gain: list[float] = field(default_factory=list)
    cross_damping: float | list[float] = 1.0  # the factor on the shape across the opening (:func:`cross_mix`)
    loss: float = 0.0


def smooth_codes(codes: torch.Tensor, taps: int) -> torch.Tensor:
    """Codes ``[T, C]`` averaged over ``taps`` (odd) consecutive frames with Hann weights (3 taps: 1/4, 1/2,
    1/4); rows that are NaN (no face) are left out of their neighbours' averages and stay NaN -> ``[T, C]``."""
    if taps <= 1:
        return codes
    w = torch.hann_window(taps + 2, periodic=False, dtype=codes.dtype, device=codes.device)[1:-1]  # [taps]
    ok = torch.isfinite(codes).all(1, keepdim=True).to(codes.dtype)  # [T, 1]
    x = torch.cat([torch.nan_to_num(codes) * ok, ok], 1).T[:, None]  # [C + 1, 1, T]
    y = torch.nn.functional.conv1d(x, w.view(1, 1, -1), padding=taps // 2)[:, 0].T  # [T, C + 1]
    return torch.where(ok > 0, y[:, :-1] / y[:, -1:].clamp_min(1e-12), codes)


def weighted_error(diff: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Squared errors ``diff [..., C]`` weighted per component (``weight [C]``) or by a quadratic form
    (``weight [C, C]``, :func:`opening_loss_weight`) -> ``[...]``."""
    if weight.ndim == 1:
        return (diff ** 2 * weight).sum(-1)
    return torch.einsum("...c,cd,...d->...", diff, weight, diff)


def opening_loss_weight(weight: torch.Tensor, direction: torch.Tensor, share: float) -> torch.Tensor:
    """The loss weight of the mouth predictor: each component's share of the mouth's variance ``weight [C]``
    (summing to 1) and, with ``share`` > 0, the error along the mouth opening's ``direction [C]``
    (:meth:`~syncanim.face.mouth.MouthBasis.opening_direction`) on top, normalised by the opening's variance
    so that ``share`` 1 weighs a missed opening as much as a missed shape -> ``[C]`` or ``[C, C]``."""
    if share <= 0:
        return weight
    d = direction.to(weight)
    return torch.diag(weight) + share * torch.outer(d, d) / (d @ d).clamp_min(1e-12)


def mouth_loss_weight(basis: MouthBasis, share: float, device: torch.device | str) -> torch.Tensor:
    """:func:`opening_loss_weight` of a subject's mouth basis (its components' variance shares and opening direction)
    on ``device`` -> ``[C]`` or ``[C, C]``."""
    weight = torch.as_tensor(basis.weight, dtype=torch.float32, device=device)
    return opening_loss_weight(weight, torch.as_tensor(basis.opening_direction(), dtype=torch.float32), share)


@dataclass
class OtherClip:
    """Another prepped clip the mouth predictor learns from (module doc): its speech features ``features [T, P, F]``
    (the subject's encoder and block), its own mouth codes ``codes [T, C]`` (its own :class:`MouthBasis`, smoothed as
    the subject's targets are), ``ok [T] bool`` the frames with a face, and ``weight [C]`` or ``[C, C]``, its codes'
    loss weight (:func:`mouth_loss_weight`)."""

    name: str
    features: torch.Tensor
    codes: torch.Tensor
    ok: torch.Tensor
    weight: torch.Tensor


def other_clip(name: str, features: np.ndarray, landmarks: np.ndarray, cfg: MouthTrainConfig, components: int,
               variance: float, device: torch.device | str) -> OtherClip:
    """An :class:`OtherClip` from a clip's speech features ``[T, P, F]`` and landmarks ``[T, 478, 3]`` (NaN rows:
    no face): its own mouth basis (``components``, ``variance`` as the subject's) and codes."""
    n = min(len(features), len(landmarks))
    features, landmarks = features[:n], landmarks[:n]
    found = np.isfinite(landmarks).all((1, 2))
    if found.sum() < 8:
        raise ValueError(f"other clip {name}: {int(found.sum())} frames with a face; at least 8 are needed")
    basis = MouthBasis.fit(landmarks[found], components, variance)
    codes = torch.from_numpy(basis.encode(landmarks).astype(np.float32))
    codes = torch.nan_to_num(smooth_codes(codes, cfg.target_taps))
    return OtherClip(name, torch.from_numpy(np.asarray(features, np.float32)).to(device), codes.to(device),
                     torch.from_numpy(found).to(device), mouth_loss_weight(basis, cfg.opening_weight, device))


def ema_average(decay: float):
    """The weight average of :class:`torch.optim.swa_utils.AveragedModel`: exponential with ``decay`` a step,
    less at first (``(1 + n) / (10 + n)`` after ``n`` steps) so that the random start soon fades out."""
    def average(avg: torch.Tensor, new: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1.0 + float(n)) / (10.0 + float(n)))
        return avg * d + new * (1.0 - d)

    return average


def restandardised(features: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Another clip's features ``[T, P, F]`` moved so that standardising them with the subject's statistics
    (``mean``, ``std``: ``[P * F]``, as :class:`MouthPredictor` does) standardises them with their own: each clip's
    microphone and voice reach the encoder at their own level -> ``[T, P, F]``."""
    flat = features.flatten(1).float()
    own_mean, own_std = flat.mean(0), flat.std(0).clamp_min(1e-5)
    return ((flat - own_mean) / own_std * std + mean).view(features.shape)


def _random_runs(lo: int, hi: int, run: int, runs: int, gen: torch.Generator,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``runs`` random runs of ``run`` consecutive frames in ``[lo, hi)``: their starts ``[B]`` and frames ``[B, run]``."""
    starts = torch.randint(lo, hi - run + 1, (runs,), generator=gen, device=gen.device).to(device)
    return starts, starts[:, None] + torch.arange(run, device=device)


def train_window_net(net: MouthPredictor, features: torch.Tensor, codes: torch.Tensor, frames: torch.Tensor,
                     weight: torch.Tensor, cfg: MouthTrainConfig | MotionTrainConfig, gen: torch.Generator,
                     progress: ProgressFn, stage: str, ema: float = 0.0, others: Sequence[OtherClip] = (),
                     other_weight: float = 1.0) -> float:
    """Train ``net`` on the rows ``frames: [M] long`` of ``features: [T, P, F]`` / ``codes: [T, C]`` (the
    mouth predictor, or the motion syncer's network); with ``ema`` > 0 its weights end as their exponential
    moving average over the steps (:func:`ema_average`). ``others``: clips whose runs (as many a step as the
    subject's) train all of ``net`` but its output layer, each through a fresh output layer of its own, their
    losses weighted by ``other_weight`` (module doc). Returns the mean loss of the subject's frames over the last
    10 % of the steps."""
    from torch.optim.swa_utils import AveragedModel

    heads = [torch.nn.Linear(net.out.in_features, o.codes.shape[1]).to(codes.device) for o in others]
    params = list(net.parameters()) + [p for h in heads for p in h.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    averaged = AveragedModel(net, avg_fn=ema_average(ema), use_buffers=False) if ema > 0 else None
    net.train()
    tail: list[float] = []
    lo, hi = int(frames.min()), int(frames.max()) + 1
    run = max(1, min(cfg.run, hi - lo, *(len(o.codes) for o in others)))
    allowed = torch.zeros(codes.shape[0], dtype=torch.bool, device=codes.device)
    allowed[frames] = True
    runs = max(1, cfg.batch // run)
    mean = net.feat_mean.view(1, 1, *features.shape[1:])  # [1, 1, P, F]
    other_feats = [restandardised(o.features, net.feat_mean, net.feat_std) for o in others]
    for step in range(cfg.steps):
        starts, idx = _random_runs(lo, hi, run, runs, gen, frames.device)  # [B], [B, run]
        rows, keeps = [idx], [allowed[idx].float()]  # keep: frames of the run that are training frames with a face
        xs = [net.run_features(features, starts, run).float()]  # [B, run + W - 1, P, F]
        for o, f in zip(others, other_feats, strict=True):
            o_starts, o_idx = _random_runs(0, len(o.codes), run, runs, gen, frames.device)
            rows.append(o_idx)
            keeps.append(o.ok[o_idx].float())
            xs.append(net.run_features(f, o_starts, run).float())
        x = torch.cat(xs)  # [B * (1 + len(others)), run + W - 1, P, F]
        if cfg.feature_scale > 0:
            scale = torch.randn(len(x), 1, 1, 1, generator=gen, device=gen.device).to(x.device)
            x = mean + (x - mean) * torch.exp(scale * cfg.feature_scale)
        h = net.hidden_runs(x).split(runs)  # the subject's runs, then each other clip's
        subject = _masked_error(net.readout(h[0]) - codes[idx], weight, keeps[0])
        loss = subject
        for k, (o, head) in enumerate(zip(others, heads, strict=True), 1):
            loss = loss + other_weight * _masked_error(head(h[k]) - o.codes[rows[k]], o.weight, keeps[k])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if averaged is not None:
            averaged.update_parameters(net)
        if step >= cfg.steps * 0.9:
            tail.append(float(subject.detach()))
        if (step + 1) % 50 == 0 or step + 1 == cfg.steps:
            progress(stage, step + 1, cfg.steps)
    if averaged is not None and cfg.steps > 0:
        with torch.no_grad():
            for mine, mean in zip(net.parameters(), averaged.module.parameters(), strict=True):
                mine.copy_(mean)
    net.eval()
    return float(np.mean(tail)) if tail else 0.0


def _masked_error(diff: torch.Tensor, weight: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean :func:`weighted_error` of ``diff [B, S, C]`` over the frames where ``keep [B, S]`` is 1."""
    return (weighted_error(diff, weight) * keep).sum() / keep.sum().clamp_min(1.0)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else 0.0


#: a component's held-out correlation counts as at least this when it damps that component (a negative one included)
CORRELATION_FLOOR = 0.05


def shaped_gain(gain: np.ndarray, correlation: np.ndarray, predicted: np.ndarray, opening: np.ndarray,
                power: float, floor: float = CORRELATION_FLOOR) -> np.ndarray:
    """Per-component gains ``gain [C]`` that match the spread of held-out codes, reshaped by how well each
    component was predicted there (``correlation [C]``): each times ``clip(correlation, floor, 1) ** power``, then
    all times one factor that gives the mouth opening (``predicted [H, C] @ (gain * opening)``, ``opening [C]`` the
    opening's direction) the spread it had -> ``[C]``.

    A component predicted with correlation ``r`` has the least squared error at ``r`` times the spread-matching
    gain, so a full spread-matching gain on a component the speech barely predicts only adds motion that is wrong.
    The opening keeps its calibrated spread (lips that move as much as the subject's), while the shape that the
    speech does not tell is damped. ``power`` 0 returns ``gain``."""
    if power <= 0:
        return gain
    shaped = gain * np.clip(correlation, floor, 1.0) ** power  # [C]
    before, after = float((predicted @ (gain * opening)).std()), float((predicted @ (shaped * opening)).std())
    return shaped * (before / after) if after > 1e-12 and before > 0 else gain


def opening_projection(opening: np.ndarray) -> np.ndarray:
    """The orthogonal projection ``[C, C]`` of codes on the mouth opening's direction ``opening [C]``."""
    o = np.asarray(opening, np.float64)
    return np.outer(o, o) / max(float(o @ o), 1e-12)


def cross_mix(opening: np.ndarray, damping: np.ndarray | float) -> np.ndarray:
    """The mix ``M [C, C]`` that keeps the part of a code along the mouth opening's direction (``opening [C]``) and
    multiplies the rest, the shape across the opening, by ``damping`` (a number, or ``[C]`` per component of that
    rest): ``M = P + Q diag(damping) Q``, ``P`` the orthogonal projection on ``opening``, ``Q = I - P``. Any code
    ``c`` has the opening ``opening @ M @ c == opening @ c``."""
    proj = opening_projection(opening)
    rest = np.eye(len(proj)) - proj
    return proj + rest @ (np.broadcast_to(np.asarray(damping, np.float64), len(proj))[:, None] * rest)


def fitted_cross_damping(predicted: np.ndarray, true: np.ndarray, opening: np.ndarray) -> float:
    """The factor on the shape across the opening (:func:`cross_mix`) with the least squared error of the codes
    ``predicted [H, C]`` against ``true [H, C]`` (held-out frames), clamped to ``[0, 1]``."""
    rest = np.eye(len(opening)) - opening_projection(opening)  # symmetric
    a, b = predicted @ rest, true @ rest
    den = float((a * a).sum())
    return float(np.clip((a * b).sum() / den, 0.0, 1.0)) if den > 1e-12 else 1.0


def fit_mouth_predictor(net: MouthPredictor, features: torch.Tensor, codes: torch.Tensor, num_train: int,
                        weight: torch.Tensor, cfg: MouthTrainConfig, gen: torch.Generator,
                        progress: ProgressFn = no_progress, opening: np.ndarray | None = None,
                        others: Sequence[OtherClip] = ()) -> MouthFitReport:
    """Fit ``net`` in place (module doc). features: ``[T, P, F]``; codes: ``[T, C]`` (rows of frames
    without a face are NaN and skipped); frames ``0 .. num_train-1`` are the training frames; weight:
    ``[C]`` loss weight per component, or ``[C, C]`` (:func:`opening_loss_weight`); opening: the mouth opening's
    direction ``[C]`` (:meth:`~syncanim.face.mouth.MouthBasis.opening_direction`), which ``cfg.shape_shrink``
    and ``cfg.cross_shape`` need (None: the gains are not reshaped and the mix stays the identity); others: clips
    both passes also learn from (:class:`OtherClip`, weighted by ``cfg.other_weight``). The network's feature
    statistics come from the training frames."""
    t0 = time.perf_counter()
    dev = features.device
    valid = torch.isfinite(codes).all(1)
    valid[num_train:] = False
    train_rows = valid.nonzero().squeeze(1)
    if len(train_rows) < 8:
        raise ValueError(f"fit_mouth_predictor: {len(train_rows)} training frames with a face; at least 8 are needed")
    flat = features[train_rows].flatten(1).float()
    with torch.no_grad():
        net.feat_mean.copy_(flat.mean(0))
        net.feat_std.copy_(flat.std(0).clamp_min(1e-5))
        net.gain.fill_(1.0)
        net.mix.copy_(torch.eye(net.code_dim))
    # smoothed over the training frames only: a held-out frame's code must not leak into its neighbour's target
    targets = torch.nan_to_num(smooth_codes(torch.where(valid[:, None], codes, torch.nan), cfg.target_taps))
    codes = torch.nan_to_num(codes)
    start = copy.deepcopy(net.state_dict())
    mix = np.eye(codes.shape[1])
    report = MouthFitReport(steps=cfg.steps, seconds=0.0, holdout_frames=0)

    cut = int(round(len(train_rows) * (1 - cfg.holdout)))
    if cfg.holdout > 0 and len(train_rows) - cut >= 8 and cut >= 8:
        train_window_net(net, features, targets, train_rows[:cut], weight, cfg, gen, progress, "mouth calibration",
                         cfg.ema, others, cfg.other_weight)
        held = train_rows[cut:]
        with torch.no_grad():
            pred = net(features, held).cpu().numpy()  # [H, C]
        true = codes[held].cpu().numpy()
        ratio = true.std(0) / np.maximum(pred.std(0), 1e-6)
        report.holdout_frames = len(held)
        report.holdout_correlation = [_corr(pred[:, c], true[:, c]) for c in range(true.shape[1])]
        gain = np.clip(ratio, 1.0, cfg.max_gain)
        if opening is not None:
            opening = np.asarray(opening, np.float64)
            gain = shaped_gain(gain, np.array(report.holdout_correlation), pred, opening, cfg.shape_shrink)
            if cfg.cross_shape == "fit":
                report.cross_damping = fitted_cross_damping(pred * gain, true, opening)
            elif cfg.cross_shape == "corr":
                report.cross_damping = np.clip(report.holdout_correlation, CORRELATION_FLOOR, 1.0).tolist()
            else:
                report.cross_damping = float(cfg.cross_shape)
            mix = cross_mix(opening, report.cross_damping)
        gain = gain * cfg.render_gain
        net.load_state_dict(start)
    else:
        gain = np.full(codes.shape[1], cfg.render_gain)
    report.loss = train_window_net(net, features, targets, train_rows, weight, cfg, gen, progress, "mouth", cfg.ema,
                                   others, cfg.other_weight)
    with torch.no_grad():
        net.gain.copy_(torch.as_tensor(gain, dtype=net.gain.dtype, device=dev))
        net.mix.copy_(torch.as_tensor(mix, dtype=net.mix.dtype, device=dev))
    report.gain = [float(g) for g in gain]
    report.seconds = time.perf_counter() - t0
    return report
