"""Triton kernel of ``syncanim.kernels.torso.torso_frames`` (backend ``"triton"``): whole torso frames in one
launch, without gradients.

One program takes BLOCK pixels of one frame and keeps everything in registers: the pixel's position encoding
(one column per term), the offset MLP, the moved point's bilinear reads of every level of the feature planes
(one column per level x feature, border-clamped as ``F.grid_sample(padding_mode="border",
align_corners=False)``), the colour MLP and the composite over the plate, as ``tl.dot`` products with the
zero-padded weights of :class:`syncanim.kernels.torso.PackedTorso`. The pose code's share of each first layer
is a per-frame bias computed before the launch. Loaded by file path on first use by
``syncanim.kernels.backend.load_triton_module``.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

# the fastest launch of those timed on an H200 (benchmarks/kernels_gpu.py --torso-frames 16: 32-128 pixels a
# program x 4 or 8 warps, with tf32x3 products)
BLOCK = 128
WARPS = 8


@triton.jit
def _matrix(ptr, K: tl.constexpr, N: tl.constexpr):
    """A [K, N] row-major float32 matrix."""
    return tl.load(ptr + tl.arange(0, K)[:, None] * N + tl.arange(0, N)[None, :])


@triton.jit
def _column(t, col, j):
    """Column ``j`` of tile ``t`` [BLOCK, N] (``col``: [1, N] column indices) -> [BLOCK]."""
    return tl.sum(tl.where(col == j, t, 0.0), 1)


@triton.jit(do_not_specialize=["P", "plate_stride"])
def _torso_kernel(plate_ptr, plate_stride, bias1_ptr, cbias_ptr, w1_ptr, w2_ptr, b2_ptr, w3_ptr, b3_ptr,
                  wc1_ptr, wc2_ptr, bc2_ptr, wc3_ptr, bc3_ptr, planes_ptr, col_res_ptr, col_base_ptr, out_ptr,
                  P, S: tl.constexpr, max_offset,
                  K: tl.constexpr, K1: tl.constexpr, PE: tl.constexpr, PE_P: tl.constexpr, H_P: tl.constexpr,
                  LF_P: tl.constexpr, F: tl.constexpr, BLOCK: tl.constexpr, PRECISION: tl.constexpr):
    pid = tl.program_id(0)
    b = tl.program_id(1).to(tl.int64)
    p = pid * BLOCK + tl.arange(0, BLOCK)
    pmask = p < P
    x = ((p % S).to(tl.float32) + 0.5) / S
    y = ((p // S).to(tl.float32) + 0.5) / S
    # position encoding [BLOCK, PE_P]: x, y, sin(2^k pi x) (k < K), sin(2^k pi y), cos(.. x), cos(.. y), zeros
    j = tl.arange(0, PE_P)[None, :]
    m = tl.maximum(j - 2, 0)
    group = m // K1
    k = (m % K1).to(tl.float32)
    on_y = (j == 1) | ((j >= 2) & ((group == 1) | (group == 3)))
    coord = tl.where(on_y, y[:, None], x[:, None])
    arg = coord * (tl.exp2(k) * 3.141592653589793)
    pe = tl.where(j < 2, coord, tl.where(group < 2, tl.sin(arg), tl.cos(arg)))
    pe = tl.where(j < PE, pe, 0.0)
    # the offset MLP (the pose code's share of its first layer: the frame's bias)
    h = tl.dot(pe, _matrix(w1_ptr, PE_P, H_P), input_precision=PRECISION)
    h = tl.maximum(h + tl.load(bias1_ptr + b * H_P + tl.arange(0, H_P))[None, :], 0.0)
    h = tl.maximum(tl.dot(h, _matrix(w2_ptr, H_P, H_P), input_precision=PRECISION)
                   + tl.load(b2_ptr + tl.arange(0, H_P))[None, :], 0.0)
    o = tl.dot(h, _matrix(w3_ptr, H_P, 16), input_precision=PRECISION) + tl.load(b3_ptr + tl.arange(0, 16))[None, :]
    c16 = tl.arange(0, 16)[None, :]
    mx = x + max_offset * (2.0 * tl.sigmoid(2.0 * _column(o, c16, 0)) - 1.0)  # tanh(v) = 2 sigmoid(2 v) - 1
    my = y + max_offset * (2.0 * tl.sigmoid(2.0 * _column(o, c16, 1)) - 1.0)
    # the feature planes at the moved point [BLOCK, LF_P]: column (level, feature), bilinear, border-clamped
    c = tl.arange(0, LF_P)
    res = tl.load(col_res_ptr + c)[None, :]  # 0: a padding column
    base = tl.load(col_base_ptr + c)[None, :]
    rf = res.to(tl.float32)
    ix = tl.minimum(tl.maximum(mx[:, None] * rf - 0.5, 0.0), rf - 1.0)
    iy = tl.minimum(tl.maximum(my[:, None] * rf - 0.5, 0.0), rf - 1.0)
    x0f = tl.floor(ix)
    y0f = tl.floor(iy)
    wx = ix - x0f
    wy = iy - y0f
    x0 = x0f.to(tl.int64)
    y0 = y0f.to(tl.int64)
    x1 = tl.minimum(x0 + 1, res - 1)
    y1 = tl.minimum(y0 + 1, res - 1)
    ok = (res > 0) & pmask[:, None]
    r64 = res.to(tl.int64)
    v00 = tl.load(planes_ptr + base + (y0 * r64 + x0) * F, mask=ok, other=0.0)
    v01 = tl.load(planes_ptr + base + (y0 * r64 + x1) * F, mask=ok, other=0.0)
    v10 = tl.load(planes_ptr + base + (y1 * r64 + x0) * F, mask=ok, other=0.0)
    v11 = tl.load(planes_ptr + base + (y1 * r64 + x1) * F, mask=ok, other=0.0)
    feat = (v00 * (1.0 - wx) + v01 * wx) * (1.0 - wy) + (v10 * (1.0 - wx) + v11 * wx) * wy
    # the colour MLP, then the composite over the plate
    h = tl.dot(feat, _matrix(wc1_ptr, LF_P, H_P), input_precision=PRECISION)
    h = tl.maximum(h + tl.load(cbias_ptr + b * H_P + tl.arange(0, H_P))[None, :], 0.0)
    h = tl.maximum(tl.dot(h, _matrix(wc2_ptr, H_P, H_P), input_precision=PRECISION)
                   + tl.load(bc2_ptr + tl.arange(0, H_P))[None, :], 0.0)
    s = tl.sigmoid(tl.dot(h, _matrix(wc3_ptr, H_P, 16), input_precision=PRECISION)
                   + tl.load(bc3_ptr + tl.arange(0, 16))[None, :])
    alpha = _column(s, c16, 3)[:, None]
    rgb_mask = pmask[:, None] & (c16 < 3)
    p64 = p.to(tl.int64)[:, None]
    plate = tl.load(plate_ptr + b * plate_stride + p64 * 3 + c16, mask=rgb_mask, other=0.0)
    tl.store(out_ptr + (b * P + p64) * 3 + c16, alpha * s + (1.0 - alpha) * plate, mask=rgb_mask)


def torso_forward(bias1: torch.Tensor, cbias: torch.Tensor, plate: torch.Tensor, w: dict[str, torch.Tensor],
                  planes: torch.Tensor, col_res: torch.Tensor, col_base: torch.Tensor, size: int, frequencies: int,
                  features: int, max_offset: float, precision: str, block: int = BLOCK,
                  num_warps: int = WARPS) -> torch.Tensor:
    """B whole frames: per-frame first-layer biases ``bias1``, ``cbias`` [B, H_P], the plate [B or 1, S * S, 3]
    float32 (contiguous; one plate: shared by every frame), the packed weights and planes -> [B, S, S, 3] float32."""
    b, h_p = bias1.shape
    p = size * size
    out = torch.empty(b, size, size, 3, device=bias1.device, dtype=torch.float32)
    if b == 0:
        return out
    pe = 2 + 4 * frequencies
    pe_p = w["w1"].shape[0]
    lf_p = w["wc1"].shape[0]
    with torch.cuda.device(bias1.device) if bias1.is_cuda else contextlib.nullcontext():
        _torso_kernel[(triton.cdiv(p, block), b)](
            plate, 0 if plate.shape[0] == 1 else p * 3, bias1, cbias, w["w1"], w["w2"], w["b2"], w["w3"], w["b3"],
            w["wc1"], w["wc2"], w["bc2"], w["wc3"], w["bc3"], planes, col_res, col_base, out, p, size,
            float(max_offset), K=frequencies, K1=max(1, frequencies), PE=pe, PE_P=pe_p, H_P=h_p, LF_P=lf_p,
            F=features, BLOCK=block, PRECISION=precision, num_warps=num_warps)
    return out

