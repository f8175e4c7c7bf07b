"""Triton kernels of ``syncanim.kernels.composite.composite_rays`` (backend ``"triton"``).

Loaded by file path on first use by ``syncanim.kernels.backend.load_triton_module``. One program per
block of BLOCK_R rays walks the S samples in tiles of BLOCK_S (any S; the last tile is masked), carrying
the optical depth of the earlier tiles. With ``x_i = sigma_i * delta_i``:

    T_i = exp(-sum_{j<i} x_j),  w_i = (1 - exp(-x_i)) T_i,
    color = sum_i w_i rgb_i + (1 - sum_i w_i) bg,  opacity = sum_i w_i,  depth = sum_i w_i t_i.

Backward (no autograd through a scan). With cotangents gC [3], gW, gD, gw_i, let
``v_i = gC . (rgb_i - bg) + gW + gD t_i + gw_i`` (= dL/dw_i). Then

    dL/dx_i = v_i T_{i+1} - sum_{k>i} v_k w_k,   dL/dsigma_i = delta_i dL/dx_i,   dL/drgb_i = w_i gC,

where ``sum_{k>i} v_k w_k = A - sum_{k<=i} v_k w_k`` and the total
``A = sum_k v_k w_k = gC . (color - bg) + gW opacity + gD depth + sum_k gw_k w_k`` comes from the saved outputs.
Per-sample optical depths above 80 are treated as 80 (``exp(-80)`` is ~1e-35, opaque in float32), so an
infinite ``sigma * delta`` cannot produce ``inf - inf``; NaN stays NaN. All tensors are float32, contiguous.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl


@triton.jit
def _optical_depth(sigma_ptr, delta_ptr, offs, m):
    x = tl.load(sigma_ptr + offs, mask=m, other=0.0) * tl.load(delta_ptr + offs, mask=m, other=0.0)
    return tl.where(x > 80.0, 80.0, x)  # keeps NaN (a comparison with NaN is false)


@triton.jit
def _composite_fwd_kernel(sigma_ptr, rgb_ptr, delta_ptr, t_ptr, bg_ptr, color_ptr, opacity_ptr, depth_ptr,
                          weights_ptr, R, S, HAS_BG: tl.constexpr, BLOCK_R: tl.constexpr,
                          BLOCK_S: tl.constexpr):
    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = r < R
    r64 = r.to(tl.int64)
    carry = tl.zeros([BLOCK_R], dtype=tl.float32)  # optical depth of the tiles before this one
    acc_w = tl.zeros([BLOCK_R], dtype=tl.float32)
    acc_d = tl.zeros([BLOCK_R], dtype=tl.float32)
    acc_r = tl.zeros([BLOCK_R], dtype=tl.float32)
    acc_g = tl.zeros([BLOCK_R], dtype=tl.float32)
    acc_b = tl.zeros([BLOCK_R], dtype=tl.float32)
    for s0 in range(0, S, BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S)
        m = rmask[:, None] & (s < S)[None, :]  # [BLOCK_R, BLOCK_S]
        offs = r64[:, None] * S + s[None, :]
        x = _optical_depth(sigma_ptr, delta_ptr, offs, m)
        incl = tl.cumsum(x, axis=1) + carry[:, None]  # optical depth up to and including sample i
        w = (1.0 - tl.exp(-x)) * tl.exp(-(incl - x))
        tl.store(weights_ptr + offs, w, mask=m)
        acc_w += tl.sum(w, axis=1)
        acc_d += tl.sum(w * tl.load(t_ptr + offs, mask=m, other=0.0), axis=1)
        acc_r += tl.sum(w * tl.load(rgb_ptr + offs * 3, mask=m, other=0.0), axis=1)
        acc_g += tl.sum(w * tl.load(rgb_ptr + offs * 3 + 1, mask=m, other=0.0), axis=1)
        acc_b += tl.sum(w * tl.load(rgb_ptr + offs * 3 + 2, mask=m, other=0.0), axis=1)
        carry += tl.sum(x, axis=1)
    if HAS_BG:
        rest = 1.0 - acc_w
        acc_r += rest * tl.load(bg_ptr + r64 * 3, mask=rmask, other=0.0)
        acc_g += rest * tl.load(bg_ptr + r64 * 3 + 1, mask=rmask, other=0.0)
        acc_b += rest * tl.load(bg_ptr + r64 * 3 + 2, mask=rmask, other=0.0)
    tl.store(color_ptr + r64 * 3, acc_r, mask=rmask)
    tl.store(color_ptr + r64 * 3 + 1, acc_g, mask=rmask)
    tl.store(color_ptr + r64 * 3 + 2, acc_b, mask=rmask)
    tl.store(opacity_ptr + r64, acc_w, mask=rmask)
    tl.store(depth_ptr + r64, acc_d, mask=rmask)


@triton.jit
def _composite_bwd_kernel(sigma_ptr, rgb_ptr, delta_ptr, t_ptr, bg_ptr, color_ptr, opacity_ptr, depth_ptr,
                          weights_ptr, gcolor_ptr, gopacity_ptr, gdepth_ptr, gweights_ptr, gsigma_ptr, grgb_ptr,
                          R, S, HAS_BG: tl.constexpr, HAS_GW: tl.constexpr, BLOCK_R: tl.constexpr,
                          BLOCK_S: tl.constexpr):
    r = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = r < R
    r64 = r.to(tl.int64)
    g_r = tl.load(gcolor_ptr + r64 * 3, mask=rmask, other=0.0)
    g_g = tl.load(gcolor_ptr + r64 * 3 + 1, mask=rmask, other=0.0)
    g_b = tl.load(gcolor_ptr + r64 * 3 + 2, mask=rmask, other=0.0)
    g_w = tl.load(gopacity_ptr + r64, mask=rmask, other=0.0)
    g_d = tl.load(gdepth_ptr + r64, mask=rmask, other=0.0)
    if HAS_BG:
        bg_r = tl.load(bg_ptr + r64 * 3, mask=rmask, other=0.0)
        bg_g = tl.load(bg_ptr + r64 * 3 + 1, mask=rmask, other=0.0)
        bg_b = tl.load(bg_ptr + r64 * 3 + 2, mask=rmask, other=0.0)
    else:
        bg_r = tl.zeros([BLOCK_R], dtype=tl.float32)
        bg_g = tl.zeros([BLOCK_R], dtype=tl.float32)
        bg_b = tl.zeros([BLOCK_R], dtype=tl.float32)
    # A = sum_k v_k w_k from the saved outputs
    total = (g_r * (tl.load(color_ptr + r64 * 3, mask=rmask, other=0.0) - bg_r)
             + g_g * (tl.load(color_ptr + r64 * 3 + 1, mask=rmask, other=0.0) - bg_g)
             + g_b * (tl.load(color_ptr + r64 * 3 + 2, mask=rmask, other=0.0) - bg_b)
             + g_w * tl.load(opacity_ptr + r64, mask=rmask, other=0.0)
             + g_d * tl.load(depth_ptr + r64, mask=rmask, other=0.0))
    if HAS_GW:
        for s0 in range(0, S, BLOCK_S):
            s = s0 + tl.arange(0, BLOCK_S)
            m = rmask[:, None] & (s < S)[None, :]
            offs = r64[:, None] * S + s[None, :]
            gw = tl.load(gweights_ptr + offs, mask=m, other=0.0)
            total += tl.sum(gw * tl.load(weights_ptr + offs, mask=m, other=0.0), axis=1)
    carry = tl.zeros([BLOCK_R], dtype=tl.float32)  # optical depth of earlier tiles
    prefix = tl.zeros([BLOCK_R], dtype=tl.float32)  # sum of v_k w_k over earlier tiles
    for s0 in range(0, S, BLOCK_S):
        s = s0 + tl.arange(0, BLOCK_S)
        m = rmask[:, None] & (s < S)[None, :]
        offs = r64[:, None] * S + s[None, :]
        x = _optical_depth(sigma_ptr, delta_ptr, offs, m)
        incl = tl.cumsum(x, axis=1) + carry[:, None]
        t_next = tl.exp(-incl)  # T_{i+1}
        w = (1.0 - tl.exp(-x)) * tl.exp(-(incl - x))
        c_r = tl.load(rgb_ptr + offs * 3, mask=m, other=0.0)
        c_g = tl.load(rgb_ptr + offs * 3 + 1, mask=m, other=0.0)
        c_b = tl.load(rgb_ptr + offs * 3 + 2, mask=m, other=0.0)
        v = (g_r[:, None] * (c_r - bg_r[:, None]) + g_g[:, None] * (c_g - bg_g[:, None])
             + g_b[:, None] * (c_b - bg_b[:, None]) + g_w[:, None]
             + g_d[:, None] * tl.load(t_ptr + offs, mask=m, other=0.0))
        if HAS_GW:
            v += tl.load(gweights_ptr + offs, mask=m, other=0.0)
        vw = v * w
        incl_vw = tl.cumsum(vw, axis=1) + prefix[:, None]  # sum_{k<=i} v_k w_k
        dx = v * t_next - (total[:, None] - incl_vw)
        tl.store(gsigma_ptr + offs, dx * tl.load(delta_ptr + offs, mask=m, other=0.0), mask=m)
        tl.store(grgb_ptr + offs * 3, g_r[:, None] * w, mask=m)
        tl.store(grgb_ptr + offs * 3 + 1, g_g[:, None] * w, mask=m)
        tl.store(grgb_ptr + offs * 3 + 2, g_b[:, None] * w, mask=m)
        carry += tl.sum(x, axis=1)
        prefix += tl.sum(vw, axis=1)


def _blocks(s: int) -> tuple[int, int]:
    """(BLOCK_R, BLOCK_S): tiles of at most ~1024 samples, S tiled by a power of two in [16, 128]."""
    block_s = min(max(triton.next_power_of_2(max(s, 1)), 16), 128)
    return max(8, 1024 // block_s), block_s


def _device_guard(t: torch.Tensor):
    """Make ``t``'s GPU current for the launch (Triton launches on the current device)."""
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def composite_forward(sigma, rgb, deltas, t, background):
    """sigma, deltas, t: [R, S]; rgb: [R, S, 3]; background: [R, 3] or None; all float32 contiguous.

    Returns color [R, 3], opacity [R], depth [R], weights [R, S], float32.
    """
    r, s = sigma.shape
    kw = {"device": sigma.device, "dtype": torch.float32}
    color, opacity, depth = torch.empty(r, 3, **kw), torch.empty(r, **kw), torch.empty(r, **kw)
    weights = torch.empty(r, s, **kw)
    if r == 0:
        return color, opacity, depth, weights
    block_r, block_s = _blocks(s)
    with _device_guard(sigma):
        _composite_fwd_kernel[(triton.cdiv(r, block_r),)](
            sigma, rgb, deltas, t, background if background is not None else sigma, color, opacity, depth,
            weights, r, s, HAS_BG=background is not None, BLOCK_R=block_r, BLOCK_S=block_s)
    return color, opacity, depth, weights


def composite_backward(sigma, rgb, deltas, t, background, color, opacity, depth, weights, g_color, g_opacity,
                       g_depth, g_weights):
    """Inputs as :func:`composite_forward` plus its outputs and their cotangents (g_weights may be None).

    g_color [R, 3], g_opacity [R], g_depth [R], g_weights [R, S] or None; float32 contiguous.
    Returns d sigma [R, S] and d rgb [R, S, 3], float32.
    """
    r, s = sigma.shape
    g_sigma = torch.empty_like(sigma)
    g_rgb = torch.empty_like(rgb)
    if r == 0:
        return g_sigma, g_rgb
    block_r, block_s = _blocks(s)
    with _device_guard(sigma):
        _composite_bwd_kernel[(triton.cdiv(r, block_r),)](
            sigma, rgb, deltas, t, background if background is not None else sigma, color, opacity, depth,
            weights, g_color, g_opacity, g_depth, g_weights if g_weights is not None else weights, g_sigma, g_rgb,
            r, s, HAS_BG=background is not None, HAS_GW=g_weights is not None, BLOCK_R=block_r, BLOCK_S=block_s)
    return g_sigma, g_rgb
