"""PSNR / SSIM against scikit-image, and the structural-gradient loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.data import astronaut
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from syncanim.metrics.image import psnr, ssim, ssim_map, structural_loss, to_8bit_levels

SKIMAGE_SSIM = dict(channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)


def _pair(h: int, w: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A natural image crop ``[h, w, 3]`` in [0, 1] and a noisy copy (float64)."""
    rng = np.random.default_rng(seed)
    a = astronaut()[:h, :w].astype(np.float64) / 255.0
    b = np.clip(a + rng.normal(0.0, noise, a.shape), 0.0, 1.0)
    return a, b


def _levels_np(x: np.ndarray) -> np.ndarray:
    """The documented 8-bit rounding, written independently in numpy."""
    return np.floor(np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# --- PSNR -------------------------------------------------------------------------------------


@pytest.mark.parametrize("noise", [0.5 / 255, 0.01, 0.1])
def test_psnr_quantized_matches_skimage_on_8bit(noise):
    a, b = _pair(96, 80, noise)
    expected = peak_signal_noise_ratio(_levels_np(a), _levels_np(b), data_range=255)
    got = psnr(torch.from_numpy(b).float(), torch.from_numpy(a).float())
    # float32 inputs are rounded to the same levels; the error itself is computed in float64
    assert got == pytest.approx(expected, abs=1e-9)


def test_psnr_unquantized_matches_skimage_on_floats():
    a, b = _pair(64, 64, 0.03)
    expected = peak_signal_noise_ratio(a, b, data_range=1.0)
    assert psnr(torch.from_numpy(b), torch.from_numpy(a), quantize=False) == pytest.approx(expected, abs=1e-9)


def test_psnr_uint8_input_is_levels():
    a, b = _pair(32, 48, 0.05)
    a8, b8 = _levels_np(a), _levels_np(b)
    from_u8 = psnr(torch.from_numpy(b8), torch.from_numpy(a8))
    from_float = psnr(torch.from_numpy(b), torch.from_numpy(a))
    assert from_u8 == pytest.approx(from_float, abs=1e-9)


def test_psnr_identical_is_inf():
    a, _ = _pair(32, 32, 0.0)
    t = torch.from_numpy(a).float()
    assert psnr(t, t.clone()) == math.inf
    # differences below half a level vanish once both are rounded to 8 bits
    assert psnr(t, to_8bit_levels(t) + 0.1 / 255) == math.inf
    assert psnr(t, t + 0.1 / 255, quantize=False) < math.inf


def test_psnr_mask_equals_cropped_region():
    a, b = _pair(64, 64, 0.05)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    mask = torch.zeros(64, 64, dtype=torch.bool)
    mask[10:40, 20:50] = True
    assert psnr(tb, ta, mask=mask) == pytest.approx(psnr(tb[10:40, 20:50], ta[10:40, 20:50]), abs=1e-9)


def test_psnr_batch_is_per_image():
    pairs = [_pair(40, 40, n, seed=i) for i, n in enumerate((0.01, 0.05, 0.2))]
    pa = torch.from_numpy(np.stack([p[1] for p in pairs]))  # [3, 40, 40, 3]
    ta = torch.from_numpy(np.stack([p[0] for p in pairs]))
    got = psnr(pa, ta)
    assert isinstance(got, list) and len(got) == 3
    for g, (a, b) in zip(got, pairs, strict=True):
        assert g == pytest.approx(psnr(torch.from_numpy(b), torch.from_numpy(a)), abs=1e-9)
    assert got[0] > got[1] > got[2]
    masks = torch.zeros(3, 40, 40, dtype=torch.bool)
    masks[0, :20], masks[1, :, :10], masks[2, 5:9, 5:9] = True, True, True
    per_mask = psnr(pa, ta, mask=masks)
    assert per_mask[2] == pytest.approx(psnr(pa[2, 5:9, 5:9], ta[2, 5:9, 5:9]), abs=1e-9)


def test_psnr_rejects_bad_inputs():
    x = torch.rand(8, 8, 3)
    with pytest.raises(ValueError, match=r"\(8, 8, 3\) vs \(8, 9, 3\)"):
        psnr(x, torch.rand(8, 9, 3))
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        psnr(torch.rand(8, 8), torch.rand(8, 8))
    with pytest.raises(ValueError, match="no pixels"):
        psnr(x, x, mask=torch.zeros(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must be"):
        psnr(x, x, mask=torch.ones(4, 4, dtype=torch.bool))


# --- SSIM -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("h", "w", "noise"), [(64, 64, 0.02), (77, 50, 0.1), (11, 11, 0.05), (128, 96, 1 / 255)])
def test_ssim_matches_skimage(h, w, noise):
    a, b = _pair(h, w, noise)
    expected = structural_similarity(a, b, **SKIMAGE_SSIM)
    # the spec allows 1e-4; in float64 the two agree to ~1e-15
    assert ssim(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, abs=1e-4)
    assert ssim(torch.from_numpy(a).float(), torch.from_numpy(b).float()) == pytest.approx(expected, abs=1e-4)


def test_ssim_full_frame_matches_skimage():
    a, b = _pair(512, 512, 0.05)
    expected = structural_similarity(a, b, **SKIMAGE_SSIM)
    assert ssim(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(expected, abs=1e-4)


def test_ssim_identical_is_one_and_batch_is_per_image():
    a, b = _pair(48, 48, 0.05)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    assert ssim(ta, ta.clone()) == 1.0
    got = ssim(torch.stack([ta, tb]), torch.stack([ta, ta]))
    assert isinstance(got, list) and len(got) == 2
    assert got[0] == 1.0
    assert got[1] == pytest.approx(ssim(tb, ta), abs=1e-12)


def test_ssim_rejects_small_images():
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(10, 20, 3), torch.rand(10, 20, 3))


# --- structural-gradient loss -----------------------------------------------------------------


def test_structural_loss_formula_and_zero():
    a, b = _pair(64, 64, 0.05)
    p = torch.from_numpy(b).permute(2, 0, 1)[None]  # [1, 3, 64, 64] float64
    t = torch.from_numpy(a).permute(2, 0, 1)[None]
    loss = structural_loss(p, t)
    assert loss.shape == ()
    assert float(structural_loss(t, t.clone())) == 0.0
    assert float(structural_loss(p, t, grad_weight=0.0)) == pytest.approx(1.0 - ssim(torch.from_numpy(b), torch.from_numpy(a)), abs=1e-12)
    gx = ((p[..., 1:] - p[..., :-1]) - (t[..., 1:] - t[..., :-1])).abs().mean()
    gy = ((p[..., 1:, :] - p[..., :-1, :]) - (t[..., 1:, :] - t[..., :-1, :])).abs().mean()
    assert float(loss) == pytest.approx(1.0 - float(ssim_map(p, t).mean()) + 0.5 * float(gx + gy), abs=1e-12)


def test_structural_loss_grows_with_noise_and_has_gradients():
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 32, 40, generator=gen)
    losses = []
    for sd in (0.01, 0.05, 0.2):
        pred = (target + sd * torch.randn(target.shape, generator=gen)).clamp(0, 1).requires_grad_(True)
        loss = structural_loss(pred, target)
        loss.backward()
        assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
        losses.append(loss.item())
    assert losses[0] < losses[1] < losses[2]


def test_structural_loss_keeps_float32_under_half_inputs():
    target = torch.rand(1, 3, 16, 16)
    pred = target.half()
    loss = structural_loss(pred, target.half())
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_structural_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\[B, 3, h, w\]"):
        structural_loss(torch.rand(1, 16, 16, 3), torch.rand(1, 16, 16, 3))


def test_structural_loss_gradient_matches_finite_differences():
    gen = torch.Generator().manual_seed(4)
    target = torch.rand(1, 3, 13, 12, dtype=torch.float64, generator=gen)
    pred = torch.rand(1, 3, 13, 12, dtype=torch.float64, generator=gen).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: structural_loss(p, target), (pred,))
