"""Training losses beyond the photometric one: the perceptual term on lip patches.

LPIPS (AlexNet) when the user supplies its weights (``train.lpips_backbone`` and
``train.lpips_linear``); otherwise the built-in structural-gradient loss (1 - SSIM plus L1 between
image gradients), named as such in the logs, since it is not LPIPS.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from ..config import TrainConfig
from ..errors import ConfigError

log = logging.getLogger(__name__)

#: pred, target: [B, 3, h, w] in [0, 1] -> scalar loss
PerceptualLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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
