"""LPIPS (Zhang et al. 2018), AlexNet backbone, version 0.1, from weight files the user supplies.

Nothing is downloaded: two local files are needed.

- **Backbone**: torchvision's ImageNet AlexNet checkpoint ``alexnet-owt-7be5be79.pth`` (a plain state
  dict). Its ``features.*`` tensors load into :class:`AlexNetFeatures`, a copy of torchvision's
  ``alexnet().features`` (same layers, same indices, same keys). The file's ``classifier.*`` entries
  (torchvision's ``classifier.{1,4,6}.{weight,bias}``) are accepted and not loaded; any other extra,
  missing or mis-shaped key is an error. A file holding only the ``features.*`` keys works too.
- **Linear heads**: the lpips package's ``weights/v0.1/alex.pth``, exactly the keys
  ``lin0.model.1.weight`` ... ``lin4.model.1.weight`` (1x1 convolutions without bias over 64, 192,
  384, 256 and 256 channels), loaded into :class:`LPIPSHeads` strictly.

Files ending in ``.safetensors`` are read with safetensors, anything else with
``torch.load(weights_only=True)``.

Distance, for ``pred, target: [B, 3, H, W]`` in [0, 1] (the lpips package with ``normalize=True``):

1. ``x -> (2 x - 1 - shift) / scale`` with ``shift = (-0.030, -0.088, -0.188)`` and
   ``scale = (0.458, 0.448, 0.450)`` per RGB channel.
2. AlexNet activations after the ReLUs of conv1..conv5 (``features`` indices 1, 4, 7, 9, 11).
3. Each activation is divided by its channel-vector norm at every position (plus 1e-10).
4. Squared difference of the two images' normalised activations, 1x1 head ``lin{l}`` -> one channel,
   mean over positions, summed over the five layers -> ``[B]``.

The norm in step 3 is ``torch.linalg.vector_norm``, whose gradient is 0 (not NaN) where a whole
channel vector is zero; values equal the lpips package's ``sqrt(sum(x ** 2))``. The heads' dropout
(active only in training mode in the lpips package) is an identity here, so ``train()`` does not
change the distance. All weights are frozen (``requires_grad=False``); gradients reach the inputs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from .weights import check_layout, read_state

log = logging.getLogger(__name__)

CHANNELS = (64, 192, 384, 256, 256)  # conv1..conv5 output channels = LPIPS head inputs
TAPS = (1, 4, 7, 9, 11)  # indices in ``features`` after which activations are read (the ReLUs)
SHIFT = (-0.030, -0.088, -0.188)  # lpips ScalingLayer, per RGB channel, inputs in [-1, 1]
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10  # lpips normalize_tensor
MIN_SIDE = 31  # smallest H, W for which AlexNet's conv5 output is non-empty

BACKBONE_HINT = "torchvision's ImageNet AlexNet checkpoint alexnet-owt-7be5be79.pth"
LINEAR_HINT = "the lpips package's v0.1 AlexNet linear weights (lpips/weights/v0.1/alex.pth)"

# torchvision's AlexNet classifier: present in its checkpoint, unused by LPIPS.
_CLASSIFIER_KEYS = frozenset(f"classifier.{i}.{p}" for i in (1, 4, 6) for p in ("weight", "bias"))


class AlexNetFeatures(nn.Module):
    """torchvision's ``alexnet().features`` without torchvision: state-dict keys ``features.0.weight``,
    ``features.0.bias``, ``features.3.*``, ``features.6.*``, ``features.8.*``, ``features.10.*``.

    ``forward(x: [B, 3, H, W] float) -> list`` of the five ReLU outputs ``[B, C_l, H_l, W_l]``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),  # 0
            nn.ReLU(),  # 1
            nn.MaxPool2d(kernel_size=3, stride=2),  # 2
            nn.Conv2d(64, 192, kernel_size=5, padding=2),  # 3
            nn.ReLU(),  # 4
            nn.MaxPool2d(kernel_size=3, stride=2),  # 5
            nn.Conv2d(192, 384, kernel_size=3, padding=1),  # 6
            nn.ReLU(),  # 7
            nn.Conv2d(384, 256, kernel_size=3, padding=1),  # 8
            nn.ReLU(),  # 9
            nn.Conv2d(256, 256, kernel_size=3, padding=1),  # 10
            nn.ReLU(),  # 11
            nn.MaxPool2d(kernel_size=3, stride=2),  # 12 (kept for the layout; LPIPS stops at 11)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features[: TAPS[-1] + 1]):
            x = layer(x)
            if i in TAPS:
                taps.append(x)
        return taps


class _NetLin(nn.Module):
    """One LPIPS head: ``model = [identity (the package's dropout slot), 1x1 conv C -> 1, no bias]``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))


class LPIPSHeads(nn.Module):
    """The five linear heads ``lin0..lin4``; keys ``lin{l}.model.1.weight: [1, C_l, 1, 1]``."""

    def __init__(self) -> None:
        super().__init__()
        for i, c in enumerate(CHANNELS):
            self.add_module(f"lin{i}", _NetLin(c))

    def head(self, layer: int) -> nn.Module:
        return getattr(self, f"lin{layer}").model


def unit_normalize(x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """``x: [B, C, H, W]`` divided by its channel-vector norm at each position (plus ``eps``)."""
    return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + eps)


def lpips_distance(
    feats_pred: list[torch.Tensor],
    feats_target: list[torch.Tensor],
    heads: LPIPSHeads,
) -> torch.Tensor:
    """LPIPS from the backbone activations of two images: lists of ``[B, C_l, H_l, W_l]`` -> ``[B]``."""
    total = None
    for layer, (a, b) in enumerate(zip(feats_pred, feats_target, strict=True)):
        diff = (unit_normalize(a) - unit_normalize(b)).square()  # [B, C_l, H_l, W_l]
        value = heads.head(layer)(diff).mean((1, 2, 3))  # [B]
        total = value if total is None else total + value
    assert total is not None
    return total


class LPIPS(nn.Module):
    """LPIPS-Alex v0.1. Build with :meth:`from_files`; a bare ``LPIPS()`` has random weights.

    ``model(pred, target)``: ``[B, 3, H, W]`` float in [0, 1], ``H, W >= 31`` -> ``[B]`` distances
    (0 for identical images). Differentiable in both inputs, so it can serve as a training loss.
    """

    def __init__(self) -> None:
        super().__init__()
        self.backbone = AlexNetFeatures()
        self.heads = LPIPSHeads()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    @classmethod
    def from_files(
        cls,
        backbone_path: str | os.PathLike[str],
        linear_path: str | os.PathLike[str],
        device: str | torch.device = "cpu",
    ) -> LPIPS:
        """Load the AlexNet backbone and the v0.1 heads (see module doc); raises CheckpointError
        naming the file and what belongs there when either is missing or does not fit."""
        model = cls()
        backbone = _backbone_state(Path(backbone_path))
        linear = _linear_state(Path(linear_path))
        model.backbone.load_state_dict(backbone, strict=True)
        model.heads.load_state_dict(linear, strict=True)
        log.debug("LPIPS-Alex loaded from %s and %s", backbone_path, linear_path)
        return model.to(device).eval()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
            raise ValueError(f"LPIPS: expected two [B, 3, H, W] tensors of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
        if min(pred.shape[2:]) < MIN_SIDE:
            raise ValueError(f"LPIPS: images must be at least {MIN_SIDE}x{MIN_SIDE}, got {tuple(pred.shape)}")
        n = pred.shape[0]
        x = torch.cat([pred, target]).to(self.shift.dtype)  # [2B, 3, H, W]: one backbone pass
        x = (2.0 * x - 1.0 - self.shift) / self.scale
        feats = self.backbone(x)
        return lpips_distance([f[:n] for f in feats], [f[n:] for f in feats], self.heads)


def lpips_available(backbone_path: str | os.PathLike[str], linear_path: str | os.PathLike[str]) -> str | None:
    """None when both files exist and fit :class:`LPIPS`, else what is missing, in one line.

    Reads both files fully (the torchvision checkpoint is about 230 MB)."""
    try:
        _backbone_state(Path(backbone_path))
        _linear_state(Path(linear_path))
    except CheckpointError as e:
        return str(e)
    return None


# --- loading ----------------------------------------------------------------------------------


def _backbone_state(path: Path) -> dict[str, torch.Tensor]:
    what = "LPIPS backbone weights"
    state = read_state(path, what, BACKBONE_HINT)
    return check_layout(state, AlexNetFeatures(), path, what, BACKBONE_HINT, ignored=_CLASSIFIER_KEYS)


def _linear_state(path: Path) -> dict[str, torch.Tensor]:
    what = "LPIPS linear weights"
    state = read_state(path, what, LINEAR_HINT)
    return check_layout(state, LPIPSHeads(), path, what, LINEAR_HINT)
