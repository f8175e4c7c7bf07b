"""Where a trained model's frame time goes, and what the render options buy: a sweep on the GPU.

    python benchmarks/render_speed.py MODEL --out DIR [--frames 48] [--runs 30]

For ``MODEL`` (a ``syncanim train`` folder) over ``--frames`` poses of its training clip, with mouth codes
of unit spread (the subject's own range of mouth shapes): per variant of the head's render options
(``march_parts``, ``samples``, precision), milliseconds per 512 px frame of the head over the plate with the
copy to the host (batch 1), the field samples evaluated per frame, and the PSNR of its frames against the
reference (the model's own options, the per-op kernels, fp32). Then head + torso per frame, and a profile of the reference and
of the fastest variant (the CUDA kernels by total time). Writes DIR/render_speed.json and
DIR/render_profile_*.txt. Runs on CPU too (slowly: use few frames).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from syncanim.bench.timing import environment, time_calls
from syncanim.device import resolve_precision
from syncanim.model.camera import Camera
from syncanim.model.conditioning import FrameBatch
from syncanim.model.frames import to_uint8
from syncanim.stream.avatar import load_avatar
from syncanim.stream.draw import render_batch
from syncanim.stream.poses import ReplayTrack

VARIANTS = [  # name, model config overrides, precision
    ("reference", {"fused_field": "off"}, "fp32"),
    ("fused", {"fused_field": "all"}, "fp32"),
    ("fused-tf32", {"fused_field": "all", "field_precision": "tf32"}, "fp32"),
    ("fused-render8", {"fused_field": "all", "render_samples": 8}, "fp32"),
    ("fused-render8-tf32", {"fused_field": "all", "render_samples": 8, "field_precision": "tf32"}, "fp32"),
    ("mlp", {"fused_field": "mlp"}, "fp32"),
    ("mlp-tf32", {"fused_field": "mlp", "field_precision": "tf32"}, "fp32"),
    ("march1", {"fused_field": "off", "march_parts": 1}, "fp32"),
    ("march4", {"fused_field": "off", "march_parts": 4}, "fp32"),
    ("bf16", {"fused_field": "off"}, "bf16"),
    ("render8", {"fused_field": "off", "render_samples": 8}, "fp32"),
    ("grow0", {"fused_field": "off", "render_occupancy_grow": 0}, "fp32"),
    ("grow1", {"fused_field": "off", "render_occupancy_grow": 1}, "fp32"),
]

STATIC_VARIANTS = [  # name, model config overrides of the static draw (the model's own fused mode)
    ("own", {}),
    ("march3", {"march_parts": 3}),
    ("march4", {"march_parts": 4}),
    ("render6", {"render_samples": 6}),
    ("render7", {"render_samples": 7}),
    ("render5", {"render_samples": 5}),
    ("grow1", {"render_occupancy_grow": 1}),
    ("grow0", {"render_occupancy_grow": 0}),
    ("render6-grow1", {"render_samples": 6, "render_occupancy_grow": 1}),
    ("render6-grow0", {"render_samples": 6, "render_occupancy_grow": 0}),
    ("torso", {}),  # the model's own options, over the torso drawn for each pose instead of the plate
    ("render6-torso", {"render_samples": 6}),
    ("render6-torso-ref", {"render_samples": 6}),  # the torso through its plain-torch reference, not the fused kernel
    ("render6-grow0-torso", {"render_samples": 6, "render_occupancy_grow": 0}),  # gpu-default's render settings
]


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of uint8 frames [N, H, W, 3] over all of them; 99 when identical."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def held_out_scorer(model, info, model_dir: Path, device: torch.device, count: int):
    """A function of the precision -> the mean PSNR (dB) of ``count`` held-out frames of the model's dataset,
    the head rendered over each frame's own background from its own pose, speech and expressions."""
    from syncanim.data.dataset import load_head_data
    from syncanim.model.folder import dataset_path
    from syncanim.model.head import EXPRESSIONS
    from syncanim.render.validation import render_split

    data = load_head_data(dataset_path(model_dir, info), EXPRESSIONS)
    ids = np.linspace(data.num_train, data.num_frames - 1, count).round().astype(int).tolist()
    truth = data.frames[ids]

    def score(precision: str) -> float:
        rendered, _ = render_split(model, data, ids, device, 1 << 20, 4, precision=precision)
        return psnr8(rendered, truth)

    return score


class SampleCounter:
    """Counts the points the head's field evaluates (its ``points``, wrapped)."""

    def __init__(self, field: torch.nn.Module) -> None:
        self.points = 0
        inner = field.points

        def points(x, *args, **kwargs):
            self.points += int(x.shape[0])
            return inner(x, *args, **kwargs)

        field.points = points


def profile_calls(call, count: int, device: torch.device, path: Path) -> None:
    """Profile ``call(i)`` for up to 10 frames; write the table of operations by total device time to ``path``."""
    acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA]
                                                    if device.type == "cuda" else [])
    with torch.profiler.profile(activities=acts) as prof, torch.no_grad():
        for i in range(min(10, count)):
            call(i)
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    path.write_text(prof.key_averages().table(sort_by=key, row_limit=30))


def static_draws(avatar, cams, cond, plates, rot, trans, ref_frames, device, runs: int,
                 profile_dir: Path | None = None) -> dict:
    """The static draw (render and live's on CUDA: CUDA graphs) of the same frames, batch 1 with the copy: the head
    over the plate (as the variants), then head + torso: in fp32, with TF32 matrix products, and with the fused field
    kernels (tf32): the whole field, and everything after the encoder. With ``profile_dir``, the draws of the model's
    own fused mode are profiled there too (``render_profile_static_*.txt``)."""
    from syncanim.stream.graphs import StaticDraw

    model, info = avatar.model, avatar.info
    intr = (info.focal, info.cx, info.cy)
    clip = Camera.from_numpy(avatar.replay.rotation, avatar.replay.translation, *intr, info.image_size, device)
    rects = model.head_rects(clip)
    unders = [to_uint8(p).cpu().numpy() for p in plates]
    out: dict = {}
    k = [0]
    base = model.config
    for tf32, fused in ((False, "off"), (True, "off"), (False, "all"), (False, "mlp")):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        model.config = base.model_copy(update={"fused_field": fused, "field_precision": "tf32"})
        tag = ("-tf32" if tf32 else "") + {"off": "", "all": "-fused-tf32", "mlp": "-mlp-tf32"}[fused]
        for name, torso in ((f"head{tag}", None), (f"head+torso{tag}", avatar.torso)):
            if name.startswith("head+torso") and torso is None:
                continue
            drawer = StaticDraw(model, torso, intr, info.image_size, "fp32", rects, capture=device.type == "cuda")

            def call(i: int, drawer: StaticDraw = drawer) -> np.ndarray:
                below = None if drawer.torso is not None else unders[i]
                with torch.no_grad():
                    return drawer.draw(cams[i], cond[i:i + 1], below)

            frames = [call(i)[0] for i in range(len(cams))]

            def timed(call=call) -> None:
                i = k[0] % len(cams)
                k[0] += 1
                call(i)

            t = time_calls(timed, device, warmup=5, runs=runs)
            if profile_dir is not None and fused == base.fused_field and not tf32:  # the device's kernels, by time
                profile_calls(call, len(cams), device, profile_dir / f"render_profile_static_{name}.txt")
                eager = StaticDraw(model, torso, intr, info.image_size, "fp32", rects, capture=False)
                profile_calls(lambda i, eager=eager: call(i, eager), len(cams), device,
                              profile_dir / f"render_profile_static_eager_{name}.txt")
            row = {"ms_per_frame_with_copy": t["median_ms"], "p95_ms": t["p95_ms"], "rect": list(drawer.rect),
                   "capacity": drawer.capacity(1), "recaptures": drawer.recaptures}
            if torso is None:
                row["psnr_vs_reference_db"] = round(psnr8(np.stack(frames), np.stack(ref_frames)), 2)
            out[name] = row
            vs = f"  {row['psnr_vs_reference_db']:.2f} dB vs reference" if torso is None else ""
            print(f"static {name:16s} {t['median_ms']:7.2f} ms  rect {drawer.rect}  capacity {drawer.capacity(1)}{vs}",
                  flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model.config = base
    return out


def static_variants(avatar, cams, cond, plates, device, runs: int, names: list[str], batch: int, truth) -> dict:
    """The static draw of the head over the plate (the model's own fused mode and precision; the ``*torso``
    variants: over the torso drawn for each pose) per entry of :data:`STATIC_VARIANTS` in ``names``: milliseconds
    per frame with the copy (batch 1, and ``batch`` frames a call), the field points room is kept for per frame,
    the PSNR of its frames against the model's own static draw (head over the plate only; over the torso, the
    ``*-ref`` variant's frames against the fused torso kernel's before it), and with ``truth``
    (:func:`held_out_scorer`) the held-out PSNR."""
    from syncanim.stream.graphs import StaticDraw

    model, info = avatar.model, avatar.info
    intr = (info.focal, info.cx, info.cy)
    clip = Camera.from_numpy(avatar.replay.rotation, avatar.replay.translation, *intr, info.image_size, device)
    rects = model.head_rects(clip)
    unders = np.concatenate([to_uint8(p).cpu().numpy() for p in plates])
    base = model.config
    out: dict = {}
    own: np.ndarray | None = None
    over_torso: np.ndarray | None = None  # the last torso variant's frames
    k = [0]
    for name, over in [v for v in STATIC_VARIANTS if v[0] == "own" or v[0] in names]:
        model.config = base.model_copy(update=over)
        torso = avatar.torso if "torso" in name else None
        if torso is not None:
            torso.backend = "ref" if name.endswith("-ref") else "auto"
        drawer = StaticDraw(model, torso, intr, info.image_size, "fp32", rects, capture=device.type == "cuda")

        def call(i: int, b: int = 1, drawer: StaticDraw = drawer) -> np.ndarray:
            rows = [(i + j) % len(cams) for j in range(b)]
            camera = Camera.from_numpy(np.concatenate([cams[r].poses_numpy()[0] for r in rows]),
                                       np.concatenate([cams[r].poses_numpy()[1] for r in rows]),
                                       info.focal, info.cx, info.cy, info.image_size, device)
            with torch.no_grad():
                return drawer.draw(camera, cond[torch.tensor(rows, device=device)],
                                   None if drawer.torso is not None else unders[rows])

        frames = np.concatenate([call(i) for i in range(len(cams))])
        own = frames if own is None else own
        row: dict = {"overrides": over}
        for b in sorted({1, batch}):
            def timed(b: int = b, call=call) -> None:
                k[0] += b
                call(k[0] % len(cams), b)

            call(0, b)  # room and graphs for this batch size
            t = time_calls(timed, device, warmup=3, runs=runs)
            row[f"batch{b}_ms_per_frame_with_copy"] = round(t["median_ms"] / b, 3)
            row[f"batch{b}_p95_ms_per_call"] = round(t["p95_ms"], 3)
        row["points_per_frame_room"] = [round(n) for n in drawer.per_frame or ()]
        row["psnr_vs_own_db"] = None if name == "own" or torso is not None else round(psnr8(frames, own), 2)
        if torso is not None:
            if name.endswith("-ref") and over_torso is not None:
                row["max_abs_diff_vs_fused_torso"] = int(np.abs(frames.astype(int) - over_torso.astype(int)).max())
            over_torso = frames
            torso.backend = "auto"
        if truth is not None:
            row["val_psnr_db"] = round(truth("fp32"), 3)
        out[name] = row
        print(f"static {name:28s} " + "  ".join(f"b{b} {row[f'batch{b}_ms_per_frame_with_copy']:6.2f} ms/frame"
                                               for b in sorted({1, batch}))
              + f"  room {row['points_per_frame_room']}"
              + ("" if row["psnr_vs_own_db"] is None else f"  {row['psnr_vs_own_db']:.2f} dB vs own")
              + (f"  max |diff| {row['max_abs_diff_vs_fused_torso']} vs fused torso"
                 if "max_abs_diff_vs_fused_torso" in row else "")
              + ("" if truth is None else f"  val {row['val_psnr_db']:.3f} dB"), flush=True)
    model.config = base
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--truth", type=int, default=0, metavar="N",
                    help="also score N held-out frames of the model's dataset against the truth, per variant")
    ap.add_argument("--variants", nargs="+", default=[v[0] for v in VARIANTS], choices=[v[0] for v in VARIANTS],
                    help="the variants to run (reference always first)")
    ap.add_argument("--static-variants", nargs="*", default=None, choices=[v[0] for v in STATIC_VARIANTS],
                    help="only time these options of the static draw (the model's own first), then stop")
    ap.add_argument("--static-batch", type=int, default=16, help="frames a call in --static-variants (and 1)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    avatar = load_avatar(args.model, device, syncer=False, torso=True)
    model, info, torso = avatar.model, avatar.info, avatar.torso
    model.eval()
    track = ReplayTrack(avatar.replay, static=False, join=12)
    idx = np.linspace(0, len(avatar.replay.rotation) - 1, args.frames).round().astype(np.int64)
    rot, trans, expr = track.poses(idx)
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(len(idx), model.code_dim, generator=g).to(device)  # unit spread per component
    with torch.no_grad():
        cond = model.condition(FrameBatch(torch.from_numpy(expr).to(device), codes=codes))
    cams = [Camera.from_numpy(rot[i:i + 1], trans[i:i + 1], info.focal, info.cx, info.cy, info.image_size, device)
            for i in range(len(idx))]
    with torch.no_grad():
        plates = [torso.render(torso.codes(rot[i:i + 1], trans[i:i + 1])) for i in range(len(idx))] if torso else \
            [torch.full((1, info.image_size, info.image_size, 3), 0.5, device=device)] * len(idx)
    base = model.config
    truth = held_out_scorer(model, info, args.model, device, args.truth) if args.truth else None
    if args.static_variants is not None:
        report = {"benchmark": "render_speed static variants", "environment": environment(), "model": args.model.name,
                  "image_size": info.image_size, "frames": len(idx), "config": base.model_dump(exclude={"mouth"}),
                  "static_variants": static_variants(avatar, cams, cond, plates, device, args.runs,
                                                     args.static_variants, args.static_batch, truth)}
        (args.out / "render_speed_static.json").write_text(json.dumps(report, indent=1))
        return 0
    report: dict = {"benchmark": "render_speed", "environment": environment(), "model": args.model.name,
                    "image_size": info.image_size, "frames": len(idx), "config": base.model_dump(exclude={"mouth"}),
                    "variants": {}}
    ref_frames: list[np.ndarray] = []
    counter = SampleCounter(model.field)
    k = [0]

    def frame_call(i: int, precision: str) -> torch.Tensor:
        return to_uint8(render_batch(model, cams[i], cond[i:i + 1], plates[i], precision=precision,
                                     chunk=1 << 20)).cpu()

    for name, over, prec in [v for v in VARIANTS if v[0] == "reference" or v[0] in args.variants]:
        model.config = base.model_copy(update=over)
        precision = resolve_precision(device, prec)
        counter.points = 0
        with torch.no_grad():
            frames = [frame_call(i, precision).numpy()[0] for i in range(len(idx))]
        points = counter.points / len(idx)
        if not ref_frames:
            ref_frames = frames

        def call(precision: str = precision) -> None:
            i = k[0] % len(idx)
            k[0] += 1
            with torch.no_grad():
                frame_call(i, precision)

        t = time_calls(call, device, warmup=5, runs=args.runs)
        q = psnr8(np.stack(frames), np.stack(ref_frames))
        if truth is not None:
            over_psnr = truth(precision)
        report["variants"][name] = {"overrides": over, "precision": precision, "ms_per_frame_with_copy": t["median_ms"],
                                    "p95_ms": t["p95_ms"], "points_per_frame": round(points),
                                    "psnr_vs_reference_db": round(q, 2) if name != "reference" else None,
                                    "val_psnr_db": round(over_psnr, 3) if truth is not None else None}
        print(f"{name:18s} {t['median_ms']:7.2f} ms  {points / 1e6:5.2f} M points  "
              f"{'' if name == 'reference' else f'{q:6.2f} dB vs reference'}"
              f"{'' if truth is None else f'  val {over_psnr:.3f} dB'}", flush=True)
    model.config = base
    report["static"] = static_draws(avatar, cams, cond, plates, rot, trans, ref_frames, device, args.runs, args.out)
    if torso is not None:
        def person() -> None:
            i = k[0] % len(idx)
            k[0] += 1
            with torch.no_grad():
                p = torso.render(torso.codes(rot[i:i + 1], trans[i:i + 1]))
                to_uint8(render_batch(model, cams[i], cond[i:i + 1], p, precision="fp32", chunk=1 << 20)).cpu()

        def torso_only() -> None:
            i = k[0] % len(idx)
            k[0] += 1
            with torch.no_grad():
                torso.render(torso.codes(rot[i:i + 1], trans[i:i + 1]))

        report["head_torso_ms_per_frame_with_copy"] = time_calls(person, device, warmup=5, runs=args.runs)["median_ms"]
        report["torso_ms_per_frame"] = time_calls(torso_only, device, warmup=5, runs=args.runs)["median_ms"]
        print(f"head + torso {report['head_torso_ms_per_frame_with_copy']:.2f} ms, torso alone "
              f"{report['torso_ms_per_frame']:.2f} ms", flush=True)
    fastest = min((v for v in report["variants"].items() if (v[1]["psnr_vs_reference_db"] or 99) >= 40),
                  key=lambda v: v[1]["ms_per_frame_with_copy"])[0]
    report["fastest_within_40db"] = fastest
    for name in ("reference", fastest):
        over, prec = next((o, p) for n, o, p in VARIANTS if n == name)
        model.config = base.model_copy(update=over)
        precision = resolve_precision(device, prec)
        profile_calls(lambda i, precision=precision: frame_call(i, precision), len(idx), device,
                      args.out / f"render_profile_{name}.txt")
    model.config = base
    (args.out / "render_speed.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
