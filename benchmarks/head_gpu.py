"""Train the head on a prepared dataset, score the validation split and time rendering at full size.

    python benchmarks/head_gpu.py DATASET --out DIR [--preset gpu-default] [--minutes 8] [--set k=v ...]
    python benchmarks/head_gpu.py DATASET --out DIR --model MODEL     (score and time a trained model only)

Writes DIR/head_gpu.json (training wall time, steps, validation PSNR / SSIM over the held-out frames,
render milliseconds per frame and FPS at the dataset's resolution for batches of 1 and 4 frames; ``val_latent``:
the held-out PSNR with the lighting latent of the clip's last training frames instead of the mean of all),
DIR/val_renders.npz (the rendered validation frames as JPEG bytes, for LMD where MediaPipe runs),
DIR/val_stills.png (rendered over ground truth) and the model weights. Figures state the hardware.
``--mouth-variant NAME=key:value,...`` (repeatable) then fits new mouth predictors with those ``[train.mouth]`` settings
and renders the held-out frames with each (the head is trained on measured codes, so one head compares them);
the key ``seed`` (not a setting) picks the refit's random start (0 by default), e.g. ``s1=seed:1``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from syncanim.bench.timing import environment, time_calls
from syncanim.config import build_config, parse_override
from syncanim.data.dataset import load_head_data
from syncanim.device import resolve_device, resolve_precision
from syncanim.face.boxes import face_boxes
from syncanim.face.mouth import mouth_opening
from syncanim.kernels.backend import chosen_backends
from syncanim.metrics.frames import score_frames
from syncanim.metrics.mouth import opening_correlation
from syncanim.model.camera import Camera
from syncanim.model.conditioning import FrameBatch
from syncanim.model.folder import load_model
from syncanim.model.frames import from_uint8, to_uint8
from syncanim.model.head import EXPRESSIONS
from syncanim.motion.mouth_support import mouth_support
from syncanim.render.pipeline import render_batch, render_batch_uint8
from syncanim.render.validation import plate_bound, render_split, split_level
from syncanim.train.trainer import run_train


def render_speed(model, data, idx: list[int], device, cfg, cfg_out_dir: Path) -> dict:
    """Milliseconds per frame of the head render for a batch of frames ``idx`` (and with the copy back):
    the call ``syncanim render`` makes, poses, conditioning and backgrounds already on the device."""
    batch = len(idx)
    camera = Camera.from_numpy(data.rotation[idx], data.translation[idx], data.focal, data.cx, data.cy, data.size,
                               device)
    bg = from_uint8(data.backgrounds[idx], device)
    with torch.no_grad():
        cond = model.condition(FrameBatch(torch.from_numpy(data.expressions[idx]).to(device),
                                          features=torch.from_numpy(data.audio).to(device),
                                          frames=torch.tensor(idx, device=device)))
    precision = resolve_precision(device, cfg.render.precision)

    def call():
        return render_batch(model, camera, cond, bg, precision=precision, chunk=cfg.render.chunk_rays)

    def call_to_cpu():
        return to_uint8(call()).cpu()

    t = time_calls(call, device, warmup=10, runs=50)
    if device.type == "cuda" and batch == 1:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA, torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                call()
            torch.cuda.synchronize()
        table = prof.key_averages().table(sort_by="cuda_time_total", row_limit=30)
        (Path(cfg_out_dir) / "render_profile.txt").write_text(table)
    tc = time_calls(call_to_cpu, device, warmup=5, runs=30)
    rays = int(sum((r[2] - r[0]) * (r[3] - r[1]) for r in model.head_rects(camera)))
    return {"ms_per_frame": t["median_ms"] / batch, "fps": 1000 * batch / t["median_ms"],
            "p90_ms_per_frame": t["p90_ms"] / batch, "rays_per_frame": rays // batch,
            "ms_per_frame_with_copy": tc["median_ms"] / batch, "fps_with_copy": 1000 * batch / tc["median_ms"]}


def save_jpegs(path: Path, frames: np.ndarray, quality: int = 98, **extra: np.ndarray) -> None:
    """Frames [T, H, W, 3] uint8 as JPEG bytes in an npz (small enough to bring back from a GPU machine)."""
    jpegs = [cv2.imencode(".jpg", cv2.cvtColor(r, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
             for r in frames]
    np.savez(path, **extra, **{f"f{i}": j for i, j in enumerate(jpegs)})


def latent_sweep(model, data, ids: list[int], device, cfg, level, gt: np.ndarray, boxes, spans=(1, 25, 100, 400)) -> dict:
    """Held-out PSNR with the lighting latent the mean of the last K training frames' latents, for K in ``spans``,
    instead of the mean of all of them (what renders use). Held-out frames come after the training frames, so this
    says whether a latent of the clip's end would match them better."""
    every = model.latents.data.clone()  # [N, L]
    out = {}
    try:
        for k in spans:
            model.latents.data = every[-k:].clone()
            r, _ = render_split(model, data, ids, device, cfg.render.chunk_rays, 4, precision=cfg.render.precision,
                                level=level)
            s = score_frames(r, gt, boxes).means()
            out[f"last{k}"] = {"psnr": s["psnr"], "psnr_face_box": s["psnr_face"], "ssim": s["ssim"]}
    finally:
        model.latents.data = every
    return out


def render_conditioned(model, info, data, cond, k: np.ndarray, device, cfg, rotation=None, translation=None,
                       torso=None) -> np.ndarray:
    """Frames [T, H, W, 3] uint8 with conditioning ``cond`` (T frames) over dataset frames ``k`` [T]'s
    backgrounds (or over the ``torso``), with their poses (or ``rotation`` [T, 3, 3] / ``translation`` [T, 3])."""
    from syncanim.render.pipeline import render_person

    precision = resolve_precision(device, cfg.render.precision)
    rotation = data.rotation[k] if rotation is None else rotation
    translation = data.translation[k] if translation is None else translation
    frames = []
    for s in range(0, len(k), 8):
        kk = k[s:s + 8]
        camera = Camera.from_numpy(rotation[s:s + 8], translation[s:s + 8], info.focal, info.cx, info.cy,
                                   info.image_size, device)
        if torso is not None:
            frames.append(render_person(model, torso, camera, cond[s:s + 8], precision=precision,
                                        chunk=cfg.render.chunk_rays))
        else:
            frames.append(render_batch_uint8(model, camera, cond[s:s + 8], data.backgrounds[kk], precision=precision,
                                             chunk=cfg.render.chunk_rays))
    return np.concatenate(frames)


def render_speech(model, info, data, features: Path, out: Path, device, cfg, model_dir: Path, compare: bool = True,
                  support: float | None = None) -> dict:
    """Render new speech (precomputed features) over the training frames' backgrounds, in order, with head
    pose, brows and blinks from the model's motion syncer when ``NAME.rms.txt`` (each frame's loudness) is
    beside the features (else the training frames' poses and expressions). ``support``: the mouth support's
    share (:mod:`syncanim.motion.mouth_support`; None: the render settings')."""
    from syncanim.model.conditioning import FrameBatch
    from syncanim.model.folder import ModelLayout, load_torso
    from syncanim.motion.mouth_level import stream_level
    from syncanim.motion.mouth_support import mouth_support
    from syncanim.motion.store import load_motion
    from syncanim.motion.syncer import generate_motion
    from syncanim.render.pipeline import load_features
    from syncanim.stream.poses import expressions_in

    n = int(np.load(features, mmap_mode="r").shape[0])
    k = np.arange(n) % data.num_train
    feats = load_features(features, info, n)
    rms_path = features.with_suffix(".rms.txt")
    syncer = load_motion(ModelLayout(model_dir), info, device)
    torso = load_torso(ModelLayout(model_dir), info, device)
    expr, rot, trans, extra = data.expressions[k], None, None, {}
    if syncer is not None and rms_path.is_file():
        rms = np.loadtxt(rms_path)[:n]
        motion = generate_motion(syncer, torch.from_numpy(feats).to(device), np.pad(rms, (0, n - len(rms))))
        expr = expressions_in(motion.expressions, info.expressions, expr)
        rot, trans = motion.rotation, motion.translation
        extra = {"rotation": rot, "translation": trans, "expressions": motion.expressions}
    expr_t = torch.from_numpy(np.ascontiguousarray(expr, np.float32)).to(device)
    with torch.no_grad():
        codes = model.predictor.predict(torch.from_numpy(feats).to(device))  # [T, C]
        level = stream_level(info.mouth, info.fps, cfg.render.mouth_level)
        if level is not None and rms_path.is_file():  # as a stream levels it (syncanim.motion.mouth_level)
            loud = np.loadtxt(rms_path)[:n]
            plain = model.condition(FrameBatch(expr_t, codes=codes))
            codes = level.apply(codes, np.pad(loud, (0, n - len(loud))))
        held = mouth_support(info.mouth, cfg.render.mouth_support if support is None else support, device)
        if held is not None:
            codes = held.apply(codes)
        if level is not None and rms_path.is_file() and compare:  # the same speech without the level
            save_jpegs(out.with_name(out.stem + "_nolevel.npz"),
                       render_conditioned(model, info, data, plain, k, device, cfg, rot, trans, torso), quality=88,
                       pose_frames=k, **extra)
        cond = model.condition(FrameBatch(expr_t, codes=codes))
    t0 = time.perf_counter()
    frames = render_conditioned(model, info, data, cond, k, device, cfg, rot, trans, torso)
    seconds = time.perf_counter() - t0
    save_jpegs(out, frames, quality=88, pose_frames=k, **extra)
    return {"frames": n, "render_s": seconds, "pose": "audio" if extra else "replay",
            "body": "torso" if torso is not None else "training frames"}


def parse_mouth_variant(spec: str) -> tuple[str, dict]:
    """``NAME=key:value,...`` -> the name and ``[train.mouth]`` settings (``NAME=``: the defaults)."""
    name, _, rest = spec.partition("=")
    kv = [x.split(":", 1) for x in rest.split(",") if x]
    return name, {k: parse_override(f"v={v}")["v"] for k, v in kv}


def refit_predictor(model, data, mouth_cfg, device, dataset: Path, seed: int = 0) -> None:
    """Replace the model's mouth predictor by one of the same shape fitted with ``mouth_cfg`` (``[train.mouth]``)
    from a fresh start seeded with ``seed``: predictor settings compared on one head (trained on measured codes)."""
    import copy

    from syncanim.train.mouth import fit_mouth_predictor, mouth_loss_weight
    from syncanim.train.other_clips import load_other_clips

    basis = model.mouth_basis()
    feats = torch.from_numpy(data.audio).to(device)
    net = copy.deepcopy(model.predictor)
    torch.manual_seed(seed)
    for m in net.modules():
        if m is not net and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    codes = torch.from_numpy(basis.encode(data.landmarks)).float().to(device)
    mc = model.config.mouth
    others = load_other_clips(dataset, mouth_cfg, mc.components, mc.variance, device)
    fit_mouth_predictor(net, feats, codes, data.num_train, mouth_loss_weight(basis, mouth_cfg.opening_weight, device),
                        mouth_cfg, gen, opening=basis.opening_direction(), others=others)
    model.predictor = net.eval()


def predicted_opening(model, data, ids: list[int], device) -> dict:
    """The mouth opening of the codes the predictor reads from the held-out frames' speech (before the mouth level
    and support render applies, crossed lips as closed) against the measured opening: how well the predictor alone
    follows, to set beside what the rendered frames show."""
    basis = model.mouth_basis()
    codes = model.predictor.predict(torch.from_numpy(data.audio).to(device))[ids].cpu().numpy()
    corr, lag = opening_correlation(basis.opening(codes, shown=True), mouth_opening(data.landmarks[ids]))
    return {"correlation": corr, "lag": lag}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--preset", default="gpu-default")
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--model", type=Path, default=None, help="a trained model folder: skip training")
    ap.add_argument("--speech", type=Path, default=None,
                    help="a folder of speech features (NAME.npy from `syncanim features`): render each as new speech")
    ap.add_argument("--support", type=float, nargs="+", default=None,
                    help="render the new speech once per mouth support share given (speech_NAME_sM.npz); "
                         "default: once, with the preset's")
    ap.add_argument("--mouth-variant", action="append", default=[], metavar="NAME=key:value,...",
                    help="after the scoring, fit a new mouth predictor with these [train.mouth] settings (NAME=: the "
                         "defaults) and render the held-out frames with it (val_renders_v_NAME.npz, JPEG quality 92): "
                         "predictor settings compared on the same head")
    ap.add_argument("--lean", action="store_true",
                    help="only the held-out renders (predicted and measured codes) and the new speech: no renders "
                         "without the mouth level, no whole person, no render speed (many models in one call)")
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    sets = ["train.write_assets=false", *args.sets]
    if args.minutes:
        sets.append(f"train.max_minutes={args.minutes}")
    cfg = build_config(args.preset, sets)
    device = resolve_device(cfg.runtime)
    result: dict = {"benchmark": "head_gpu", "environment": environment(), "preset": args.preset, "overrides": sets,
                    "render_precision": cfg.render.precision}

    model_dir = args.model or out / "model"
    if args.model is None:
        t0 = time.perf_counter()
        tr = run_train(args.dataset, model_dir, cfg.model, cfg.train, cfg.runtime,
                       progress=lambda s, d, t, info=None: print(f"{s} {d}/{t} {info or ''}", flush=True)
                       if d % 500 == 0 else None)
        result["train"] = {"wall_s": time.perf_counter() - t0, "loop_s": tr.seconds, "steps": tr.step,
                           "val_psnr_during": tr.val_psnr, "backends": chosen_backends()}
        print(json.dumps(result["train"]), flush=True)

    model, info = load_model(model_dir, device)
    data = load_head_data(args.dataset, EXPRESSIONS)
    ids = list(range(data.num_train, data.num_frames))
    level = split_level(info.mouth, info.fps, args.dataset, data, cfg.render.mouth_level)
    support = mouth_support(info.mouth, cfg.render.mouth_support, device)
    rendered, fps = render_split(model, data, ids, device, cfg.render.chunk_rays, 4, precision=cfg.render.precision,
                                 level=level, support=support)
    gt = data.frames[ids]
    scores = score_frames(rendered, gt, face_boxes(data.landmarks[ids], (data.size, data.size))).means()
    result["val"] = {
        "frames": len(ids),
        "psnr": scores["psnr"],
        "psnr_face_box": scores["psnr_face"],
        "ssim": scores["ssim"],
        "render_fps_with_io": fps,
        "predicted_opening": predicted_opening(model, data, ids, device),
    }
    print(json.dumps(result["val"]), flush=True)
    save_jpegs(out / "val_renders.npz", rendered, ids=np.array(ids))
    if not args.lean:
        result["val_latent"] = latent_sweep(model, data, ids, device, cfg, level, gt,
                                            face_boxes(data.landmarks[ids], (data.size, data.size)))
        print(json.dumps(result["val_latent"]), flush=True)
    if "level" in info.mouth and not args.lean:  # the same frames without the mouth level, to compare
        plain, _ = render_split(model, data, ids, device, cfg.render.chunk_rays, 4, precision=cfg.render.precision)
        save_jpegs(out / "val_renders_nolevel.npz", plain, ids=np.array(ids))
    # the same frames with the mouth codes measured on the real frames: the renderer alone, without the predictor
    codes = torch.from_numpy(model.mouth_basis().encode(data.landmarks[ids])).float().to(device)
    with torch.no_grad():
        measured = model.condition(FrameBatch(torch.from_numpy(data.expressions[ids]).to(device), codes=codes))
    save_jpegs(out / "val_renders_measured.npz",
               render_conditioned(model, info, data, measured, np.array(ids), device, cfg), ids=np.array(ids))
    picks = np.linspace(0, len(ids) - 1, 4).round().astype(int)
    strip = np.concatenate([np.concatenate([rendered[i], gt[i]], 0) for i in picks], 1)
    cv2.imwrite(str(out / "val_stills.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    # the whole person: the head over the model's torso and the plate, no training frame used for the body
    from syncanim.model.folder import ModelLayout, load_torso

    torso = load_torso(ModelLayout(model_dir), info, device)
    if torso is not None and not args.lean:
        person, _ = render_split(model, data, ids, device, cfg.render.chunk_rays, 4, precision=cfg.render.precision,
                                 torso=torso)
        boxes = face_boxes(data.landmarks[ids], (data.size, data.size))
        ps = score_frames(person, gt, boxes).means()
        # the same person over each held-out frame's own background pixels: the body alone, not the plate
        own, _ = render_split(model, data, ids, device, cfg.render.chunk_rays, 4, precision=cfg.render.precision,
                              torso=torso, backdrop="frame")
        po = score_frames(own, gt, boxes).means()
        result["val_person"] = {"frames": len(ids), "psnr": ps["psnr"], "psnr_face_box": ps["psnr_face"],
                                "ssim": ps["ssim"], "plate_bound_psnr": plate_bound(gt, data.labels[ids], data.plate),
                                "own_background": {"psnr": po["psnr"], "psnr_face_box": po["psnr_face"],
                                                   "ssim": po["ssim"]},
                                "torso_fit": info.torso.get("fit") if info.torso else None}
        print(json.dumps(result["val_person"]), flush=True)
        strip = np.concatenate([np.concatenate([person[i], rendered[i], gt[i]], 0) for i in picks], 1)
        cv2.imwrite(str(out / "val_person_stills.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
        crops = [np.concatenate([person[i][s // 2:, s // 4:3 * s // 4], gt[i][s // 2:, s // 4:3 * s // 4]], 0)
                 for i in picks for s in [data.size]]
        cv2.imwrite(str(out / "val_neck_stills.png"), cv2.cvtColor(np.concatenate(crops, 1), cv2.COLOR_RGB2BGR))

    if args.speech is not None:
        if args.support is None:
            result["speech"] = {p.stem: render_speech(model, info, data, p, out / f"speech_{p.stem}.npz", device, cfg,
                                                        model_dir, compare=not args.lean)
                                for p in sorted(args.speech.glob("*.npy"))}
        else:
            result["speech"] = {f"{p.stem}_s{m:g}": render_speech(model, info, data, p, out / f"speech_{p.stem}_s{m:g}.npz",
                                                                   device, cfg, model_dir, compare=False, support=m)
                                for p in sorted(args.speech.glob("*.npy")) for m in args.support}
        print(json.dumps(result["speech"]), flush=True)

    if args.mouth_variant:
        result["mouth_variants"] = {}
        boxes = face_boxes(data.landmarks[ids], (data.size, data.size))
        for spec in args.mouth_variant:
            name, sets = parse_mouth_variant(spec)
            seed = int(sets.pop("seed", 0))
            t0 = time.perf_counter()
            refit_predictor(model, data, cfg.train.mouth.model_copy(update=sets), device, args.dataset, seed)
            r, _ = render_split(model, data, ids, device, cfg.render.chunk_rays, 4, precision=cfg.render.precision,
                                level=split_level(info.mouth, info.fps, args.dataset, data, cfg.render.mouth_level),
                                support=support)
            s = score_frames(r, gt, boxes).means()
            save_jpegs(out / f"val_renders_v_{name}.npz", r, quality=92, ids=np.array(ids))
            result["mouth_variants"][name] = {"train_mouth": sets, "seed": seed, "fit_s": time.perf_counter() - t0,
                                              "psnr": s["psnr"], "psnr_face_box": s["psnr_face"], "ssim": s["ssim"],
                                              "predicted_opening": predicted_opening(model, data, ids, device)}
            print(name, json.dumps(result["mouth_variants"][name]), flush=True)

    if args.lean:
        (out / "head_gpu.json").write_text(json.dumps(result, indent=2) + "\n")
        return 0
    # render speed: the head at full size, poses/audio/backgrounds already on the device
    speed = {f"batch{b}": render_speed(model, data, ids[:b], device, cfg, out) for b in (1, 4)}
    occ = float(model.occupied.float().mean())
    result["render_speed"] = {"image_size": data.size, "occupied_share": occ, **speed}
    print(json.dumps(result["render_speed"]), flush=True)
    (out / "head_gpu.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
