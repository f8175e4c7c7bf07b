"""Ray compositing: the reference against hand computations and properties, the Triton path against the reference."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from syncanim.kernels import BackendUnavailable, composite_rays, composite_rays_ref


def _rays(r: int, s: int, seed: int = 0, dtype=torch.float32, device="cpu", with_bg: bool = True):
    g = torch.Generator().manual_seed(seed)
    sigma = torch.rand(r, s, generator=g, dtype=dtype) * 4
    sigma[:, ::5] = 0  # some empty samples
    rgb = torch.rand(r, s, 3, generator=g, dtype=dtype)
    deltas = torch.rand(r, s, generator=g, dtype=dtype) * 0.3 + 0.01
    t = torch.cumsum(deltas, dim=1) - deltas / 2
    bg = torch.rand(r, 3, generator=g, dtype=dtype) if with_bg else None
    out = [x.to(device) if x is not None else None for x in (sigma, rgb, deltas, t, bg)]
    for x in (out[0], out[1], out[4]):
        if x is not None:
            x.requires_grad_()
    return out


def test_hand_computed_two_samples():
    sigma = torch.tensor([[1.0, 2.0]])
    deltas = torch.tensor([[0.5, 0.25]])
    t = torch.tensor([[1.0, 2.0]])
    rgb = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.5]]])
    bg = torch.tensor([[0.2, 0.2, 1.0]])
    a0 = 1 - math.exp(-0.5)
    a1 = 1 - math.exp(-0.5)
    w0, w1 = a0, (1 - a0) * a1
    color, opacity, depth, weights = composite_rays_ref(sigma, rgb, deltas, t, bg)
    rest = 1 - w0 - w1
    want_color = [w0 * 1 + rest * 0.2, w1 * 1 + rest * 0.2, w1 * 0.5 + rest * 1.0]
    # float32 against float64 hand arithmetic: a few ulp
    torch.testing.assert_close(weights, torch.tensor([[w0, w1]]), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(color, torch.tensor([want_color]), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(opacity, torch.tensor([w0 + w1]), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(depth, torch.tensor([w0 * 1 + w1 * 2]), rtol=1e-6, atol=1e-7)


def test_hand_computed_second_ray_without_background():
    sigma = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 0.0]])
    deltas = torch.full((2, 3), 0.1)
    t = torch.tensor([[0.1, 0.2, 0.3]]).expand(2, 3)
    rgb = torch.rand(2, 3, 3, generator=torch.Generator().manual_seed(3))
    color, opacity, _, weights = composite_rays_ref(sigma, rgb, deltas, t)
    a1, a2 = 1 - math.exp(-0.3), 1 - math.exp(-0.1)
    want_w = torch.tensor([[0.0, a1, (1 - a1) * a2], [1 - math.exp(-0.2), 0.0, 0.0]])
    torch.testing.assert_close(weights, want_w, rtol=1e-6, atol=1e-7)  # float32 rounding
    torch.testing.assert_close(color, (want_w[..., None] * rgb).sum(1), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(opacity, want_w.sum(1), rtol=1e-6, atol=1e-7)


BACKENDS_HERE = ["ref"]


@pytest.mark.parametrize("backend", BACKENDS_HERE)
def test_opaque_first_sample_gives_its_colour(backend):
    sigma, rgb, deltas, t, bg = _rays(4, 9)
    sigma = sigma.detach().clone()
    sigma[:, 0] = 1e4  # exp(-1e4 * delta) == 0 in float32
    color, opacity, depth, weights = composite_rays(sigma, rgb, deltas, t, bg, backend=backend)
    torch.testing.assert_close(color, rgb[:, 0].detach(), rtol=0, atol=0)  # weights are exactly [1, 0, ...]
    torch.testing.assert_close(opacity, torch.ones(4), rtol=0, atol=0)
    torch.testing.assert_close(depth, t[:, 0], rtol=0, atol=0)
    assert (weights[:, 1:] == 0).all()


@pytest.mark.parametrize("backend", BACKENDS_HERE)
def test_empty_rays_give_background(backend):
    _, rgb, deltas, t, bg = _rays(5, 6)
    sigma = torch.zeros(5, 6)
    color, opacity, depth, weights = composite_rays(sigma, rgb, deltas, t, bg, backend=backend)
    torch.testing.assert_close(color, bg.detach(), rtol=0, atol=0)  # exact: all weights are 0
    assert (opacity == 0).all() and (depth == 0).all() and (weights == 0).all()
    color, *_ = composite_rays(sigma, rgb, deltas, t, None, backend=backend)
    assert (color == 0).all()


@pytest.mark.parametrize("with_bg", [True, False])
def test_ref_gradcheck_float64(with_bg):
    sigma, rgb, deltas, t, bg = _rays(3, 5, dtype=torch.float64, with_bg=with_bg)
    sigma.data[0, 1] = 50.0  # nearly opaque sample
    inputs = (sigma, rgb, deltas, t, bg) if with_bg else (sigma, rgb, deltas, t)
    assert torch.autograd.gradcheck(composite_rays_ref, inputs, eps=1e-6, atol=1e-6)


def test_ref_gradient_through_fully_opaque_sample():
    # exp(-1000) == 0: a zero factor in the cumprod; its backward must still be finite and match float64 analysis
    sigma = torch.tensor([[0.5, 1000.0, 2.0]], dtype=torch.float64, requires_grad=True)
    rgb = torch.rand(1, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    deltas = torch.ones(1, 3, dtype=torch.float64)
    color, *_ = composite_rays_ref(sigma, rgb, deltas, deltas.cumsum(1))
    (g,) = torch.autograd.grad(color.sum(), sigma)
    assert g.isfinite().all()
    # the colour after an opaque sample no longer depends on later samples
    assert g[0, 2] == 0


@pytest.mark.parametrize("r,s", [(1, 1), (6, 7), (32, 64)])
def test_ref_properties(r, s):
    sigma, rgb, deltas, t, bg = _rays(r, s, seed=r + s)
    color, opacity, depth, weights = composite_rays_ref(sigma, rgb, deltas, t, bg)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(1), opacity, rtol=0, atol=0)  # the same reduction
    assert (opacity <= 1 + 1e-6).all()  # 1 - prod(1 - alpha), up to float32 rounding
    assert ((color >= -1e-6) & (color <= 1 + 1e-6)).all()  # a convex combination of colours in [0, 1]
    assert ((depth >= 0) & (depth <= t[:, -1] + 1e-5)).all()


def test_dtypes():
    sigma, rgb, deltas, t, bg = _rays(4, 8)
    with torch.no_grad():
        want = composite_rays(sigma, rgb, deltas, t, bg, backend="ref")
    low = [x.detach().bfloat16().requires_grad_(x.requires_grad) for x in (sigma, rgb, deltas, t, bg)]
    got = composite_rays(*low, backend="ref")
    assert all(o.dtype == torch.float32 for o in got)
    # bfloat16 inputs carry 8 bits of mantissa: ~0.4% relative input error
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a.detach(), b, rtol=3e-2, atol=3e-2)
    got[0].sum().backward()
    assert low[0].grad.dtype == torch.bfloat16 and low[1].grad is not None and low[4].grad is not None
    with pytest.raises(ValueError, match="float64"):
        composite_rays(*(x.detach().double() for x in (sigma, rgb, deltas, t, bg)))


def test_rejects_bad_inputs():
    sigma, rgb, deltas, t, bg = _rays(4, 8)
    with pytest.raises(ValueError, match=r"\[4, 8, 3\].*\[4, 8\]"):
        composite_rays(sigma, rgb[..., 0], deltas, t, bg)
    with pytest.raises(ValueError, match=r"\[4, 3\].*\[3, 3\]"):
        composite_rays(sigma, rgb, deltas, t, bg[:3])
    with pytest.raises(ValueError, match=r"\[8\]"):
        composite_rays(sigma[0], rgb, deltas, t, bg)
    with pytest.raises(ValueError, match="deltas"):
        composite_rays(sigma, rgb, deltas.clone().requires_grad_(), t, bg)
    with pytest.raises(BackendUnavailable):
        composite_rays(sigma, rgb, deltas, t, bg, backend="torch")


def test_auto_on_cpu_is_ref(caplog, monkeypatch):
    from syncanim.kernels import backend as be

    monkeypatch.setattr(be, "_chosen", {})
    sigma, rgb, deltas, t, bg = _rays(2, 3)
    with caplog.at_level(logging.INFO, logger="syncanim.kernels.backend"):
        composite_rays(sigma, rgb, deltas, t, bg)
    assert be.chosen_backends()["composite_rays"] == "ref"
    assert any("composite_rays" in r.getMessage() for r in caplog.records)


def test_empty_batch():
    sigma, rgb, deltas, t, bg = _rays(0, 4)
    color, opacity, depth, weights = composite_rays(sigma, rgb, deltas, t, bg)
    assert color.shape == (0, 3) and opacity.shape == (0,) and depth.shape == (0,) and weights.shape == (0, 4)


# ---------------------------------------------------------------- GPU


def _check_triton(r: int, s: int, with_bg: bool, dtype=torch.float32, seed: int = 0, device: str = "cuda"):
    sigma, rgb, deltas, t, bg = _rays(r, s, seed=seed, dtype=dtype, device=device, with_bg=with_bg)
    want = composite_rays(sigma, rgb, deltas, t, bg, backend="ref")
    got = composite_rays(sigma, rgb, deltas, t, bg, backend="triton")
    # exp of a running sum of optical depths instead of a product of exp: a few float32 ulp per sample
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    gen = torch.Generator().manual_seed(seed + 1)
    cots = [torch.randn(o.shape, generator=gen).to(device) for o in want]
    leaves = [x for x in (sigma, rgb, bg) if x is not None]
    g_want = torch.autograd.grad(want, leaves, cots)
    g_got = torch.autograd.grad(got, leaves, cots)
    # reverse accumulation (total minus a prefix sum) against autograd through cumprod: error grows with S
    for a, b in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * max(1.0, s / 32))


@pytest.mark.gpu
@pytest.mark.parametrize("r", [1, 7, 4096])
@pytest.mark.parametrize("s", [1, 3, 64, 128, 200])
@pytest.mark.parametrize("with_bg", [True, False])
def test_gpu_triton_matches_ref(r, s, with_bg):
    _check_triton(r, s, with_bg)


@pytest.mark.gpu
def test_gpu_triton_bf16_inputs():
    _check_triton(256, 48, True, dtype=torch.bfloat16)


def _check_triton_special_cases(device: str = "cuda"):
    sigma, rgb, deltas, t, bg = _rays(16, 32, device=device)
    sigma = sigma.detach().clone()
    sigma[:8, 0] = float("inf")  # opaque: clamped optical depth, no inf - inf
    sigma[8:] = 0
    color, opacity, depth, _ = composite_rays(sigma, rgb, deltas, t, bg, backend="triton")
    torch.testing.assert_close(color[:8], rgb[:8, 0].detach(), rtol=0, atol=1e-6)  # exp(-80) leftovers only
    torch.testing.assert_close(color[8:], bg[8:].detach(), rtol=0, atol=0)  # all weights exactly 0
    assert (opacity[8:] == 0).all() and color.isfinite().all() and depth.isfinite().all()


@pytest.mark.gpu
def test_gpu_triton_special_cases():
    _check_triton_special_cases()
