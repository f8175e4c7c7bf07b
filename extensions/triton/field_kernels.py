"""Triton kernel of ``syncanim.kernels.field.field_points`` (backend ``"triton"``): the head's whole field at
points, in one launch, without gradients.

Each program takes BLOCK points and keeps everything in registers: the tri-plane encoding (one column per
plane x level x feature, its 4 corner rows gathered from the tables), the region gates, the density MLP, the
spherical harmonics of the ray direction and the colour MLP, as ``tl.dot`` products with the zero-padded
weights of :class:`syncanim.kernels.field.PackedField`. The point's ray gives its direction and frame (the
frame's mouth, expressions and colour-layer bias), so nothing is gathered or concatenated in memory.
``_field_mlp_kernel`` is the same after the encoding, which it reads from memory (the per-op encoder's output):
the encoder runs on its own, one program per block of points over whole rows, and the MLPs stay fused.
Loaded by file path on first use by ``syncanim.kernels.backend.load_triton_module``.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

from syncanim.kernels.backend import load_triton_module

_grid = load_triton_module("hashgrid_kernels")  # the encoder's own cell and hash arithmetic
_cell, _grid_row = _grid._cell, _grid._row


@triton.jit
def _matrix(ptr, K: tl.constexpr, N: tl.constexpr):
    """A [K, N] row-major float32 matrix."""
    return tl.load(ptr + tl.arange(0, K)[:, None] * N + tl.arange(0, N)[None, :])


@triton.jit
def _row_vector(ptr, N: tl.constexpr):
    return tl.load(ptr + tl.arange(0, N))[None, :]


@triton.jit
def _per_frame(ptr, frame, nmask, N: tl.constexpr):
    """The rows of a [B, N] per-frame table for each point's frame -> [BLOCK, N]."""
    return tl.load(ptr + frame[:, None] * N + tl.arange(0, N)[None, :], mask=nmask[:, None], other=0.0)


@triton.jit
def _coords(coords_ptr, n64, mask):
    """The points' coordinates (``coords`` [N, 3]) at rows ``n64`` -> x, y, z [BLOCK, 1], zeros where not ``mask``."""
    x = tl.load(coords_ptr + n64 * 3, mask=mask, other=0.0)[:, None]
    y = tl.load(coords_ptr + n64 * 3 + 1, mask=mask, other=0.0)[:, None]
    z = tl.load(coords_ptr + n64 * 3 + 2, mask=mask, other=0.0)[:, None]
    return x, y, z


@triton.jit
def _inside(x, y, z, box_ptr):
    """Whether points (x, y, z: [BLOCK, 1] unit coordinates) lie in the box [2, 3] (lo, hi) -> [BLOCK, 1]."""
    inside = (x >= tl.load(box_ptr)) & (x <= tl.load(box_ptr + 3))
    inside = inside & (y >= tl.load(box_ptr + 1)) & (y <= tl.load(box_ptr + 4))
    return inside & (z >= tl.load(box_ptr + 2)) & (z <= tl.load(box_ptr + 5))


@triton.jit
def _field_mlp(e, x, y, z, box_ptr, n64, nmask, ray_ptr, dirs_ptr, rframe_ptr, audio_ptr, expr_ptr, cbias_ptr,
               wga_ptr, bga_ptr, wge_ptr, bge_ptr, w1e_ptr, w1a_ptr, w1x_ptr, b1_ptr, w2_ptr, b2_ptr, w3_ptr, b3_ptr,
               wc1g_ptr, wc1s_ptr, wc2_ptr, bc2_ptr, sigma_ptr, rgb_ptr, pos_ptr, valid_ptr, rest_ptr, per_frame,
               ENC_P: tl.constexpr, A_P: tl.constexpr, E_P: tl.constexpr, H_P: tl.constexpr, G_P: tl.constexpr,
               PRECISION: tl.constexpr, SCATTER: tl.constexpr, REGIONS: tl.constexpr):
    """Everything after the encoding ``e`` [BLOCK, ENC_P] of a block of points: their sigma and rgb stored, at
    the points' own rows, or with ``SCATTER`` at rows ``pos`` and only where ``valid``. With ``REGIONS``, points
    (x, y, z: [BLOCK, 1]) outside the speech box (``box`` [2, 3]) read the rest mouth vector (``rest`` [A_P])
    instead of their frame's, and points outside the expression box (``box + 6``) the rest expressions
    (``rest + A_P`` [E_P])."""
    if REGIONS:  # a statement: Triton compiles only the branch it picks
        inside = _inside(x, y, z, box_ptr)
        inside_e = _inside(x, y, z, box_ptr + 6)
    else:
        inside = nmask[:, None]
        inside_e = inside
    if SCATTER:
        out = tl.load(pos_ptr + n64, mask=nmask, other=0)
        smask = nmask & (tl.load(valid_ptr + n64, mask=nmask, other=0) != 0)
    else:
        out = n64
        smask = nmask
    # the point's ray: its direction and frame
    ray = tl.load(ray_ptr + n64, mask=nmask, other=0).to(tl.int64)
    frame = tl.load(rframe_ptr + ray, mask=nmask & ((n64 * 0 + per_frame) != 0), other=0).to(tl.int64)  # 0: one frame
    # region gates scale the frame's mouth and expression vectors; the density MLP
    ga = tl.sigmoid(tl.dot(e, _matrix(wga_ptr, ENC_P, A_P), input_precision=PRECISION) + _row_vector(bga_ptr, A_P))
    ge = tl.sigmoid(tl.dot(e, _matrix(wge_ptr, ENC_P, E_P), input_precision=PRECISION) + _row_vector(bge_ptr, E_P))
    mouth = _per_frame(audio_ptr, frame, nmask, A_P)
    faces = _per_frame(expr_ptr, frame, nmask, E_P)
    if REGIONS:
        mouth = tl.where(inside, mouth, _row_vector(rest_ptr, A_P))
        faces = tl.where(inside_e, faces, _row_vector(rest_ptr + A_P, E_P))
    audio = ga * mouth
    expr = ge * faces
    h = tl.dot(e, _matrix(w1e_ptr, ENC_P, H_P), input_precision=PRECISION)
    h += tl.dot(audio, _matrix(w1a_ptr, A_P, H_P), input_precision=PRECISION)
    h += tl.dot(expr, _matrix(w1x_ptr, E_P, H_P), input_precision=PRECISION)
    h = tl.maximum(h + _row_vector(b1_ptr, H_P), 0.0)
    h = tl.maximum(tl.dot(h, _matrix(w2_ptr, H_P, H_P), input_precision=PRECISION) + _row_vector(b2_ptr, H_P), 0.0)
    g = tl.dot(h, _matrix(w3_ptr, H_P, G_P), input_precision=PRECISION) + _row_vector(b3_ptr, G_P)  # [BLOCK, G_P]
    gcol = tl.arange(0, G_P)[None, :]
    sigma = tl.exp(tl.minimum(tl.sum(tl.where(gcol == 0, g, 0.0), axis=1), 15.0))
    tl.store(sigma_ptr + out, sigma, mask=smask)
    # the colour MLP: geometry features (the weights skip column 0, the density), direction harmonics, frame bias
    dx = tl.load(dirs_ptr + ray * 3, mask=nmask, other=0.0)[:, None]
    dy = tl.load(dirs_ptr + ray * 3 + 1, mask=nmask, other=0.0)[:, None]
    dz = tl.load(dirs_ptr + ray * 3 + 2, mask=nmask, other=0.0)[:, None]
    k = tl.arange(0, 16)[None, :]
    sh = tl.where(k == 0, 0.28209479177387814, 0.0)
    sh = tl.where(k == 1, -0.48860251190291987 * dy, sh)
    sh = tl.where(k == 2, 0.48860251190291987 * dz, sh)
    sh = tl.where(k == 3, -0.48860251190291987 * dx, sh)
    sh = tl.where(k == 4, 1.0925484305920792 * dx * dy, sh)
    sh = tl.where(k == 5, -1.0925484305920792 * dy * dz, sh)
    sh = tl.where(k == 6, 0.31539156525252005 * (2 * dz * dz - dx * dx - dy * dy), sh)
    sh = tl.where(k == 7, -1.0925484305920792 * dx * dz, sh)
    sh = tl.where(k == 8, 0.5462742152960396 * (dx * dx - dy * dy), sh)
    c = tl.dot(g, _matrix(wc1g_ptr, G_P, H_P), input_precision=PRECISION)
    c += tl.dot(sh, _matrix(wc1s_ptr, 16, H_P), input_precision=PRECISION)
    c = tl.maximum(c + _per_frame(cbias_ptr, frame, nmask, H_P), 0.0)
    rgb = tl.sigmoid(tl.dot(c, _matrix(wc2_ptr, H_P, 16), input_precision=PRECISION) + _row_vector(bc2_ptr, 16))
    tl.store(rgb_ptr + out[:, None] * 3 + k, rgb, mask=smask[:, None] & (k < 3))


@triton.jit(do_not_specialize=["N", "ROWS", "per_frame"])  # one compiled kernel for every point count
def _field_fwd_kernel(coords_ptr, ray_ptr, dirs_ptr, rframe_ptr, audio_ptr, expr_ptr, cbias_ptr,
                      table_ptr, meta_ptr, wga_ptr, bga_ptr, wge_ptr, bge_ptr, w1e_ptr, w1a_ptr, w1x_ptr, b1_ptr,
                      w2_ptr, b2_ptr, w3_ptr, b3_ptr, wc1g_ptr, wc1s_ptr, wc2_ptr, bc2_ptr,
                      sigma_ptr, rgb_ptr, pos_ptr, valid_ptr, box_ptr, rest_ptr, N, ROWS, per_frame,
                      LEVELS: tl.constexpr, F: tl.constexpr, ENC_P: tl.constexpr, A_P: tl.constexpr,
                      E_P: tl.constexpr, H_P: tl.constexpr, G_P: tl.constexpr, HASH_MASK: tl.constexpr,
                      PRECISION: tl.constexpr, SCATTER: tl.constexpr, REGIONS: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    n = pid * BLOCK + tl.arange(0, BLOCK)
    nmask = n < N
    n64 = n.to(tl.int64)
    # the tri-plane encoding e [BLOCK, ENC_P]: column = (plane * LEVELS + level) * F + feature
    col = tl.arange(0, ENC_P)
    cmask = col < 3 * LEVELS * F
    plane = col // (LEVELS * F)
    level = (col // F) % LEVELS
    feat = col % F
    res = tl.load(meta_ptr + level * 3, mask=cmask, other=1)[None, :]
    first = tl.load(meta_ptr + level * 3 + 1, mask=cmask, other=0)
    dense = tl.load(meta_ptr + level * 3 + 2, mask=cmask, other=0)[None, :]
    x, y, z = _coords(coords_ptr, n64, nmask)
    iu, fu = _cell(tl.where(plane[None, :] == 1, y, x), res)  # planes (x, y), (y, z), (x, z)
    iv, fv = _cell(tl.where(plane[None, :] == 0, y, z), res)
    base = ((plane * ROWS + first) * F + feat)[None, :]
    m2 = nmask[:, None] & cmask[None, :]
    e = (1.0 - fu) * (1.0 - fv) * tl.load(table_ptr + base + _grid_row(iu, iv, res, dense, HASH_MASK) * F, mask=m2,
                                          other=0.0)
    e += fu * (1.0 - fv) * tl.load(table_ptr + base + _grid_row(iu + 1, iv, res, dense, HASH_MASK) * F, mask=m2,
                                   other=0.0)
    e += (1.0 - fu) * fv * tl.load(table_ptr + base + _grid_row(iu, iv + 1, res, dense, HASH_MASK) * F, mask=m2,
                                   other=0.0)
    e += fu * fv * tl.load(table_ptr + base + _grid_row(iu + 1, iv + 1, res, dense, HASH_MASK) * F, mask=m2,
                           other=0.0)
    _field_mlp(e, x, y, z, box_ptr, n64, nmask, ray_ptr, dirs_ptr, rframe_ptr, audio_ptr, expr_ptr, cbias_ptr, wga_ptr, bga_ptr,
               wge_ptr, bge_ptr, w1e_ptr, w1a_ptr, w1x_ptr, b1_ptr, w2_ptr, b2_ptr, w3_ptr, b3_ptr, wc1g_ptr,
               wc1s_ptr, wc2_ptr, bc2_ptr, sigma_ptr, rgb_ptr, pos_ptr, valid_ptr, rest_ptr, per_frame, ENC_P, A_P,
               E_P, H_P, G_P, PRECISION, SCATTER, REGIONS)


@triton.jit(do_not_specialize=["N", "per_frame"])
def _field_mlp_kernel(enc_ptr, ray_ptr, dirs_ptr, rframe_ptr, audio_ptr, expr_ptr, cbias_ptr,
                      wga_ptr, bga_ptr, wge_ptr, bge_ptr, w1e_ptr, w1a_ptr, w1x_ptr, b1_ptr,
                      w2_ptr, b2_ptr, w3_ptr, b3_ptr, wc1g_ptr, wc1s_ptr, wc2_ptr, bc2_ptr,
                      sigma_ptr, rgb_ptr, pos_ptr, valid_ptr, coords_ptr, box_ptr, rest_ptr, N, per_frame,
                      ENC: tl.constexpr, ENC_P: tl.constexpr, A_P: tl.constexpr, E_P: tl.constexpr,
                      H_P: tl.constexpr, G_P: tl.constexpr, PRECISION: tl.constexpr, SCATTER: tl.constexpr,
                      REGIONS: tl.constexpr, BLOCK: tl.constexpr):
    # the same field from an encoding already in memory (the per-op encoder's [N, ENC] rows)
    pid = tl.program_id(0)
    n = pid * BLOCK + tl.arange(0, BLOCK)
    nmask = n < N
    n64 = n.to(tl.int64)
    col = tl.arange(0, ENC_P)
    e = tl.load(enc_ptr + n64[:, None] * ENC + col[None, :], mask=nmask[:, None] & (col < ENC)[None, :], other=0.0)
    x, y, z = _coords(coords_ptr, n64, nmask & REGIONS)  # read only for the speech and expression boxes
    _field_mlp(e, x, y, z, box_ptr, n64, nmask, ray_ptr, dirs_ptr, rframe_ptr, audio_ptr, expr_ptr, cbias_ptr, wga_ptr, bga_ptr,
               wge_ptr, bge_ptr, w1e_ptr, w1a_ptr, w1x_ptr, b1_ptr, w2_ptr, b2_ptr, w3_ptr, b3_ptr, wc1g_ptr,
               wc1s_ptr, wc2_ptr, bc2_ptr, sigma_ptr, rgb_ptr, pos_ptr, valid_ptr, rest_ptr, per_frame, ENC_P, A_P,
               E_P, H_P, G_P, PRECISION, SCATTER, REGIONS)


BLOCK = 64


def _device_guard(t: torch.Tensor):
    """Make ``t``'s GPU current for the launch (Triton launches on the current device)."""
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def _weights(w: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The padded weights in the kernels' argument order."""
    return [w[k] for k in ("wga", "bga", "wge", "bge", "w1e", "w1a", "w1x", "b1", "w2", "b2", "w3", "b3", "wc1g",
                           "wc1s", "wc2", "bc2")]


def _widths(w: dict[str, torch.Tensor]) -> dict[str, int]:
    """The padded widths the kernels are compiled for."""
    enc_p, a_p = w["wga"].shape
    return {"ENC_P": enc_p, "A_P": a_p, "E_P": w["wge"].shape[1], "H_P": w["w2"].shape[0], "G_P": w["w3"].shape[1]}


def _outputs(n: int, device: torch.device, into: tuple | None) -> tuple[torch.Tensor, ...]:
    """sigma, rgb and the scatter's rows and valid flags (uint8) the kernels write through: ``into`` = (sigma [M],
    rgb [M, 3], pos [N] int64, valid [N] bool), or new [N] and [N, 3] buffers (rows and flags unused)."""
    if into is None:
        sigma = torch.empty(n, device=device, dtype=torch.float32)
        return sigma, torch.empty(n, 3, device=device, dtype=torch.float32), sigma, sigma
    sigma, rgb, pos, valid = into
    return sigma, rgb, pos, valid.view(torch.uint8)


def _launch(kernel, inputs: list, after: list, sizes: list, one: bool, into: tuple | None,
            regions: tuple[torch.Tensor, torch.Tensor] | None, block: int, num_warps: int,
            **const) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one of the field kernels over the points of ``inputs[0]`` [N, ...]: its ``inputs``, then the outputs
    (:func:`_outputs`), the tensors ``after`` them, the boxes [12] and rest vectors [A_P + E_P] (``regions``, or
    placeholders that are not read), N, the ``sizes`` it takes and whether there are several frames, then
    ``const``."""
    n = inputs[0].shape[0]
    sigma, rgb, pos, valid = _outputs(n, inputs[0].device, into)
    box, rest = regions if regions is not None else (sigma, sigma)
    if n:
        with _device_guard(inputs[0]):
            kernel[(triton.cdiv(n, block),)](*inputs, sigma, rgb, pos, valid, *after, box, rest, n, *sizes,
                                             0 if one else 1, SCATTER=into is not None, REGIONS=regions is not None,
                                             BLOCK=block, num_warps=num_warps, **const)
    return sigma, rgb


def field_forward(coords: torch.Tensor, ray: torch.Tensor, dirs: torch.Tensor, ray_frame: torch.Tensor | None,
                  audio: torch.Tensor, expr: torch.Tensor, cbias: torch.Tensor, tables: torch.Tensor,
                  meta: torch.Tensor, w: dict[str, torch.Tensor], levels: int, features: int, rows: int,
                  log2_table: int, precision: str, block: int = BLOCK, num_warps: int = 4, into: tuple | None = None,
                  regions: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """coords [N, 3] float32; ray [N] int32; dirs [R, 3] float32; ray_frame [R] int32 or None (one frame);
    audio [B, A_P], expr [B, E_P], cbias [B, H_P] float32; tables [3, rows, F]; meta [L, 3] int32; ``w``: the
    padded weights (see PackedField). All contiguous. ``block`` points per program (a power of two, >= 16) and
    ``num_warps``: launch settings (benchmarks/kernels_gpu.py times them). Returns sigma [N], rgb [N, 3] float32;
    with ``into`` = (sigma [M], rgb [M, 3] float32, pos [N] int64, valid [N] bool), point n's results are written
    to row pos[n] of those where valid[n] instead, and they are returned. ``regions`` = (boxes [12] float32: the
    speech box's lo, hi then the expression box's, in unit coordinates; rests [A_P + E_P] float32): points outside
    the speech box read the first A_P of the rests instead of their frame's audio, points outside the expression
    box the last E_P instead of its expressions."""
    return _launch(_field_fwd_kernel, [coords, ray, dirs, ray if ray_frame is None else ray_frame, audio, expr, cbias,
                                       tables, meta, *_weights(w)], [], [rows], ray_frame is None, into, regions, block,
                   num_warps, LEVELS=levels, F=features, **_widths(w), HASH_MASK=(1 << log2_table) - 1, PRECISION=precision)


#: the MLP kernel's launch: fastest of 32-256 points x 2-8 warps on an H200 (benchmarks/kernels_gpu.py; 64 points
#: on 8 warps made an illegal memory access there). Full-precision products run on 4 warps: on 2, each thread's
#: share of the unrolled float32 products kept ptxas compiling for minutes on an H100
MLP_BLOCK, MLP_WARPS, MLP_WARPS_IEEE = 64, 2, 4


def field_mlp_forward(encoding: torch.Tensor, ray: torch.Tensor, dirs: torch.Tensor, ray_frame: torch.Tensor | None,
                      audio: torch.Tensor, expr: torch.Tensor, cbias: torch.Tensor, w: dict[str, torch.Tensor],
                      precision: str, block: int = MLP_BLOCK, num_warps: int | None = None, into: tuple | None = None,
                      coords: torch.Tensor | None = None, regions: tuple[torch.Tensor, torch.Tensor] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`field_forward` from the points' tri-plane encoding [N, ENC] float32 (contiguous): everything after
    the encoder in one launch; their coordinates [N, 3] (``coords``) are read only for ``regions``; ``num_warps``
    defaults to :data:`MLP_WARPS` (:data:`MLP_WARPS_IEEE` for ``ieee`` products). Returns sigma [N], rgb [N, 3]
    float32 (or ``into``'s, written as :func:`field_forward` says)."""
    if regions is not None and coords is None:
        raise ValueError("field_mlp_forward: regions need the points' coordinates")
    if num_warps is None:
        num_warps = MLP_WARPS_IEEE if precision == "ieee" else MLP_WARPS
    return _launch(_field_mlp_kernel, [encoding, ray, dirs, ray if ray_frame is None else ray_frame, audio, expr,
                                       cbias, *_weights(w)], [encoding if coords is None else coords], [],
                   ray_frame is None, into, regions, block, num_warps,
                   ENC=encoding.shape[1], **_widths(w), PRECISION=precision)
