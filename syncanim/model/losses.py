"""Training losses: the photometric term, the weights of the terms, and the perceptual term on lip patches.

The perceptual term is LPIPS (AlexNet) when the user supplies its weights (``train.lpips_backbone`` and
``train.lpips_linear``); otherwise the built-in structural-gradient loss (1 - SSIM plus L1 between
image gradients), named as such in the logs, since it is not LPIPS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..config import TrainConfig
from ..errors import ConfigError

log = logging.getLogger(__name__)

#: pred, target: [B, 3, h, w] in [0, 1] -> scalar loss
PerceptualLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the loss terms beside the photometric one (weight 1)."""

    audio_gate: float  # L1 on the mean audio region gate
    expr_gate: float  # L1 on the mean expression region gate
    perceptual: float  # the perceptual term on patches
    distortion: float = 0.0  # the spread of each ray's weights along it (:func:`distortion`)

    @classmethod
    def from_train(cls, train: TrainConfig) -> LossWeights:
        return cls(train.audio_gate_weight, train.expr_gate_weight, train.perceptual_weight, train.distortion_weight)


def photometric(color: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error of colours: color, target [R, 3] float -> scalar."""
    return torch.mean((color - target) ** 2)


def distortion(weights: torch.Tensor, t: torch.Tensor, deltas: torch.Tensor, span: float) -> torch.Tensor:
    """Mean over rays of how spread out their weights are along them (mip-NeRF 360's distortion loss).

    weights, t (interval midpoints), deltas (interval lengths): [R, S]; distances are divided by ``span``
    (the sampled depth range), so the value does not depend on the scene's units. Per ray,
    ``sum_ij w_i w_j |t_i - t_j| + 1/3 sum_i w_i^2 delta_i``, in O(S) through exclusive cumulative sums:
    small when the weight sits in one short stretch (a surface), up to 1/3 for weight spread evenly over
    the range. Its minimum puts the colour on a surface, where a ray can stop after a few samples.
    """
    m, d = t / span, deltas / span
    wm = weights * m
    before = torch.cumsum(weights, -1) - weights  # [R, S]: weight of the samples in front
    before_m = torch.cumsum(wm, -1) - wm
    pairs = 2 * (weights * (m * before - before_m)).sum(-1)  # sum_{i != j} w_i w_j |m_i - m_j|
    own = (weights * weights * d).sum(-1) / 3
    return (pairs + own).mean()


def as_patches(colors: torch.Tensor, patch: int) -> torch.Tensor:
    """Colours of row-major square patches, [B * p * p, 3] -> images [B, 3, p, p]."""
    return colors.view(-1, patch, patch, 3).permute(0, 3, 1, 2)


def make_perceptual(train: TrainConfig, device: torch.device) -> PerceptualLoss:
    from ..metrics.image import structural_loss

    if bool(train.lpips_backbone) != bool(train.lpips_linear):
        raise ConfigError("train.lpips_backbone and train.lpips_linear go together: give both or neither")
    if not train.lpips_backbone:
        log.info("lip perceptual term: structural-gradient loss (LPIPS weights not given)")
        return structural_loss
    from ..metrics.lpips import LPIPS

    net = LPIPS.from_files(train.lpips_backbone, train.lpips_linear, device=device)
    net.requires_grad_(False)
    log.info("lip perceptual term: LPIPS (AlexNet)")
    return lambda pred, target: net(pred, target).mean()
