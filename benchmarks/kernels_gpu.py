"""GPU micro-benchmark of the fused kernels: fast paths against their references, in one process.

    python benchmarks/kernels_gpu.py [--points 131072] [--rays 65536 --samples 64] [--iters 50]
                                     [--json benchmarks/results/kernels_gpu.json]

Ops: ``triplane_encode`` (backends ref, torch, triton) and ``composite_rays`` (ref, triton). For each,
forward and forward+backward are timed with CUDA events after a warm-up (which also compiles the Triton
kernels); the report gives median and p90 in milliseconds, the largest difference from the reference
(forward output and gradients), the GPU name and the torch, CUDA and Triton versions, as JSON.

``field_points`` (``--field-points``, 0 to skip): the head's field at a frame's points as rendering runs it,
the per-op path (its reference) against the fused kernels (``--field-modes``: ``all``, the whole field in one;
``mlp``, the encoder's own kernel and then everything after it in one) for each precision and launch setting
(``--field-blocks`` points per program x ``--field-warps``), a random field of the head's default sizes.

``encoder_forward_launch`` (``--encoder-points``): the tri-plane encoder's forward kernel per launch setting.

``torso_frames`` (``--torso-frames``, 0 to skip): whole torso frames of a random field of the default shape, the
plain-torch reference against the fused kernel per precision and launch setting.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from itertools import product
from pathlib import Path


def _timeit(fn, warmup: int, iters: int, device: str) -> dict:
    import torch

    cuda = device == "cuda"
    for _ in range(warmup):
        fn()
    if cuda:
        torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:  # --device cpu: a smoke test of this script, wall clock
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[min(len(times) - 1, int(0.9 * len(times)))],
            "min_ms": times[0], "iters": iters}


def bench_hashgrid(args) -> dict:
    import torch

    from syncanim.kernels import grid_spec, triplane_encode

    spec = grid_spec(levels=args.levels, features=args.features, base_res=args.base_res, max_res=args.max_res,
                     log2_table=args.log2_table)
    gen = torch.Generator(device=args.device).manual_seed(0)
    coords = torch.rand(args.points, 3, device=args.device, generator=gen) * 2 - 1
    tables = (torch.randn(3, spec.rows, spec.features, device=args.device, generator=gen) * 0.1).requires_grad_()
    cot = torch.randn(args.points, spec.out_features, device=args.device, generator=gen)

    def run(backend, backward):
        out = triplane_encode(coords, tables, spec, backend=backend)
        if backward:
            (g,) = torch.autograd.grad(out, tables, cot)
            return out, g
        return out, None

    ref_out, ref_grad = run("ref", True)
    result = {"points": args.points, "levels": spec.levels, "features": spec.features,
              "log2_table": spec.log2_table, "resolutions": list(spec.resolutions),
              "dense_levels": sum(spec.dense), "backends": {}}
    for backend in args.hashgrid_backends:
        out, grad = run(backend, True)
        entry = {
            "max_abs_diff_forward": (out - ref_out).abs().max().item() if out.numel() else 0.0,
            "max_abs_diff_grad": (grad - ref_grad).abs().max().item(),
        }
        with torch.no_grad():
            entry["forward"] = _timeit(lambda b=backend: run(b, False), args.warmup, args.iters, args.device)
        entry["forward_backward"] = _timeit(lambda b=backend: run(b, True), args.warmup, args.iters, args.device)
        result["backends"][backend] = entry
        print(f"triplane_encode {backend:6s} fwd {entry['forward']['median_ms']:8.3f} ms  fwd+bwd "
              f"{entry['forward_backward']['median_ms']:8.3f} ms  max|d| fwd {entry['max_abs_diff_forward']:.2e}"
              f" grad {entry['max_abs_diff_grad']:.2e}", file=sys.stderr)
    return result


def bench_composite(args) -> dict:
    import torch

    from syncanim.kernels import composite_rays

    r, s = args.rays, args.samples
    gen = torch.Generator(device=args.device).manual_seed(1)
    sigma = (torch.rand(r, s, device=args.device, generator=gen) * 4).requires_grad_()
    rgb = torch.rand(r, s, 3, device=args.device, generator=gen).requires_grad_()
    deltas = torch.rand(r, s, device=args.device, generator=gen) * 0.05 + 0.001
    t = torch.cumsum(deltas, 1)
    bg = torch.rand(r, 3, device=args.device, generator=gen).requires_grad_()
    leaves = (sigma, rgb, bg)

    cots = [torch.randn(shape, device=args.device, generator=gen) for shape in ((r, 3), (r,), (r,), (r, s))]

    def run(backend, backward):
        outs = composite_rays(sigma, rgb, deltas, t, bg, backend=backend)
        if backward:
            return outs, torch.autograd.grad(outs, leaves, cots)
        return outs, None

    ref_outs, ref_grads = run("ref", True)
    result = {"rays": r, "samples": s, "backends": {}}
    for backend in args.composite_backends:
        outs, grads = run(backend, True)
        entry = {
            "max_abs_diff_forward": max((a - b).abs().max().item() for a, b in zip(outs, ref_outs, strict=True)),
            "max_abs_diff_grad": max((a - b).abs().max().item() for a, b in zip(grads, ref_grads, strict=True)),
        }
        with torch.no_grad():
            entry["forward"] = _timeit(lambda b=backend: run(b, False), args.warmup, args.iters, args.device)
        entry["forward_backward"] = _timeit(lambda b=backend: run(b, True), args.warmup, args.iters, args.device)
        result["backends"][backend] = entry
        print(f"composite_rays  {backend:6s} fwd {entry['forward']['median_ms']:8.3f} ms  fwd+bwd "
              f"{entry['forward_backward']['median_ms']:8.3f} ms  max|d| fwd {entry['max_abs_diff_forward']:.2e}"
              f" grad {entry['max_abs_diff_grad']:.2e}", file=sys.stderr)
    return result


def bench_field(args) -> dict:
    import torch

    from syncanim.kernels import grid_spec
    from syncanim.kernels.field import field_points_triton
    from syncanim.model.field import HeadField

    torch.manual_seed(0)
    f = HeadField(grid_spec(), 32, 3, 4, hidden=64, geo_dim=15)
    with torch.no_grad():  # weights of a trained size, not the initial 1e-4 tables
        f.tables.normal_(0, 0.5)
        for p in f.parameters():
            if p is not f.tables:
                p.add_(torch.randn_like(p) * 0.1)
    f = f.to(args.device).eval()
    n, rays = args.field_points, max(1, args.field_points // 4)
    gen = torch.Generator(device=args.device).manual_seed(0)
    x = torch.rand(n, 3, device=args.device, generator=gen) * 2 - 1
    ray = torch.sort(torch.randint(0, rays, (n,), device=args.device, generator=gen)).values  # points ray by ray
    dirs = torch.nn.functional.normalize(torch.randn(rays, 3, device=args.device, generator=gen), dim=1)
    cond = (torch.randn(1, 32, device=args.device, generator=gen), torch.rand(1, 3, device=args.device, generator=gen),
            torch.randn(1, 4, device=args.device, generator=gen))
    result: dict = {"points": n, "rays": rays, "variants": {}}
    with torch.no_grad():
        want = f.points(x, ray, dirs, None, *cond, fused="off")
        result["per_op"] = _timeit(lambda: f.points(x, ray, dirs, None, *cond, fused="off"), args.warmup, args.iters,
                                   args.device)
        result["encoder"] = _timeit(lambda: f.encode(x), args.warmup, args.iters, args.device)
        print(f"field_points    per-op            {result['per_op']['median_ms']:8.3f} ms (the encoder alone "
              f"{result['encoder']['median_ms']:.3f} ms)", file=sys.stderr)
        packed = f.packed()
        for mode, precision, block, warps in product(args.field_modes, args.field_precisions, args.field_blocks,
                                                     args.field_warps):
            name = f"{mode}-{precision}-b{block}-w{warps}"
            launch = {"block": block, "num_warps": warps}

            def call(precision=precision, launch=launch, mode=mode):  # mlp: the encoder's kernel first
                return field_points_triton(packed, f.spec, f.tables, x, ray, dirs, None, *cond, precision,
                                           encoding=f.encode(x) if mode == "mlp" else None, launch=launch)

            try:
                got = call()
                entry = {**_timeit(call, args.warmup, args.iters, args.device),
                         "max_abs_diff_sigma": float((got[0] - want[0]).abs().max()),
                         "max_abs_diff_rgb": float((got[1] - want[1]).abs().max())}
            except Exception as e:  # a setting that does not compile (registers, shared memory)
                entry = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:200]}
            result["variants"][name] = entry
            print(f"field_points    fused {name:12s} " + (f"{entry['median_ms']:8.3f} ms  max|d| rgb "
                  f"{entry['max_abs_diff_rgb']:.1e}" if "error" not in entry else entry["error"]),
                  file=sys.stderr)
    return result


def bench_encoder_launch(args) -> dict:
    """The tri-plane encoder's forward kernel (rendering: no gradients) per launch setting, over a frame's worth of
    points laid out as rendering reads them (rays of a pixel grid, a few samples each around a surface, ray by
    ray), the head's default grid (gpu-default's 2^17-row tables, 2048 cells at the finest level)."""
    import torch

    from syncanim.kernels import grid_spec
    from syncanim.kernels.backend import load_triton_module
    from syncanim.kernels.hashgrid import _level_meta

    spec = grid_spec(levels=12, features=2, base_res=16, max_res=2048, log2_table=17)
    g = torch.Generator(device=args.device).manual_seed(0)
    tables = (torch.randn(3, spec.rows, spec.features, device=args.device, generator=g) * 0.5).contiguous()
    side = int((args.encoder_points / 6) ** 0.5)
    u = torch.linspace(-0.6, 0.6, side, device=args.device)
    y, x = torch.meshgrid(u, u, indexing="ij")
    z = 0.2 * torch.cos(2 * x) * torch.cos(2 * y)  # a surface the rays meet
    t = torch.linspace(-0.05, 0.05, 6, device=args.device)
    coords = torch.stack([x[..., None].expand(-1, -1, 6), y[..., None].expand(-1, -1, 6), z[..., None] + t],
                         -1).reshape(-1, 3).contiguous()
    mod = load_triton_module("hashgrid_kernels")
    meta = _level_meta(spec, coords.device)

    def run(block, warps):
        return mod.triplane_forward(coords, tables, meta, spec.levels, spec.features, spec.rows, spec.log2_table,
                                    block=block, num_warps=warps)

    want = run(128, 4)
    result: dict = {"points": len(coords), "variants": {}}
    for block, warps in product(args.encoder_blocks, args.encoder_warps):
        name = f"b{block}-w{warps}"
        try:
            got = run(block, warps)
            entry = {**_timeit(lambda block=block, warps=warps: run(block, warps), args.warmup, args.iters,
                               args.device), "max_abs_diff": float((got - want).abs().max())}
        except Exception as e:  # a setting that does not compile
            entry = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:200]}
        result["variants"][name] = entry
        print(f"encoder forward {name:10s} " + (f"{entry['median_ms']:8.3f} ms" if "error" not in entry
                                                else entry["error"]), file=sys.stderr)
    return result


def bench_torso(args) -> dict:
    import torch

    from syncanim.kernels.torso import torso_frames
    from syncanim.model.torso import TorsoArch, TorsoField

    torch.manual_seed(0)
    f = TorsoField(TorsoArch(args.torso_size))  # the default field's shape
    with torch.no_grad():  # a trained field's size of weights
        for p in f.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    f = f.to(args.device).eval()
    a = f.arch
    code = torch.randn(args.torso_frames, 6, device=args.device)
    plate = f.plate.float() / 255
    result: dict = {"frames": args.torso_frames, "size": a.image_size, "variants": {}}
    with torch.no_grad():
        want = f.render(code, chunk=len(code) * a.image_size ** 2, backend="ref")
        result["reference"] = _timeit(lambda: f.render(code, chunk=len(code) * a.image_size ** 2, backend="ref"),
                                      args.warmup, args.iters, args.device)
        print(f"torso_frames    reference         {result['reference']['median_ms']:8.3f} ms", file=sys.stderr)
        packed = f.packed()
        for precision, block, warps in product(args.torso_precisions, args.torso_blocks, args.torso_warps):
            name = f"{precision}-b{block}-w{warps}"

            def call(precision=precision, launch={"block": block, "num_warps": warps}):  # noqa: B006
                return torso_frames(packed, code, plate, a.image_size, a.frequencies, a.features, a.max_offset,
                                    precision, launch)

            try:
                got = call()
                entry = {**_timeit(call, args.warmup, args.iters, args.device),
                         "max_abs_diff": float((got - want).abs().max())}
            except Exception as e:  # a setting that does not compile (registers, shared memory)
                entry = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:200]}
            result["variants"][name] = entry
            print(f"torso_frames    fused {name:16s} " + (f"{entry['median_ms']:8.3f} ms  max|d| "
                  f"{entry['max_abs_diff']:.1e}" if "error" not in entry else entry["error"]), file=sys.stderr)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=131_072)
    ap.add_argument("--levels", type=int, default=12)
    ap.add_argument("--features", type=int, default=2)
    ap.add_argument("--base-res", type=int, default=16)
    ap.add_argument("--max-res", type=int, default=1024)
    ap.add_argument("--log2-table", type=int, default=15)
    ap.add_argument("--rays", type=int, default=65_536)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--hashgrid-backends", nargs="+", default=["ref", "torch", "triton"])
    ap.add_argument("--composite-backends", nargs="+", default=["ref", "triton"])
    ap.add_argument("--field-points", type=int, default=800_000, help="points of field_points (0: skip it)")
    ap.add_argument("--field-modes", nargs="+", default=["all", "mlp"], choices=["all", "mlp"],
                    help="fused kernels: the whole field, or everything after the encoder")
    ap.add_argument("--field-precisions", nargs="+", default=["tf32", "ieee"])
    ap.add_argument("--field-blocks", nargs="+", type=int, default=[32, 64, 128])
    # 64 points x 8 warps hit an illegal memory access in the mlp kernel on an H200 (Triton 3.6), and a CUDA error
    # ends every launch after it in the process: ask for 8 warps on purpose, last
    ap.add_argument("--field-warps", nargs="+", type=int, default=[2, 4])
    ap.add_argument("--torso-frames", type=int, default=16, help="whole torso frames a call (0: skip them)")
    ap.add_argument("--torso-size", type=int, default=512)
    ap.add_argument("--torso-precisions", nargs="+", default=["ieee", "tf32x3", "tf32"])
    ap.add_argument("--torso-blocks", nargs="+", type=int, default=[32, 64, 128])
    ap.add_argument("--torso-warps", nargs="+", type=int, default=[4, 8])
    ap.add_argument("--skip-encoder", action="store_true", help="no triplane_encode / composite_rays timings")
    ap.add_argument("--encoder-points", type=int, default=0,
                    help="points of the encoder's forward launch sweep (0: skip it; a frame: about 600 000)")
    ap.add_argument("--encoder-blocks", nargs="+", type=int, default=[32, 64, 128, 256])
    ap.add_argument("--encoder-warps", nargs="+", type=int, default=[1, 2, 4, 8])
    ap.add_argument("--device", default="cuda", help="'cpu' only smoke-tests this script (wall-clock timing)")
    ap.add_argument("--json", type=Path, default=None, help="write the report here (else to stdout)")
    args = ap.parse_args()

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 1
    import triton

    cuda = args.device == "cuda"
    report = {
        "gpu": torch.cuda.get_device_name(0) if cuda else "none (cpu smoke test)",
        "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1) if cuda else None,
        "device": args.device,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": triton.__version__,
    }
    if not args.skip_encoder:
        report["triplane_encode"] = bench_hashgrid(args)
        report["composite_rays"] = bench_composite(args)
    if args.torso_frames:
        report["torso_frames"] = bench_torso(args)
    if args.encoder_points:
        report["encoder_forward_launch"] = bench_encoder_launch(args)
    if args.field_points:  # last: a launch setting that fails on the device ends the CUDA context
        report["field_points"] = bench_field(args)
    print(f"{report['gpu']}  torch {report['torch']}  CUDA {report['cuda']}  triton {report['triton']}",
          file=sys.stderr)
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
