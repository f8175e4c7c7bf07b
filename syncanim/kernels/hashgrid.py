"""Tri-plane multiresolution hash-grid encoding.

Three axis-aligned feature planes (plane 0 = (x, y), plane 1 = (y, z), plane 2 = (x, z)), each a stack
of ``L`` grids of growing resolution. A level of resolution ``res`` has ``res + 1`` grid points per side;
a plane coordinate ``u`` in [-1, 1] maps to ``(u + 1) / 2 * res`` in cell units and the feature is the
bilinear interpolation of the 4 surrounding grid points. Coarse levels whose ``(res + 1) ** 2`` points fit
in ``2 ** log2_table`` rows are stored densely (row ``iy * (res + 1) + ix``); finer levels are hashed
(row ``(ix ^ (iy * 2654435761)) mod 2 ** log2_table``, in uint32 arithmetic).

The table of all levels of one plane is one block of ``GridSpec.rows`` rows, level ``l`` starting at row
``GridSpec.offsets[l]``; the three planes are stacked into ``tables: [3, rows, F] float32``.

Backends of :func:`triplane_encode`: ``ref`` (:func:`triplane_encode_ref`, the specification), ``torch``
(dense levels through the ``F.grid_sample`` kernel, bilinear with align_corners=True; hashed levels through a custom autograd
gather with per-feature 1-D ``index_select`` forward and 1-D ``index_add_`` backward) and ``triton``
(one kernel over points x planes x levels; backward by ``atomic_add`` into a float32 table gradient).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .backend import load_triton_module, resolve_backend

__all__ = ["GridSpec", "grid_spec", "hash_index", "triplane_encode", "triplane_encode_ref", "PLANE_AXES"]

HASH_PRIME = 2654435761
PLANE_AXES = ((0, 1), (1, 2), (0, 2))  # (u, v) coordinate axes of planes 0, 1, 2
SUPPORTED_DTYPES = (torch.float32,)


@dataclass(frozen=True)
class GridSpec:
    """Layout of a tri-plane grid (build it with :func:`grid_spec`).

    levels: number of levels L. features: features per level F. log2_table: hashed levels hold
    ``2 ** log2_table`` rows. resolutions: cells per side of each level. dense: whether a level is
    stored densely (``(res + 1) ** 2 <= 2 ** log2_table``). offsets: first row of each level in a plane's
    table. rows: rows per plane (the sum of all level sizes).
    """

    levels: int
    features: int
    log2_table: int
    resolutions: tuple[int, ...]
    dense: tuple[bool, ...]
    offsets: tuple[int, ...]
    rows: int

    @property
    def out_features(self) -> int:
        """Width of the encoding: ``3 * levels * features``."""
        return 3 * self.levels * self.features

    def level_rows(self, level: int) -> int:
        """Rows used by ``level``: ``(res + 1) ** 2`` when dense, else ``2 ** log2_table``."""
        res = self.resolutions[level]
        return (res + 1) ** 2 if self.dense[level] else 1 << self.log2_table


def grid_spec(levels: int = 12, features: int = 2, base_res: int = 16, max_res: int = 1024,
              log2_table: int = 15) -> GridSpec:
    """The grid layout: resolutions geometric from ``base_res`` to ``max_res`` (rounded to integers).

    Level ``l`` has ``round(base_res * g ** l)`` cells per side, ``g = (max_res / base_res) ** (1 / (L - 1))``.
    Raises ValueError for levels < 1, features < 1, base_res < 1, max_res < base_res, log2_table outside
    [1, 30], or a table too large for 32-bit element offsets (``3 * rows * features >= 2 ** 31``).
    """
    if levels < 1 or features < 1 or base_res < 1:
        raise ValueError(f"need levels, features, base_res >= 1, got {levels}, {features}, {base_res}")
    if max_res < base_res:
        raise ValueError(f"need max_res >= base_res, got max_res={max_res} base_res={base_res}")
    if not 1 <= log2_table <= 30:
        raise ValueError(f"log2_table must be in [1, 30], got {log2_table}")
    if levels == 1:
        if max_res != base_res:
            raise ValueError(f"a single level needs max_res == base_res, got {base_res} and {max_res}")
        resolutions: tuple[int, ...] = (base_res,)
    else:
        growth = math.exp((math.log(max_res) - math.log(base_res)) / (levels - 1))
        resolutions = tuple(int(round(base_res * growth**lvl)) for lvl in range(levels))
    size = 1 << log2_table
    dense = tuple((r + 1) ** 2 <= size for r in resolutions)
    offsets, rows = [], 0
    for r, d in zip(resolutions, dense, strict=True):
        offsets.append(rows)
        rows += (r + 1) ** 2 if d else size
    if 3 * rows * features >= 2**31:
        raise ValueError(f"table of 3 x {rows} x {features} entries is too large (needs < 2**31)")
    return GridSpec(levels, features, log2_table, resolutions, dense, tuple(offsets), rows)


def hash_index(ix: torch.Tensor, iy: torch.Tensor, log2_table: int) -> torch.Tensor:
    """Hashed row of grid point (ix, iy): ``(ix ^ (iy * 2654435761)) mod 2 ** log2_table`` in uint32 arithmetic.

    ix, iy: [...] int64 grid indices in [0, 2 ** 31). Returns [...] int64 in [0, 2 ** log2_table).
    Computed in int64: the product stays below 2 ** 63, and the low ``log2_table`` (<= 32) bits of a
    product or xor do not depend on the bits above them, so the result equals uint32 wrap-around.
    """
    return (ix ^ (iy * HASH_PRIME)) & ((1 << log2_table) - 1)


def _check_spec(spec: GridSpec) -> None:
    """Raise ValueError unless the level layout is consistent (kernels index tables by it unchecked)."""
    n = spec.levels
    if not (len(spec.resolutions) == len(spec.dense) == len(spec.offsets) == n) or n < 1:
        raise ValueError(f"inconsistent GridSpec: {n} levels but resolutions/dense/offsets of lengths "
                         f"{len(spec.resolutions)}/{len(spec.dense)}/{len(spec.offsets)}")
    if spec.features < 1 or not 1 <= spec.log2_table <= 30 or min(spec.resolutions) < 1:
        raise ValueError(f"invalid GridSpec: features={spec.features} log2_table={spec.log2_table} "
                         f"resolutions={spec.resolutions}")
    starts = [0]
    for lvl in range(n):
        starts.append(starts[-1] + spec.level_rows(lvl))
    if list(spec.offsets) != starts[:-1] or spec.rows != starts[-1]:
        raise ValueError(f"inconsistent GridSpec: offsets {spec.offsets} / rows {spec.rows} do not match "
                         f"the level sizes (want offsets {tuple(starts[:-1])}, rows {starts[-1]})")


def triplane_encode_ref(coords: torch.Tensor, tables: torch.Tensor, spec: GridSpec) -> torch.Tensor:
    """Reference (specification) of :func:`triplane_encode`: plain torch, one level of one plane at a time.

    coords: [N, 3] float, clamped to [-1, 1]. tables: [3, spec.rows, F] float (same dtype as coords).
    Returns [N, 3 * L * F], columns ordered [plane][level][feature]. Differentiable in tables, and in coords
    through the bilinear weights (the public dispatcher does not offer coords gradients).
    """
    c = coords.clamp(-1.0, 1.0)
    outs = []
    for p, (a, b) in enumerate(PLANE_AXES):
        for lvl in range(spec.levels):
            res = spec.resolutions[lvl]
            px = (c[:, a] + 1) / 2 * res  # [N] in cell units
            py = (c[:, b] + 1) / 2 * res
            ix = px.floor().long().clamp(0, res - 1)  # lower corner; res - 1 at the upper edge
            iy = py.floor().long().clamp(0, res - 1)
            fx = (px - ix).unsqueeze(1)  # [N, 1]
            fy = (py - iy).unsqueeze(1)

            def row(jx, jy, res=res, lvl=lvl):
                if spec.dense[lvl]:
                    return spec.offsets[lvl] + jy * (res + 1) + jx
                return spec.offsets[lvl] + hash_index(jx, jy, spec.log2_table)

            t = tables[p]  # [rows, F]
            outs.append(
                (1 - fx) * (1 - fy) * t[row(ix, iy)]
                + fx * (1 - fy) * t[row(ix + 1, iy)]
                + (1 - fx) * fy * t[row(ix, iy + 1)]
                + fx * fy * t[row(ix + 1, iy + 1)]
            )  # [N, F]
    return torch.cat(outs, dim=1)


def _hashed_corners(uv1: torch.Tensor, res: int, log2_table: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows and bilinear weights of the 4 corners of every point on a hashed level, for all 3 planes.

    uv1: [3, 2, N] float32, ``(u + 1) / 2`` of each plane's (u, v). Returns idx [4, 3 * N] (int32 when
    log2_table <= 15, else int64; rows of the [3 * 2 ** log2_table] stack of this level's planes) and
    w [4, 3 * N] float32; corner order (ix, iy), (ix + 1, iy), (ix, iy + 1), (ix + 1, iy + 1).
    """
    n = uv1.shape[2]
    size = 1 << log2_table
    mask = size - 1
    small = log2_table <= 15  # (iy & mask) * (prime & mask) < 2 ** 30: exact in int32
    itype = torch.int32 if small else torch.int64
    prime = HASH_PRIME & mask if small else HASH_PRIME
    pos = uv1 * res  # [3, 2, N] cell units
    i0 = pos.floor().to(itype).clamp_(0, res - 1)  # [3, 2, N]; NaN -> 0 (in bounds)
    frac = pos.sub_(i0)  # [3, 2, N]
    ix, iy = i0[:, 0], i0[:, 1]  # [3, N]
    if small:
        hy0 = (iy & mask).mul_(prime)
        hy1 = ((iy + 1).bitwise_and_(mask)).mul_(prime)
    else:
        hy0 = iy * prime
        hy1 = hy0 + prime
    ix1 = ix + 1
    idx = torch.empty(4, 3, n, dtype=itype, device=uv1.device)  # [4, 3, N]
    for k, (a, b) in enumerate(((ix, hy0), (ix1, hy0), (ix, hy1), (ix1, hy1))):
        torch.bitwise_xor(a, b, out=idx[k]).bitwise_and_(mask)
    idx += (torch.arange(3, dtype=itype, device=uv1.device) * size)[:, None]  # plane blocks
    fx, fy = frac[:, 0], frac[:, 1]  # [3, N]
    gx, gy = 1 - fx, 1 - fy
    w = torch.empty(4, 3, n, dtype=uv1.dtype, device=uv1.device)  # [4, 3, N]
    for k, (a, b) in enumerate(((gx, gy), (fx, gy), (gx, fy), (fx, fy))):
        torch.mul(a, b, out=w[k])
    return idx.view(4, 3 * n), w.view(4, 3 * n)


class _TriplaneTorch(torch.autograd.Function):
    """The ``torch`` backend as one autograd node (differentiable in tables only).

    Dense levels: ``grid_sampler_2d`` over the 3 planes at once (bilinear, align_corners=True), backward
    through ``aten.grid_sampler_2d_backward``. Hashed levels: per-feature 1-D ``index_select`` forward and
    1-D ``index_add_`` backward (on CPU an order of magnitude faster than the 2-D scatter behind
    advanced-indexing or embedding backward). Levels are computed into a [3, L, F, N] buffer and transposed
    once to [N, 3 * L * F].
    """

    @staticmethod
    def forward(ctx, coords, tables, spec):
        # coords [N, 3] float32; tables [3, rows, F] float32 -> [N, 3 * L * F]
        n, nf, nl = coords.shape[0], spec.features, spec.levels
        c = coords.clamp(-1.0, 1.0)
        uv = torch.stack([c[:, 0:2], c[:, 1:3], c[:, 0::2]])  # [3, N, 2] (u, v) per plane, as PLANE_AXES
        grid = uv.unsqueeze(1)  # [3, 1, N, 2]: x -> ix (width), y -> iy (height)
        uv1 = (uv.transpose(1, 2).contiguous() + 1) / 2  # [3, 2, N]
        buf = tables.new_empty(3, nl, nf, n)  # [3, L, F, N]
        saved: dict[int, tuple[torch.Tensor, ...]] = {}  # per level: (img,) dense or (idx, w) hashed
        vals = acc = None
        for lvl in range(nl if n else 0):
            off, size, res = spec.offsets[lvl], spec.level_rows(lvl), spec.resolutions[lvl]
            piece = tables[:, off:off + size]  # [3, size, F]
            if spec.dense[lvl]:
                side = res + 1
                img = piece.reshape(3, side, side, nf).permute(0, 3, 1, 2).contiguous()  # [3, F, iy, ix]
                s = torch.grid_sampler_2d(img, grid, 0, 1, True)  # [3, F, 1, N] bilinear, border, align_corners
                buf[:, lvl].copy_(s.view(3, nf, n))
                saved[lvl] = (img,)
            else:
                idx, w = _hashed_corners(uv1, res, spec.log2_table)  # [4, 3N], [4, 3N]
                flat = piece.reshape(3 * size, nf)  # [3 * size, F]
                if vals is None:
                    vals = tables.new_empty(4 * 3 * n)  # reused: fresh memory is slow to fault in on CPU
                    acc = tables.new_empty(3 * n)
                for f in range(nf):
                    torch.index_select(flat[:, f], 0, idx.view(-1), out=vals)
                    torch.sum(vals.view(4, 3 * n).mul_(w), dim=0, out=acc)  # [3N]
                    buf[:, lvl, f].copy_(acc.view(3, n))
                saved[lvl] = (idx, w)
        ctx.save_for_backward(grid)
        ctx.levels = saved
        ctx.spec = spec
        ctx.table_shape = tables.shape
        return buf.view(3 * nl * nf, n).t().contiguous()  # [N, 3 * L * F]

    @staticmethod
    def backward(ctx, grad):
        (grid,) = ctx.saved_tensors
        spec = ctx.spec
        n, nf, nl = grid.shape[2], spec.features, spec.levels
        gtab = grad.new_zeros(ctx.table_shape)  # [3, rows, F]
        if n == 0:
            return None, gtab, None
        g = grad.t().contiguous().view(3, nl, nf, n)  # [3, L, F, N]
        wg = None
        for lvl in range(nl):
            off, size = spec.offsets[lvl], spec.level_rows(lvl)
            if spec.dense[lvl]:
                (img,) = ctx.levels[lvl]
                gimg, _ = torch.ops.aten.grid_sampler_2d_backward(
                    g[:, lvl].unsqueeze(2), img, grid, 0, 1, True, [True, False])  # [3, F, iy, ix]
                gtab[:, off:off + size].copy_(gimg.permute(0, 2, 3, 1).reshape(3, size, nf))
            else:
                idx, w = ctx.levels[lvl]
                idx1 = idx.view(-1)
                gcol = grad.new_zeros(nf, 3 * size)  # per-feature contiguous columns
                if wg is None:
                    wg = grad.new_empty(4, 3 * n)  # reused across levels and features
                for f in range(nf):
                    torch.mul(w, g[:, lvl, f].reshape(1, 3 * n), out=wg)  # [4, 3N]
                    gcol[f].index_add_(0, idx1, wg.view(-1))
                gtab[:, off:off + size].copy_(gcol.t().view(3, size, nf))
        return None, gtab, None


_META_CACHE: dict[tuple[GridSpec, torch.device], torch.Tensor] = {}


def _level_meta(spec: GridSpec, device: torch.device) -> torch.Tensor:
    """[L, 3] int32 on ``device``: (resolution, offset, dense) per level; cached per (spec, device)."""
    key = (spec, device)
    meta = _META_CACHE.get(key)
    if meta is None:
        meta = torch.tensor(
            [[r, o, int(d)] for r, o, d in zip(spec.resolutions, spec.offsets, spec.dense, strict=True)],
            dtype=torch.int32,
        ).to(device)
        _META_CACHE[key] = meta
    return meta


class _TriplaneTriton(torch.autograd.Function):
    """One Triton launch forward, one backward (atomic adds into a float32 table gradient); tables only."""

    @staticmethod
    def forward(ctx, coords, tables, spec):
        mod = load_triton_module("hashgrid_kernels")
        meta = _level_meta(spec, coords.device)
        out = mod.triplane_forward(coords, tables, meta, spec.levels, spec.features, spec.rows, spec.log2_table)
        ctx.save_for_backward(coords)
        ctx.spec = spec
        return out

    @staticmethod
    def backward(ctx, grad):
        (coords,) = ctx.saved_tensors
        spec = ctx.spec
        mod = load_triton_module("hashgrid_kernels")
        meta = _level_meta(spec, coords.device)
        g = mod.triplane_backward(coords, grad.contiguous(), meta, spec.levels, spec.features, spec.rows,
                                  spec.log2_table)
        return None, g, None


def _triplane_encode_torch(coords: torch.Tensor, tables: torch.Tensor, spec: GridSpec) -> torch.Tensor:
    """``torch`` backend of :func:`triplane_encode` (validated, contiguous inputs; same shapes)."""
    return _TriplaneTorch.apply(coords, tables, spec)


def _triplane_encode_triton(coords: torch.Tensor, tables: torch.Tensor, spec: GridSpec) -> torch.Tensor:
    """``triton`` backend of :func:`triplane_encode` (validated, contiguous inputs; same shapes)."""
    return _TriplaneTriton.apply(coords, tables, spec)


def _validate(coords: torch.Tensor, tables: torch.Tensor, spec: GridSpec) -> None:
    _check_spec(spec)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise ValueError(f"coords must be [N, 3], got {list(coords.shape)}")
    want = [3, spec.rows, spec.features]
    if list(tables.shape) != want:
        raise ValueError(f"tables must be {want} for this GridSpec, got {list(tables.shape)}")
    for name, t in (("coords", coords), ("tables", tables)):
        if t.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"{name} must be float32, got {t.dtype}")
    if coords.device != tables.device:
        raise ValueError(f"coords on {coords.device} but tables on {tables.device}")
    if coords.requires_grad:
        raise ValueError("triplane_encode does not differentiate coords; pass coords.detach()")


def triplane_encode(coords: torch.Tensor, tables: torch.Tensor, spec: GridSpec, backend: str = "auto") -> torch.Tensor:
    """Encode points with a tri-plane multiresolution hash grid.

    coords: [N, 3] float32, clamped to [-1, 1] (must not require grad). tables: [3, spec.rows, spec.features]
    float32, same device. backend: ``"auto"`` (triton on CUDA tensors when Triton imports, else torch),
    ``"ref"``, ``"torch"`` or ``"triton"``. Returns [N, 3 * L * F] float32, columns ordered
    [plane][level][feature]; differentiable in tables. NaN coordinates give unspecified but in-bounds results.
    Supported dtypes: float32. Raises ValueError on bad inputs, BackendUnavailable for a backend that cannot run.
    """
    _validate(coords, tables, spec)
    chosen = resolve_backend("triplane_encode", backend, coords.device, ("ref", "torch", "triton"),
                             ("triton", "torch"))
    coords = coords.contiguous()
    if chosen == "ref":
        return triplane_encode_ref(coords, tables, spec)
    if chosen == "torch":
        return _triplane_encode_torch(coords, tables, spec)
    return _triplane_encode_triton(coords, tables.contiguous(), spec)
