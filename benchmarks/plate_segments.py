"""How much a background plate of the last scene would buy on held-out frames that follow a camera move.

Prep's plate (``background.png``) is the median over the whole clip. When the camera moves during the clip (cnn2:
near frame 1440 the head's depth changes and the backdrop's bar sits lower) the held-out frames at the end see a
background the plate does not hold. This scores, over the held-out frames, the plate bound (the whole-frame PSNR a
perfect person over a plate reaches, :func:`syncanim.render.validation.plate_bound`) and the PSNR over background
pixels, for prep's plate and for a plate of the training frames from ``--since`` on (the median of their background
pixels, the person grown by ``--margin`` px; pixels they never show taken from prep's plate). The bound pools the
squared error over the frames, as eval's does; the other PSNRs are means over frames. With ``--render`` (a
``val_side_by_side.mp4`` of ``syncanim render --split val``: render left, truth right) it also scores the render with
its background pixels (eroded by ``--margin`` px) replaced by each plate: what the person would score over it, and
where the render's error lies (each label's share of the pixels and of the squared error, its PSNR).

    python benchmarks/plate_segments.py DATASET --since 1440 [--render MODEL/val/val_side_by_side.mp4] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from syncanim.data.dataset import read_labels, read_rgb
from syncanim.data.labels import BACKGROUND, NAMES
from syncanim.data.manifest import DatasetLayout, read_manifest
from syncanim.metrics.frames import psnr_8bit
from syncanim.metrics.image import psnr
from syncanim.render.validation import plate_bound


def scene_plate(layout: DatasetLayout, frames: range, fallback: np.ndarray, margin: int) -> tuple[np.ndarray, float]:
    """The median of ``frames``' background pixels (the person grown by ``margin`` px), ``fallback [H, W, 3] uint8``
    where none shows -> (plate [H, W, 3] uint8, share of pixels seen)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * margin + 1, 2 * margin + 1))
    stack = []
    for k in frames:
        person = cv2.dilate((read_labels(layout.parsing(k)) != BACKGROUND).astype(np.uint8), kernel) > 0
        stack.append(np.where(person[..., None], np.nan, read_rgb(layout.frame(k)).astype(np.float32)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels take the fallback
        med = np.nanmedian(np.stack(stack), axis=0)  # [H, W, 3]
    seen = ~np.isnan(med[..., 0])
    plate = np.where(seen[..., None], np.nan_to_num(med), fallback).round().clip(0, 255).astype(np.uint8)
    return plate, float(seen.mean())


def error_by_label(image: np.ndarray, truth: np.ndarray, labels: np.ndarray) -> dict[str, dict[str, float]]:
    """Each label's share of the pixels and of the squared error, and the PSNR over its pixels: ``image``, ``truth``
    ``[B, H, W, 3] uint8``, ``labels [B, H, W] uint8``."""
    se = ((image.astype(np.float64) - truth.astype(np.float64)) ** 2).mean(-1)  # [B, H, W]
    out = {}
    for label, name in NAMES.items():
        m = labels == label
        if m.any():
            out[name] = {"pixel_share": float(m.mean()), "error_share": float(se[m].sum() / se.sum()),
                         "psnr": float(10 * np.log10(255.0**2 / se[m].mean()))}
    return out


def _side_by_side(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import av

    with av.open(str(path)) as c:
        pairs = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])  # [B, H, 2W, 3]
    w = pairs.shape[2] // 2
    return pairs[:, :, :w], pairs[:, :, w:]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--since", type=int, required=True, help="first training frame of the last scene")
    ap.add_argument("--every", type=int, default=3, help="read every n-th of those frames")
    ap.add_argument("--margin", type=int, default=9)
    ap.add_argument("--render", type=Path, help="val_side_by_side.mp4 of the dataset's held-out frames")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    layout = DatasetLayout(args.dataset)
    m = read_manifest(args.dataset)
    if not 0 <= args.since < m.num_train:
        raise SystemExit(f"--since must be a training frame (0 .. {m.num_train - 1})")
    val = np.arange(m.num_train, m.num_frames)
    truth = np.stack([read_rgb(layout.frame(k)) for k in val])  # [V, H, W, 3]
    labels = np.stack([read_labels(layout.parsing(k)) for k in val])
    prep_plate = read_rgb(layout.background)
    scene, seen = scene_plate(layout, range(args.since, m.num_train, args.every), prep_plate, args.margin)
    bg = labels == BACKGROUND
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * args.margin + 1, 2 * args.margin + 1))
    rendered = _side_by_side(args.render) if args.render else None
    out = {"benchmark": "plate_segments", "dataset": str(args.dataset), "held_out_frames": len(val),
           "since": args.since, "scene_seen_share": seen, "plates": {}}
    for name, plate in (("prep", prep_plate), ("last_scene", scene)):
        row = {"bound_psnr": plate_bound(truth, labels, plate),
               "background_psnr": float(np.mean(psnr(torch.from_numpy(plate[None].repeat(len(val), 0)),
                                                     torch.from_numpy(truth), mask=torch.from_numpy(bg))))}
        if rendered is not None:
            image, real = rendered
            keep = np.stack([cv2.erode(b.astype(np.uint8), kernel) > 0 for b in bg])[..., None]
            row["render_over_plate_psnr"] = float(psnr_8bit(np.where(keep, plate, image), real).mean())
        out["plates"][name] = row
        print(name, json.dumps(row))
    if rendered is not None:
        out["render_psnr"] = float(psnr_8bit(*rendered).mean())
        print("render as it is", round(out["render_psnr"], 2))
        out["error_by_label"] = error_by_label(*rendered, labels)
        print(json.dumps(out["error_by_label"]))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
