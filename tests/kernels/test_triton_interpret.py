"""The Triton kernels run by Triton's interpreter on CPU tensors, against the torch references.

Each check runs in a fresh interpreter process: ``TRITON_INTERPRET=1`` must be set before any kernel is
defined. Sizes are small (the interpreter executes every program in numpy).
"""

from __future__ import annotations

import importlib.util

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")

HASHGRID = """
import math, torch
from syncanim.kernels import grid_spec, triplane_encode, triplane_encode_ref

for (levels, feats, base, mx, log2t), n in [((4, 2, 4, 64, 8), 300), ((3, 3, 100, 400, 16), 257),
                                          ((2, 1, 4, 8, 6), 1), ((2, 2, 4, 8, 6), 0)]:
    spec = grid_spec(levels=levels, features=feats, base_res=base, max_res=mx, log2_table=log2t)
    g = torch.Generator().manual_seed(n)
    coords = torch.rand(n, 3, generator=g) * 2.2 - 1.1
    coords[:3] = torch.tensor([[-1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])[: min(n, 3)]
    tables = torch.randn(3, spec.rows, feats, generator=g).requires_grad_()
    want = triplane_encode_ref(coords, tables, spec)
    got = triplane_encode(coords, tables, spec, backend="triton")
    # 4 float32 products summed in another order
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    cot = torch.randn(want.shape, generator=g)
    (gw,) = torch.autograd.grad(want, tables, cot)
    (gg,) = torch.autograd.grad(got, tables, cot)
    # atomic adds in program order instead of index_put's order
    torch.testing.assert_close(gg, gw, rtol=1e-5, atol=1e-5 * max(1.0, math.sqrt(n)))
print("ok")
"""

COMPOSITE = """
import torch
from syncanim.kernels import composite_rays, composite_rays_ref

for r, s, with_bg, use_weights in [(3, 1, True, True), (5, 7, True, False), (4, 40, False, True),
                                   (3, 200, True, True), (0, 4, True, True), (2, 16, False, False)]:
    g = torch.Generator().manual_seed(r * 1000 + s)
    sigma = (torch.rand(r, s, generator=g) * 4)
    if s > 2:
        sigma[:, 2] = 0
    if r > 1:
        sigma[1, 0] = 1e4  # opaque first sample
    sigma.requires_grad_()
    rgb = torch.rand(r, s, 3, generator=g).requires_grad_()
    deltas = torch.rand(r, s, generator=g) * 0.3 + 0.01
    t = torch.cumsum(deltas, 1)
    bg = torch.rand(r, 3, generator=g).requires_grad_() if with_bg else None
    want = composite_rays(sigma, rgb, deltas, t, bg, backend="ref")
    got = composite_rays(sigma, rgb, deltas, t, bg, backend="triton")
    # exp of a running sum of optical depths instead of a product of exp: a few float32 ulp
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    n_out = 4 if use_weights else 3  # without the weights term the backward skips its cotangent
    cots = [torch.randn(o.shape, generator=g) for o in want[:n_out]]
    leaves = [x for x in (sigma, rgb, bg) if x is not None]
    gw = torch.autograd.grad(want[:n_out], leaves, cots)
    gg = torch.autograd.grad(got[:n_out], leaves, cots)
    # reverse accumulation (total minus prefix) against autograd through cumprod
    for a, b in zip(gg, gw):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
print("ok")
"""


@pytest.mark.parametrize("script", [HASHGRID, COMPOSITE], ids=["hashgrid", "composite"])
def test_triton_interpreter_matches_ref(script, interpreted):
    interpreted(script)
