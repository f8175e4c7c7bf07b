"""The fused field kernel (``HeadField.points`` with the ``triton`` backend) against its reference, the field's
own forward on gathered inputs: Triton's interpreter on CPU, the compiled kernel on a GPU."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest
import torch

from syncanim.kernels.field import pack_field
from syncanim.kernels.hashgrid import grid_spec
from syncanim.model.field import HeadField

CASES = """
import torch
from syncanim.kernels.field import Regions, Scatter
from syncanim.kernels.hashgrid import grid_spec
from syncanim.model.field import HeadField
from syncanim.model.head import WHOLE_BOX

MOUTH_BOX = torch.tensor([[-0.6, 0.1, -1.0], [0.7, 0.9, 1.0]])
EYE_BOX = torch.tensor([[-0.7, -0.5, -1.0], [0.6, 0.0, 1.0]])


def regions(audio, expr, speech=MOUTH_BOX, eyes=EYE_BOX):
    # outside the boxes the points read rest vectors instead of their frame's mouth vector and expressions
    g = torch.Generator().manual_seed(audio + expr)
    return Regions(speech, torch.randn(audio, generator=g), eyes, torch.rand(expr, generator=g))


def field(spec, audio, expr, latent, hidden, geo):
    torch.manual_seed(hidden + geo)
    f = HeadField(spec, audio, expr, latent, hidden=hidden, geo_dim=geo)
    with torch.no_grad():  # weights of a trained size, not the initial 1e-4 tables
        f.tables.normal_(0, 0.5)
        for p in f.parameters():
            if p is not f.tables:
                p.add_(torch.randn_like(p) * 0.1)
    return f


def inputs(f, n, rays, frames, device):
    g = torch.Generator().manual_seed(n + rays + frames)
    x = torch.rand(n, 3, generator=g) * 2.2 - 1.1  # some outside the box: clamped
    ray = torch.randint(0, rays, (n,), generator=g)
    dirs = torch.nn.functional.normalize(torch.randn(rays, 3, generator=g), dim=1)
    ray_frame = torch.randint(0, frames, (rays,), generator=g) if frames > 1 else None
    cond = (torch.randn(frames, f.audio_gate.out_features, generator=g),
            torch.rand(frames, f.expr_gate.out_features, generator=g),
            torch.randn(frames, f.color_net[0].in_features - f.density_net[-1].out_features + 1 - 9, generator=g))
    return [t if t is None else t.to(device) for t in (x, ray, dirs, ray_frame, *cond)]


def check(f, n, rays, frames, device, tol, precision="ieee", regions=None):
    # regions: where the mouth and expression codes act (Regions)
    f = f.to(device)
    args = inputs(f, n, rays, frames, device)
    if regions is not None:
        regions = regions.to(device)
    with torch.no_grad():
        f.backend = "torch"
        want = f.points(*args, regions=regions)
        if regions is not None and n:  # the boxes matter here: a kernel that ignored them would fail below
            assert not torch.allclose(want[0], f.points(*args)[0], rtol=tol, atol=tol)
        f.backend = "triton"
        got = f.points(*args, precision=precision, regions=regions)
        after_encoder = f.points(*args, fused="mlp", precision=precision, regions=regions)
        f.backend = "auto"
        if regions is None:
            assert torch.equal(f.points(*args, fused="off")[0], f(args[0], args[2][args[1]], *(
                v if args[3] is None else v[args[3][args[1]]] for v in args[4:]))["sigma"])
    for a, b, c in zip(got, want, after_encoder):
        assert a.dtype == torch.float32 and a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
        torch.testing.assert_close(c, b, rtol=tol, atol=tol)
    # results scattered to rows of bigger buffers, the invalid points dropped, by every path
    g = torch.Generator().manual_seed(n)
    pos = torch.randperm(2 * n + 3, generator=g)[:n].to(device)
    valid = (torch.rand(n, generator=g) < 0.7).to(device)
    for backend, fused in (("torch", "off"), ("triton", "mlp"), ("triton", "all")):
        f.backend = backend
        into = Scatter(torch.zeros(2 * n + 3, device=device), torch.zeros(2 * n + 3, 3, device=device), pos, valid)
        with torch.no_grad():
            sigma, rgb = f.points(*args, fused=fused, precision=precision, into=into, regions=regions)
        assert sigma is into.sigma and rgb is into.rgb
        keep = pos[valid]
        torch.testing.assert_close(sigma[keep], want[0][valid], rtol=tol, atol=tol)
        torch.testing.assert_close(rgb[keep], want[1][valid], rtol=tol, atol=tol)
        dropped = torch.ones(2 * n + 3, dtype=torch.bool, device=device)
        dropped[keep] = False
        assert not sigma[dropped].any() and not rgb[dropped].any()
    f.backend = "auto"
"""

INTERPRETED = CASES + """
spec = grid_spec(levels=4, features=2, base_res=4, max_res=64, log2_table=8)  # dense and hashed levels
check(field(spec, 32, 3, 4, 64, 15), 300, 40, 3, "cpu", 1e-5)  # three frames' conditioning
check(field(spec, 32, 3, 4, 64, 15), 130, 7, 1, "cpu", 1e-5)  # one frame's, broadcast
check(field(spec, 32, 3, 4, 64, 15), 0, 1, 1, "cpu", 1e-5)  # no points
check(field(spec, 32, 3, 4, 64, 15), 300, 40, 3, "cpu", 1e-5, regions=regions(32, 3))  # both boxes
check(field(spec, 32, 3, 4, 64, 15), 130, 7, 1, "cpu", 1e-5, regions=regions(32, 3))
w = torch.as_tensor(WHOLE_BOX)  # one box holds every point: the other alone must still change the field
check(field(spec, 32, 3, 4, 64, 15), 300, 40, 3, "cpu", 1e-5, regions=regions(32, 3, eyes=w))
check(field(spec, 32, 3, 4, 64, 15), 300, 40, 3, "cpu", 1e-5, regions=regions(32, 3, speech=w))
f = field(spec, 32, 3, 4, 64, 15)  # launch settings (benchmarks/kernels_gpu.py) change nothing
args = inputs(f, 300, 40, 3, "cpu")
from syncanim.kernels.field import field_points_triton
ref = field_points_triton(f.packed(), f.spec, f.tables, *args)
for launch in ({"block": 16, "num_warps": 2}, {"block": 128, "num_warps": 8}):
    for a, b in zip(field_points_triton(f.packed(), f.spec, f.tables, *args, launch=launch), ref):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
spec = grid_spec(levels=3, features=3, base_res=5, max_res=40, log2_table=7)
check(field(spec, 20, 5, 0, 24, 6), 77, 9, 2, "cpu", 1e-5)  # widths that are not powers of two, no latent
check(field(spec, 20, 5, 0, 24, 6), 77, 9, 2, "cpu", 1e-5, regions=regions(20, 5))

# whole frames of a head: compact (two marching runs) and dense layouts, with and without the fused kernel
from syncanim.bench import synthetic as syn
from syncanim.model.camera import Camera
from syncanim.model.conditioning import Conditioning
from syncanim.model.frames import DenseRects
from syncanim.model.head import NerfHeadConfig

config = NerfHeadConfig(levels=4, log2_table=10, max_res=64, samples=8, hidden=16, audio_dim=8, geo_dim=4,
                        occupancy_res=16, prior_res=32, backend="triton")
model, canonical = syn.synthetic_model(config, 4, 80)
with torch.no_grad():
    model.field.density_net[-1].bias[0] += 4  # opaque: the second run skips rays
cam, dist = syn.synthetic_camera(48, canonical)
rot, trans = syn.synthetic_poses(250, dist)
camera = Camera.from_numpy(rot[[0, 130]], trans[[0, 130]], cam.focal, cam.cx, cam.cy, 48, "cpu")
g = torch.Generator().manual_seed(0)
cond = Conditioning(torch.randn(2, 8, generator=g), torch.rand(2, 3, generator=g), model.latent_for(None, 2))
bg = torch.rand(2, 48, 48, 3, generator=g)
layout = DenseRects.covering(model.head_rects(camera), 48, "cpu")
for dense in (None, layout):
    frames = {}
    for fused in ("off", "mlp", "all"):
        model.config = config.model_copy(update={"fused_field": fused})
        frames[fused] = model.render_frames(camera, cond, bg, dense=dense)
    assert frames["off"].opacity.max() > 0.5
    for fused in ("mlp", "all"):
        torch.testing.assert_close(frames[fused].images, frames["off"].images, atol=1e-5, rtol=0)
        torch.testing.assert_close(frames[fused].opacity, frames["off"].opacity, atol=1e-5, rtol=0)
print("ok")
"""


def test_interpreter_matches_forward(interpreted):
    interpreted(INTERPRETED)


COMPILE = """
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from syncanim.kernels.backend import load_triton_module

mod = load_triton_module("field_kernels")
for kernel in (mod._field_fwd_kernel, mod._field_mlp_kernel):
    names = kernel.arg_names
    const = dict(LEVELS=12, F=2, ENC=72, ENC_P=128, A_P=32, E_P=16, H_P=64, G_P=16, HASH_MASK=(1 << 17) - 1,
                 PRECISION=sys.argv[1], SCATTER=True, REGIONS=sys.argv[2] == "regions", BLOCK=64)
    const = {n: v for n, v in const.items() if n in names}
    kinds = {"ray_ptr": "*i32", "rframe_ptr": "*i32", "meta_ptr": "*i32", "pos_ptr": "*i64", "valid_ptr": "*u8"}
    sig = {n: "constexpr" if n in const else kinds.get(n, "*fp32") if n.endswith("_ptr") else "i32" for n in names}
    compiled = triton.compile(ASTSource(fn=kernel, signature=sig,
                                        constexprs={(names.index(n),): v for n, v in const.items()}),
                              target=GPUTarget("cuda", 90, 32))
    assert "cubin" in compiled.asm
print("ok")
"""


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed")
@pytest.mark.parametrize("precision,regions", [("ieee", "regions"), ("tf32", "regions"), ("tf32", "none")])
def test_kernel_compiles_for_hopper(precision, regions):
    """Triton's compiler takes the kernel to an sm_90 binary without a GPU (the interpreter checks the arithmetic,
    not what the compiler accepts), with the region boxes and without them."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(COMPILE), precision, regions], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("ok")


def test_packing_keeps_every_weight_once():
    """The padded blocks hold each weight of the layers exactly once (sums agree) and zeros elsewhere."""
    spec = grid_spec(levels=3, features=2, base_res=4, max_res=32, log2_table=8)
    f = HeadField(spec, 20, 3, 4, hidden=40, geo_dim=7)
    p = pack_field(spec, (f.audio_gate, f.expr_gate), list(f.density_net[::2]), list(f.color_net[::2]))
    w = p.weights
    assert w["wga"].shape == (32, 32) and w["w1e"].shape == (32, 64) and w["w3"].shape == (64, 16)
    layers = [f.audio_gate, f.expr_gate, *f.density_net[::2], *f.color_net[::2]]
    total = sum(float(layer.weight.detach().abs().sum() + layer.bias.detach().abs().sum()) for layer in layers)
    packed = sum(float(t.abs().sum()) for t in w.values()) + float(p.latent_weight.abs().sum() + p.color_bias.abs().sum())
    assert packed == pytest.approx(total, rel=1e-6)
    assert float(w["wc1g"][0].abs().sum()) == 0  # the density column is not a colour input


def test_packed_weights_follow_training():
    spec = grid_spec(levels=2, features=2, base_res=4, max_res=16, log2_table=8)
    f = HeadField(spec, 16, 3, 4, hidden=16, geo_dim=3)
    first = f.packed()
    assert f.packed() is first  # unchanged weights: packed once
    with torch.no_grad():
        f.density_net[2].weight.add_(1.0)  # an optimiser step changes weights in place
    assert f.packed() is not first
    assert torch.equal(f.packed().weights["w2"][:16, :16], f.density_net[2].weight.t())


def test_points_reference_is_forward_on_gathered_inputs():
    spec = grid_spec(levels=2, features=2, base_res=4, max_res=16, log2_table=8)
    f = HeadField(spec, 16, 3, 4, hidden=16, geo_dim=3, backend="torch")
    x, ray = torch.rand(50, 3) * 2 - 1, torch.randint(0, 5, (50,))
    dirs, frame = torch.nn.functional.normalize(torch.randn(5, 3), dim=1), torch.tensor([0, 1, 1, 0, 1])
    a, e, lat = torch.randn(2, 16), torch.rand(2, 3), torch.randn(2, 4)
    with torch.no_grad():
        sigma, rgb = f.points(x, ray, dirs, frame, a, e, lat)
        want = f(x, dirs[ray], a[frame[ray]], e[frame[ray]], lat[frame[ray]])
    assert torch.equal(sigma, want["sigma"]) and torch.equal(rgb, want["rgb"])
    # with regions, the points outside the speech box read the rest mouth vector instead of their frame's, and
    # the points outside the expression box the rest expressions
    from syncanim.kernels.field import Regions

    top, left = torch.tensor([[-1.0, 0.0, -1.0], [1.0, 1.0, 1.0]]), torch.tensor([[-1.0, -1.0, -1.0], [0.0, 1.0, 1.0]])
    rest, typical = torch.randn(16), torch.rand(3)
    with torch.no_grad():
        sigma, rgb = f.points(x, ray, dirs, frame, a, e, lat, regions=Regions(top, rest, left, typical))
        mouth = torch.where((x[:, 1] < 0)[:, None], rest, a[frame[ray]])
        faces = torch.where((x[:, 0] > 0)[:, None], typical, e[frame[ray]])
        want = f(x, dirs[ray], mouth, faces, lat[frame[ray]])
    assert torch.equal(sigma, want["sigma"]) and torch.equal(rgb, want["rgb"])
    assert (x[:, 1] < 0).any() and (x[:, 1] > 0).any() and (x[:, 0] < 0).any() and (x[:, 0] > 0).any()


@pytest.mark.parametrize("option,match", [({"precision": "fp8"}, "precision"), ({"fused": True}, "fused mode")])
def test_unknown_options_are_refused(option, match):
    f = HeadField(grid_spec(levels=2, features=2, base_res=4, max_res=16, log2_table=8), 8, 3, 4)
    with pytest.raises(ValueError, match=match), torch.no_grad():
        f.points(torch.zeros(1, 3), torch.zeros(1, dtype=torch.long), torch.ones(1, 3), None, torch.zeros(1, 8),
                 torch.zeros(1, 3), torch.zeros(1, 4), **option)


def test_saved_switch_reads_as_a_mode():
    """Models saved when ``fused_field`` was a switch load as the modes it meant."""
    from syncanim.model.head import NerfHeadConfig

    assert NerfHeadConfig(fused_field=True).fused_field == "all"
    assert NerfHeadConfig(fused_field=False).fused_field == "off"
    assert NerfHeadConfig(fused_field="mlp").fused_field == "mlp"


@pytest.mark.gpu
@pytest.mark.parametrize("precision,tol", [("ieee", 2e-5), ("tf32", 2e-2)])
def test_gpu_fused_matches_forward(precision, tol):
    """The compiled kernel at the head's default sizes (12 levels, 2**16 rows) on 200k points of 3 frames and of
    one; TF32 products round inputs to 10 bits."""
    ns: dict = {}
    exec(CASES, ns)
    f = ns["field"](grid_spec(), 32, 3, 4, 64, 15)
    for frames in (3, 1):
        ns["check"](f, 200_000, 20_000, frames, "cuda", tol, precision)
        ns["check"](f, 200_000, 20_000, frames, "cuda", tol, precision, regions=ns["regions"](32, 3))


def test_auto_falls_back_when_the_kernel_fails(monkeypatch, caplog):
    """Under ``auto``, a fused kernel that does not compile here leaves rendering to the per-op path (once, with a
    warning); named explicitly, its error is raised."""
    import syncanim.model.field as field_module

    spec = grid_spec(levels=2, features=2, base_res=4, max_res=16, log2_table=8)
    f = HeadField(spec, 16, 3, 4, hidden=16, geo_dim=3)
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("CompilationError at 3:4\nmore")

    monkeypatch.setattr(field_module, "resolve_backend", lambda *a, **k: "triton")
    monkeypatch.setattr(field_module, "field_points_triton", broken)
    args = (torch.rand(20, 3) * 2 - 1, torch.randint(0, 4, (20,)), torch.nn.functional.normalize(torch.randn(4, 3)),
            None, torch.randn(1, 16), torch.rand(1, 3), torch.randn(1, 4))
    with torch.no_grad(), caplog.at_level("WARNING"):
        sigma, _ = f.points(*args)
        f.points(*args)
        want = f(args[0], args[2][args[1]], *args[4:])["sigma"]
    assert torch.equal(sigma, want) and len(calls) == 1
    assert f.fused_error == "RuntimeError: CompilationError at 3:4"
    assert sum("fused field kernel cannot run here" in r.message for r in caplog.records) == 1
    f.backend, f.fused_error = "triton", None
    with pytest.raises(RuntimeError, match="CompilationError"), torch.no_grad():
        f.points(*args)
