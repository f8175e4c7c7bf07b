"""Triton kernels of ``syncanim.kernels.hashgrid.triplane_encode`` (backend ``"triton"``).

Loaded by file path on first use by ``syncanim.kernels.backend.load_triton_module``. Forward: one
program per block of BLOCK_N points interpolates every level of every plane for them (whole output rows);
backward: a program per (point block, plane x level).
Level metadata comes from ``meta: [L, 3] int32`` = (resolution, first row, dense flag).
Backward scatters ``w * grad`` into a zeroed float32 table gradient with ``atomic_add``.
Table element offsets are int32 (``grid_spec`` keeps ``3 * rows * F < 2 ** 31``); point offsets are int64.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl


@triton.jit
def _cell(u, res):
    """Lower corner index and fraction of unit coordinates ``u`` (any shape) on a grid of ``res`` cells."""
    u = tl.minimum(tl.maximum(u, -1.0), 1.0)
    p = (u + 1.0) * 0.5 * res.to(tl.float32)  # * 0.5, not / 2.0: Triton divides approximately
    i = tl.minimum(tl.maximum(tl.floor(p).to(tl.int32), 0), res - 1)  # clamping also keeps NaN in bounds
    return i, p - i.to(tl.float32)


@triton.jit
def _axis_coord(coords_ptr, n64, nmask, axis, res):
    """Lower corner index and fraction along one plane axis for a block of points."""
    return _cell(tl.load(coords_ptr + n64 * 3 + axis, mask=nmask, other=0.0), res)


@triton.jit
def _row(ix, iy, res, dense, HASH_MASK: tl.constexpr):
    """Row of grid point (ix, iy) within its level: dense ``iy * (res + 1) + ix`` or the uint32 hash."""
    h = (ix.to(tl.uint32) ^ (iy.to(tl.uint32) * 2654435761)) & HASH_MASK
    return tl.where(dense != 0, iy * (res + 1) + ix, h.to(tl.int32))


@triton.jit
def _corners(coords_ptr, meta_ptr, pid_pl, n64, nmask, ROWS, LEVELS: tl.constexpr, F: tl.constexpr,
             HASH_MASK: tl.constexpr):
    """Element offsets of the 4 corner rows (feature 0) and their bilinear weights."""
    plane = pid_pl // LEVELS
    level = pid_pl % LEVELS
    res = tl.load(meta_ptr + level * 3)
    first = tl.load(meta_ptr + level * 3 + 1)
    dense = tl.load(meta_ptr + level * 3 + 2)
    ax_u = tl.where(plane == 1, 1, 0)  # planes (x, y), (y, z), (x, z)
    ax_v = tl.where(plane == 0, 1, 2)
    ix, fx = _axis_coord(coords_ptr, n64, nmask, ax_u, res)
    iy, fy = _axis_coord(coords_ptr, n64, nmask, ax_v, res)
    base = plane * ROWS + first
    r00 = (base + _row(ix, iy, res, dense, HASH_MASK)) * F
    r10 = (base + _row(ix + 1, iy, res, dense, HASH_MASK)) * F
    r01 = (base + _row(ix, iy + 1, res, dense, HASH_MASK)) * F
    r11 = (base + _row(ix + 1, iy + 1, res, dense, HASH_MASK)) * F
    gx = 1.0 - fx
    gy = 1.0 - fy
    return r00, r10, r01, r11, gx * gy, fx * gy, gx * fy, fx * fy


@triton.jit
def _triplane_fwd_kernel(coords_ptr, table_ptr, meta_ptr, out_ptr, N, ROWS, LEVELS: tl.constexpr,
                         F: tl.constexpr, FP: tl.constexpr, HASH_MASK: tl.constexpr, BLOCK_N: tl.constexpr):
    # one program: every plane and level of BLOCK_N points, so each point's output row is written whole by one
    # program (with a program per level, the rows' 8-byte pieces reached memory as partial sectors)
    pid_n = tl.program_id(0)
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = n < N
    n64 = n.to(tl.int64)
    f = tl.arange(0, FP)
    m2 = nmask[:, None] & (f < F)[None, :]  # [BLOCK_N, FP]
    row = n64[:, None] * (3 * LEVELS * F) + f[None, :]
    for pid_pl in tl.static_range(3 * LEVELS):  # plane * LEVELS + level
        r00, r10, r01, r11, w00, w10, w01, w11 = _corners(coords_ptr, meta_ptr, pid_pl, n64, nmask, ROWS, LEVELS, F,
                                                          HASH_MASK)
        v = w00[:, None] * tl.load(table_ptr + r00[:, None] + f[None, :], mask=m2, other=0.0)
        v += w10[:, None] * tl.load(table_ptr + r10[:, None] + f[None, :], mask=m2, other=0.0)
        v += w01[:, None] * tl.load(table_ptr + r01[:, None] + f[None, :], mask=m2, other=0.0)
        v += w11[:, None] * tl.load(table_ptr + r11[:, None] + f[None, :], mask=m2, other=0.0)
        tl.store(out_ptr + row + pid_pl * F, v, mask=m2)


@triton.jit
def _triplane_bwd_kernel(coords_ptr, grad_ptr, meta_ptr, gtable_ptr, N, ROWS, LEVELS: tl.constexpr,
                         F: tl.constexpr, FP: tl.constexpr, HASH_MASK: tl.constexpr, BLOCK_N: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_pl = tl.program_id(1)
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    nmask = n < N
    n64 = n.to(tl.int64)
    r00, r10, r01, r11, w00, w10, w01, w11 = _corners(coords_ptr, meta_ptr, pid_pl, n64, nmask, ROWS, LEVELS, F,
                                                      HASH_MASK)
    f = tl.arange(0, FP)
    m2 = nmask[:, None] & (f < F)[None, :]
    g = tl.load(grad_ptr + n64[:, None] * (3 * LEVELS * F) + pid_pl * F + f[None, :], mask=m2, other=0.0)
    tl.atomic_add(gtable_ptr + r00[:, None] + f[None, :], w00[:, None] * g, mask=m2, sem="relaxed")
    tl.atomic_add(gtable_ptr + r10[:, None] + f[None, :], w10[:, None] * g, mask=m2, sem="relaxed")
    tl.atomic_add(gtable_ptr + r01[:, None] + f[None, :], w01[:, None] * g, mask=m2, sem="relaxed")
    tl.atomic_add(gtable_ptr + r11[:, None] + f[None, :], w11[:, None] * g, mask=m2, sem="relaxed")


# forward launch: the fastest of 32-256 points a program x 1-8 warps on an H200 over a frame's 600 000 points
# (benchmarks/kernels_gpu.py --encoder-points 600000: 0.58 ms against 0.80 with 128 x 4)
BLOCK_N, WARPS = 64, 8
BWD_BLOCK_N = 128


def _device_guard(t: torch.Tensor):
    """Make ``t``'s GPU current for the launch (Triton launches on the current device)."""
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def triplane_forward(coords: torch.Tensor, tables: torch.Tensor, meta: torch.Tensor, levels: int, features: int,
                     rows: int, log2_table: int, block: int = BLOCK_N, num_warps: int = WARPS) -> torch.Tensor:
    """coords: [N, 3] float32 contiguous; tables: [3, rows, F] float32 contiguous; meta: [L, 3] int32; ``block``
    points a program, ``num_warps`` (benchmarks/kernels_gpu.py times them).

    Returns [N, 3 * L * F] float32.
    """
    n = coords.shape[0]
    out = torch.empty(n, 3 * levels * features, device=coords.device, dtype=torch.float32)
    if n == 0:
        return out
    grid = (triton.cdiv(n, block),)
    with _device_guard(coords):
        _triplane_fwd_kernel[grid](coords, tables, meta, out, n, rows, LEVELS=levels, F=features,
                                   FP=triton.next_power_of_2(features), HASH_MASK=(1 << log2_table) - 1,
                                   BLOCK_N=block, num_warps=num_warps)
    return out


def triplane_backward(coords: torch.Tensor, grad: torch.Tensor, meta: torch.Tensor, levels: int, features: int,
                      rows: int, log2_table: int) -> torch.Tensor:
    """coords: [N, 3] float32; grad: [N, 3 * L * F] float32 contiguous. Returns d tables: [3, rows, F] float32."""
    n = coords.shape[0]
    gtable = torch.zeros(3, rows, features, device=coords.device, dtype=torch.float32)
    if n == 0:
        return gtable
    grid = (triton.cdiv(n, BWD_BLOCK_N), 3 * levels)
    with _device_guard(coords):
        _triplane_bwd_kernel[grid](coords, grad, meta, gtable, n, rows, LEVELS=levels,
                                   F=features, FP=triton.next_power_of_2(features),
                                   HASH_MASK=(1 << log2_table) - 1, BLOCK_N=BWD_BLOCK_N)
    return gtable
