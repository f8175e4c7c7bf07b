"""Image metrics on torch tensors (CPU or GPU): PSNR, SSIM and the structural-gradient training loss.

Conventions
-----------
- Images are ``[H, W, 3]`` (one frame) or ``[B, H, W, 3]`` (a batch) for the evaluation metrics, and
  ``[B, 3, h, w]`` for :func:`structural_loss`, the layout of training patches. Float inputs are in
  [0, 1]; ``uint8`` inputs are read as 8-bit levels (value / 255).
- **PSNR is measured on 8-bit levels by default** (``quantize=True``): both images are clamped to
  [0, 1] and rounded to the nearest of the 256 levels, ``floor(255 x + 0.5) / 255``, before the error
  is taken, so a float render scores the same as its saved PNG/video frame. The data range is 1 in
  these units (255 in levels), so ``psnr = 10 log10(1 / mse)`` with ``mse`` the mean squared error
  over pixels and the three channels. The ER-NeRF/SyncTalk ``PSNRMeter`` does not round its float
  render (its ground truth is 8-bit by origin); ``quantize=False`` computes that variant, and at
  PSNR 30-40 dB the two differ by well under 0.1 dB. Identical images give ``inf`` (zero error).
  Averaging over a clip is the caller's choice; the papers average per-frame PSNR.
- **SSIM** is Wang et al. (2004): an 11x11 Gaussian window with sigma 1.5, ``K1 = 0.01``,
  ``K2 = 0.03``, data range 1, population (not sample) covariances, the SSIM map averaged over the
  positions where the whole window fits inside the image and then over channels. This equals
  ``skimage.metrics.structural_similarity(a, b, channel_axis=-1, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1.0)``: scikit-image filters with reflected borders and
  then crops 5 px from every side, which leaves exactly the positions computed here.
  SSIM is taken on the values given (``quantize=False`` by default); it runs in float64.
"""

from __future__ import annotations

import math

import torch

WINDOW = 11  # SSIM Gaussian window side, px
SIGMA = 1.5  # SSIM Gaussian window standard deviation, px
K1 = 0.01
K2 = 0.03


# --- input handling ---------------------------------------------------------------------------


def to_8bit_levels(x: torch.Tensor) -> torch.Tensor:
    """Round ``x`` (float, in [0, 1] after clamping) to 8-bit levels, returned in [0, 1] as the same
    dtype: ``floor(255 * clamp(x, 0, 1) + 0.5) / 255`` (ties round up)."""
    return torch.floor(x.clamp(0.0, 1.0) * 255.0 + 0.5) / 255.0


def _unit_float64(x: torch.Tensor, quantize: bool) -> torch.Tensor:
    """``uint8`` levels or float in [0, 1] -> float64 in [0, 1] (rounded to 8-bit levels if asked)."""
    if x.dtype == torch.uint8:
        return x.to(torch.float64) / 255.0
    if not x.is_floating_point():
        raise ValueError(f"images must be float in [0, 1] or uint8, got dtype {x.dtype}")
    x = x.to(torch.float64)
    return to_8bit_levels(x) if quantize else x


def _check_pair(pred: torch.Tensor, target: torch.Tensor, name: str) -> bool:
    """Check ``[H, W, 3]`` / ``[B, H, W, 3]`` pairs of equal shape; True when batched."""
    if pred.shape != target.shape:
        raise ValueError(f"{name}: pred and target differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if pred.ndim not in (3, 4) or pred.shape[-1] != 3:
        raise ValueError(f"{name}: expected [H, W, 3] or [B, H, W, 3] images, got {tuple(pred.shape)}")
    if pred.device != target.device:
        raise ValueError(f"{name}: pred is on {pred.device}, target on {target.device}")
    return pred.ndim == 4


def _scalar_or_list(values: torch.Tensor, batched: bool) -> float | list[float]:
    out = [float(v) for v in values.cpu()]
    return out if batched else out[0]


# --- PSNR -------------------------------------------------------------------------------------


def psnr(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    quantize: bool = True,
) -> float | list[float]:
    """Peak signal-to-noise ratio in dB, data range 1 (8-bit levels when ``quantize``; see module doc).

    pred, target: ``[H, W, 3]`` or ``[B, H, W, 3]`` float in [0, 1] (or uint8 levels).
    mask: optional ``[H, W]`` (or ``[B, H, W]``) bool; the mean squared error is taken over the
    pixels where it is True (all three channels), e.g. a face box. An empty mask is an error.
    Returns a float for one image, a list of B floats for a batch; ``inf`` where the images (inside
    the mask) are identical.
    """
    batched = _check_pair(pred, target, "psnr")
    a = _unit_float64(pred, quantize)
    b = _unit_float64(target, quantize)
    if not batched:
        a, b = a[None], b[None]  # [1, H, W, 3]
    se = (a - b).square().sum(-1)  # [B, H, W]
    if mask is None:
        mse = se.mean((1, 2)) / 3.0  # [B]
    else:
        if mask.dtype != torch.bool:
            raise ValueError(f"psnr: mask must be bool, got {mask.dtype}")
        allowed = [se.shape[1:], se.shape] if batched else [se.shape[1:]]
        if mask.shape not in allowed:
            raise ValueError(f"psnr: mask must be [H, W] or [B, H, W] for images {tuple(pred.shape)}, got {tuple(mask.shape)}")
        m = mask.to(se.device).expand_as(se)  # [B, H, W]
        count = m.sum((1, 2))  # [B]
        if bool((count == 0).any()):
            raise ValueError("psnr: the mask selects no pixels")
        mse = (se * m).sum((1, 2)) / (3.0 * count)  # [B]
    values = torch.where(mse > 0, -10.0 * torch.log10(mse), torch.full_like(mse, math.inf))
    return _scalar_or_list(values, batched)


# --- SSIM -------------------------------------------------------------------------------------


def gaussian_window(size: int, sigma: float, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian taps ``[size]`` centred on the middle tap (what scipy's
    ``gaussian_filter`` uses for ``truncate = (size // 2) / sigma``)."""
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def gaussian_filter_valid(x: torch.Tensor, window: int = WINDOW, sigma: float = SIGMA) -> torch.Tensor:
    """Separable Gaussian filter of ``x: [..., H, W]`` at every position where the whole window fits:
    ``[..., H - window + 1, W - window + 1]``, ``out[i, j] = sum_{k, l} g[k] g[l] x[i + k, j + l]``.

    Written as shifted multiply-adds (two passes of ``window`` terms), which stays fast on CPU and
    GPU for any dtype and image size. Differentiable.
    """
    h, w = x.shape[-2:]
    g = gaussian_window(window, sigma, dtype=torch.float64, device=torch.device("cpu")).tolist()
    rows = x[..., 0 : h - window + 1, :] * g[0]  # [..., H', W]
    for k in range(1, window):
        rows.add_(x[..., k : k + h - window + 1, :], alpha=g[k])
    out = rows[..., :, 0 : w - window + 1] * g[0]  # [..., H', W']
    for k in range(1, window):
        out.add_(rows[..., :, k : k + w - window + 1], alpha=g[k])
    return out


def ssim_map(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    window: int = WINDOW,
    sigma: float = SIGMA,
) -> torch.Tensor:
    """Per-position SSIM of ``x, y: [B, C, H, W]`` float -> ``[B, C, H - window + 1, W - window + 1]``.

    Local means, variances and the covariance come from a separable Gaussian filter evaluated only
    where the window lies inside the image (no padding, :func:`gaussian_filter_valid`); population
    covariances. Differentiable; computed in the inputs' dtype.
    """
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"ssim_map: expected two [B, C, H, W] tensors of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    _, c, h, w = x.shape
    if h < window or w < window:
        raise ValueError(f"ssim_map: images must be at least {window}x{window}, got {h}x{w}")
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # [B, 5C, H, W]
    stack = gaussian_filter_valid(stack, window, sigma)  # [B, 5C, H', W']
    mx, my, mxx, myy, mxy = stack.split(c, dim=1)  # each [B, C, H', W']
    vx = mxx - mx * mx
    vy = myy - my * my
    cxy = mxy - mx * my
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim(pred: torch.Tensor, target: torch.Tensor, quantize: bool = False) -> float | list[float]:
    """Mean SSIM (Wang et al. 2004; see module doc), data range 1, mean over the three channels.

    pred, target: ``[H, W, 3]`` or ``[B, H, W, 3]`` float in [0, 1] (or uint8 levels), at least
    11x11. ``quantize`` rounds both to 8-bit levels first. Returns a float for one image, a list of
    B floats for a batch; identical images give 1.0.
    """
    batched = _check_pair(pred, target, "ssim")
    a = _unit_float64(pred, quantize)
    b = _unit_float64(target, quantize)
    if not batched:
        a, b = a[None], b[None]
    a = a.permute(0, 3, 1, 2)  # [B, 3, H, W]
    b = b.permute(0, 3, 1, 2)
    values = ssim_map(a, b, data_range=1.0).mean((1, 2, 3))  # [B]
    return _scalar_or_list(values, batched)


# --- training loss ----------------------------------------------------------------------------


def structural_loss(pred: torch.Tensor, target: torch.Tensor, grad_weight: float = 1.0) -> torch.Tensor:
    """Structural-gradient loss, a built-in perceptual stand-in for LPIPS on training patches.

    pred, target: ``[B, 3, h, w]`` float in [0, 1], ``h, w >= 11``. Returns a scalar tensor:

        L = (1 - mean SSIM(pred, target))
            + grad_weight * ( mean |dx(pred) - dx(target)| + mean |dy(pred) - dy(target)| ) / 2

    where SSIM is :func:`ssim_map` (11x11 Gaussian window, sigma 1.5, data range 1) averaged over
    batch, channels and positions, and ``dx``/``dy`` are forward differences along width and height
    (``x[..., :, 1:] - x[..., :, :-1]`` and ``x[..., 1:, :] - x[..., :-1, :]``). 0 for identical
    patches. Differentiable in both arguments; computed in float32 (float64 stays float64), so
    autocast does not run the variance terms in half precision.
    """
    if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(f"structural_loss: expected two [B, 3, h, w] tensors of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
    p = pred.to(dtype)
    t = target.to(dtype)
    structure = 1.0 - ssim_map(p, t, data_range=1.0).mean()
    gx = ((p[..., :, 1:] - p[..., :, :-1]) - (t[..., :, 1:] - t[..., :, :-1])).abs().mean()
    gy = ((p[..., 1:, :] - p[..., :-1, :]) - (t[..., 1:, :] - t[..., :-1, :])).abs().mean()
    return structure + grad_weight * 0.5 * (gx + gy)
