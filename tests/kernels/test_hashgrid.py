"""Tri-plane hash-grid encoding: layout, the reference against a brute-force loop, backends against the reference."""

from __future__ import annotations

import logging
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from syncanim.kernels import (
    BackendUnavailable,
    GridSpec,
    grid_spec,
    hash_index,
    triplane_encode,
    triplane_encode_ref,
)

PLANE_AXES = ((0, 1), (1, 2), (0, 2))  # plane 0 = (x, y), plane 1 = (y, z), plane 2 = (x, z)

PRIME = 2654435761

# (levels, features, base_res, max_res, log2_table) -> which level kinds it has
SPECS = {
    "mixed": (4, 2, 4, 64, 8),  # res 4, 10, 25, 64: two dense, two hashed
    "dense-only": (3, 2, 4, 12, 10),
    "hashed-only": (2, 3, 40, 90, 8),
    "one-feature": (3, 1, 8, 32, 9),
    "wide-hash": (3, 2, 100, 400, 16),  # log2_table > 15: the int64 hash path of the torch backend
}


def _spec(name: str) -> GridSpec:
    lv, f, base, mx, t = SPECS[name]
    return grid_spec(levels=lv, features=f, base_res=base, max_res=mx, log2_table=t)


def _inputs(spec: GridSpec, n: int, seed: int = 0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    coords = torch.rand(n, 3, generator=g, dtype=dtype) * 2.2 - 1.1  # some points outside [-1, 1]
    tables = torch.randn(3, spec.rows, spec.features, generator=g, dtype=dtype)
    return coords, tables.requires_grad_()


# ---------------------------------------------------------------- layout


def test_grid_spec_defaults():
    s = grid_spec()
    assert (s.levels, s.features, s.log2_table) == (12, 2, 15)
    assert len(s.resolutions) == len(s.dense) == len(s.offsets) == 12
    assert s.resolutions[0] == 16 and s.resolutions[-1] == 1024
    assert list(s.resolutions) == sorted(s.resolutions)
    ratios = [b / a for a, b in zip(s.resolutions, s.resolutions[1:], strict=False)]
    assert max(ratios) / min(ratios) < 1.05  # geometric up to integer rounding
    assert s.dense == tuple((r + 1) ** 2 <= 2**15 for r in s.resolutions)
    assert s.dense[0] and not s.dense[-1]
    sizes = [(r + 1) ** 2 if d else 2**15 for r, d in zip(s.resolutions, s.dense, strict=True)]
    assert list(s.offsets) == [sum(sizes[:i]) for i in range(12)]
    assert s.rows == sum(sizes)
    assert s.out_features == 72


def test_grid_spec_single_level():
    s = grid_spec(levels=1, features=4, base_res=8, max_res=8, log2_table=6)
    assert s.resolutions == (8,) and s.dense == (False,) and s.rows == 64  # 81 points > 64 rows: hashed


@pytest.mark.parametrize("kwargs", [
    {"levels": 0}, {"features": 0}, {"base_res": 0}, {"base_res": 32, "max_res": 16},
    {"log2_table": 0}, {"log2_table": 31}, {"levels": 1, "max_res": 1024},
    {"levels": 16, "log2_table": 24, "features": 16, "max_res": 100_000},  # too many rows for 32-bit offsets
])
def test_grid_spec_rejects(kwargs):
    with pytest.raises(ValueError):
        grid_spec(**kwargs)


@pytest.mark.parametrize("log2_table", [1, 8, 15, 16, 24, 30])
def test_hash_index_is_uint32_arithmetic(log2_table):
    rng = np.random.default_rng(log2_table)
    ix = rng.integers(0, 2**21, 2000, dtype=np.int64)
    iy = rng.integers(0, 2**21, 2000, dtype=np.int64)
    want = (ix.astype(np.uint32) ^ (iy.astype(np.uint32) * np.uint32(PRIME))) % np.uint32(2**log2_table)
    got = hash_index(torch.from_numpy(ix), torch.from_numpy(iy), log2_table)
    np.testing.assert_array_equal(got.numpy(), want.astype(np.int64))


# ---------------------------------------------------------------- the reference


def _brute_force(coords: np.ndarray, tables: np.ndarray, spec: GridSpec) -> np.ndarray:
    """One point, plane, level and corner at a time, in float64 with Python integers."""
    n = coords.shape[0]
    out = np.zeros((n, 3, spec.levels, spec.features))
    for i in range(n):
        for p, (a, b) in enumerate(PLANE_AXES):
            for lv in range(spec.levels):
                res = spec.resolutions[lv]
                u = min(max(coords[i, a], -1.0), 1.0)
                v = min(max(coords[i, b], -1.0), 1.0)
                px, py = (u + 1) / 2 * res, (v + 1) / 2 * res
                ix, iy = min(int(math.floor(px)), res - 1), min(int(math.floor(py)), res - 1)
                fx, fy = px - ix, py - iy
                for dx, dy, wgt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                                    (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
                    jx, jy = ix + dx, iy + dy
                    if spec.dense[lv]:
                        row = jy * (res + 1) + jx
                    else:
                        row = (jx ^ ((jy * PRIME) % 2**32)) % 2**spec.log2_table
                    out[i, p, lv] += wgt * tables[p, spec.offsets[lv] + row]
    return out.reshape(n, -1)


@pytest.mark.parametrize("name", ["mixed", "hashed-only", "one-feature"])
def test_ref_matches_brute_force(name):
    spec = _spec(name)
    coords, tables = _inputs(spec, 23, dtype=torch.float64)
    got = triplane_encode_ref(coords, tables.detach(), spec)
    want = _brute_force(coords.numpy(), tables.detach().numpy(), spec)
    # float64 on both sides; only the order of 4 additions differs
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", ["ref", "torch"])
def test_grid_points_give_table_entries(backend):
    # power-of-two resolutions: grid points are exact in float32 and bilinear weights are exactly 0 or 1
    spec = grid_spec(levels=3, features=2, base_res=4, max_res=16, log2_table=6)  # res 4 dense; 8, 16 hashed
    assert spec.resolutions == (4, 8, 16) and spec.dense == (True, False, False)
    _, tables = _inputs(spec, 0)
    for lv, res in enumerate(spec.resolutions):
        jx, jy, jz = torch.meshgrid(*(torch.arange(res + 1),) * 3, indexing="ij")
        ijk = torch.stack([jx.flatten(), jy.flatten(), jz.flatten()], 1)  # [P, 3] grid indices
        coords = ijk.float() * (2 / res) - 1
        out = triplane_encode(coords, tables, spec, backend=backend).detach().view(-1, 3, spec.levels, 2)
        for p, (a, b) in enumerate(PLANE_AXES):
            if spec.dense[lv]:
                rows = ijk[:, b] * (res + 1) + ijk[:, a]
            else:
                rows = hash_index(ijk[:, a], ijk[:, b], spec.log2_table)
            want = tables.detach()[p, spec.offsets[lv] + rows]
            torch.testing.assert_close(out[:, p, lv], want, rtol=0, atol=0)  # weights are exactly 0 and 1


@pytest.mark.parametrize("backend", ["ref", "torch"])
def test_points_outside_are_clamped(backend):
    spec = _spec("mixed")
    coords, tables = _inputs(spec, 50)
    coords = coords * 3
    a = triplane_encode(coords, tables, spec, backend=backend)
    b = triplane_encode(coords.clamp(-1, 1), tables, spec, backend=backend)
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # clamping happens first: identical arithmetic


def test_ref_output_layout():
    spec = _spec("mixed")
    coords, tables = _inputs(spec, 5)
    out = triplane_encode_ref(coords, tables, spec)
    assert out.shape == (5, 3 * spec.levels * spec.features) and out.dtype == torch.float32
    # zeroing plane 1 level 2 touches exactly the columns [plane][level][feature] says
    t2 = tables.detach().clone()
    t2[1, spec.offsets[2]:spec.offsets[3]] = 0
    changed = (triplane_encode_ref(coords, t2, spec) != out.detach()).any(0)
    col = (1 * spec.levels + 2) * spec.features
    assert changed.nonzero().flatten().tolist() == list(range(col, col + spec.features))


# ---------------------------------------------------------------- backends against the reference


def _check_backend(backend: str, spec: GridSpec, n: int, device: str, seed: int = 0):
    coords, tables = _inputs(spec, n, seed)
    coords, tables = coords.to(device), tables.detach().to(device).requires_grad_()
    want = triplane_encode_ref(coords, tables, spec)
    got = triplane_encode(coords, tables, spec, backend=backend)
    assert got.shape == want.shape and got.dtype == torch.float32
    # The cell position p = (u + 1) / 2 * res is a float32 of size up to res, so its fraction (the
    # bilinear weight) is only known to about res * 2^-24 per rounding; the GPU rounds (and fuses
    # multiply-adds) differently from the CPU reference. Allow a few such roundings of the largest
    # resolution, times the largest table value, on top of a few ulp of the sum itself.
    pos_eps = 8 * max(spec.resolutions) * 2.0**-24
    big = float(tables.detach().abs().max())
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 + pos_eps * big)
    cot = torch.randn(want.shape, generator=torch.Generator().manual_seed(seed + 1)).to(device)
    (g_want,) = torch.autograd.grad(want, tables, cot)
    (g_got,) = torch.autograd.grad(got, tables, cot)
    # each table entry sums up to n weighted cotangents, accumulated in another order (and atomically on
    # GPU), each weight carrying the position rounding above
    torch.testing.assert_close(g_got, g_want, rtol=1e-5, atol=(1e-5 + pos_eps) * max(1.0, math.sqrt(n)))


@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("n", [0, 1, 7, 257, 3000])
def test_torch_backend_matches_ref(name, n):
    _check_backend("torch", _spec(name), n, "cpu")


def test_torch_backend_default_spec():
    _check_backend("torch", grid_spec(), 2049, "cpu")


def test_torch_backend_nan_stays_in_bounds():
    spec = _spec("mixed")
    coords, tables = _inputs(spec, 4)
    coords[1, 0] = float("nan")
    out = triplane_encode(coords, tables, spec, backend="torch")
    assert out[[0, 2, 3]].isfinite().all()


# ---------------------------------------------------------------- validation and dispatch


def test_rejects_bad_inputs():
    spec = _spec("mixed")
    coords, tables = _inputs(spec, 4)
    with pytest.raises(ValueError, match=r"\[4, 2\]"):
        triplane_encode(coords[:, :2], tables, spec)
    with pytest.raises(ValueError, match=r"\[3, 658, 3\]"):
        triplane_encode(coords, torch.zeros(3, spec.rows, 3), spec)
    with pytest.raises(ValueError, match="float64"):
        triplane_encode(coords.double(), tables, spec)
    with pytest.raises(ValueError, match="float16"):
        triplane_encode(coords, tables.detach().half(), spec)
    with pytest.raises(ValueError, match="coords"):
        triplane_encode(coords.requires_grad_(), tables, spec)
    with pytest.raises(ValueError, match="unknown backend"):
        triplane_encode(coords.detach(), tables, spec, backend="fast")


def test_rejects_inconsistent_spec():
    import dataclasses

    spec = _spec("mixed")
    coords, tables = _inputs(spec, 4)
    bad = dataclasses.replace(spec, offsets=(0, 25, 146, 401))
    with pytest.raises(ValueError, match="offsets"):
        triplane_encode(coords, tables, bad)
    bad = dataclasses.replace(spec, dense=(True, True, True, False))  # level 2 would need 26 ** 2 rows
    with pytest.raises(ValueError, match="offsets"):
        triplane_encode(coords, tables, bad)


def test_unavailable_backends_raise(monkeypatch):
    spec = _spec("mixed")
    coords, tables = _inputs(spec, 4)
    with pytest.raises(BackendUnavailable, match="cuda"):
        triplane_encode(coords, tables, spec, backend="cuda")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(BackendUnavailable, match="triton"):
        triplane_encode(coords, tables, spec, backend="triton")


def test_auto_on_cpu_uses_torch_and_logs_once(caplog, monkeypatch):
    from syncanim.kernels import backend as be

    monkeypatch.setattr(be, "_chosen", {})
    spec = _spec("mixed")
    coords, tables = _inputs(spec, 4)
    with caplog.at_level(logging.INFO, logger="syncanim.kernels.backend"):
        a = triplane_encode(coords, tables, spec)
        triplane_encode(coords, tables, spec)
    msgs = [r.getMessage() for r in caplog.records if "triplane_encode" in r.getMessage()]
    assert len(msgs) == 1 and "'torch'" in msgs[0]
    assert be.chosen_backends()["triplane_encode"] == "torch"
    torch.testing.assert_close(a, triplane_encode(coords, tables, spec, backend="torch"), rtol=0, atol=0)


def test_import_loads_no_triton():
    code = "import sys, syncanim.kernels; assert 'triton' not in sys.modules, 'triton imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("name", list(SPECS))
@pytest.mark.parametrize("n", [0, 1, 1000, 65_537])
def test_gpu_backend_matches_ref(backend, name, n):
    _check_backend(backend, _spec(name), n, "cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_gpu_default_spec_large(backend):
    _check_backend(backend, grid_spec(), 131_072, "cuda")


@pytest.mark.gpu
def test_gpu_auto_picks_triton():
    spec = _spec("mixed")
    coords, tables = _inputs(spec, 100)
    from syncanim.kernels import chosen_backends

    triplane_encode(coords.cuda(), tables.detach().cuda(), spec)
    assert chosen_backends()["triplane_encode"] == "triton"
