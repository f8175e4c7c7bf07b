"""Where do held-out renders lose PSNR? The squared error of renders brought back from a GPU run, split by region.

    python benchmarks/psnr_regions.py DATASET RENDERS.npz [RENDERS2.npz ...] [--shift] [--json OUT.json] [--map OUT.png]

``RENDERS.npz`` is what ``benchmarks/head_gpu.py`` writes (``val_renders.npz``: JPEG frames and their dataset
``ids``; ``val_renders_measured.npz``: the same frames drawn from the mouth codes measured on the real ones). For
each file, against the dataset's frames:

- per parsing label (background, torso, neck, head = hair and ears, face): the share of the pixels, the share of the
  squared error and the PSNR inside the label;
- boxes around the eyes and around the mouth (from the frames' landmarks, a few pixels of margin), and the head's
  outline (``syncanim.data.labels.outline_band``: within 4 px at 512 of the edge of the head and face labels, on
  either side): the same (these overlap the labels);
- for each region, the whole-frame PSNR if that region were drawn perfectly (how much there is to gain there);
- with ``--shift`` (minutes: 169 shifts of every frame), ``head_shift``: the head (head and face labels, dilated)
  scored after the best shift of the render within +-3 px, steps of 0.5 px: how much of the head's error is the
  render sitting off the real head (pose) rather than what it draws.

PSNR here is of the mean squared error over all frames' pixels, from JPEG frames: a little below head_gpu.py's mean
of per-frame PSNR. ``--map`` writes the first file's root-mean-square error per pixel (x4, white = 0.25 and more).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
from lipsync import read_jpegs

from syncanim.data.dataset import load_head_data
from syncanim.data.files import finite_json
from syncanim.data.labels import HEAD, OUTLINE_PX, outline_band
from syncanim.face.eyes import LEFT_EYE, RIGHT_EYE
from syncanim.face.mouth import LIPS
from syncanim.model.head import EXPRESSIONS

EYE_POINTS = (RIGHT_EYE["corners"] + sum(RIGHT_EYE["pairs"], ()), LEFT_EYE["corners"] + sum(LEFT_EYE["pairs"], ()))
BOX_MARGIN = {"eyes": 6, "mouth": 8}  # pixels at 512, scaled with the frame size


def psnr(mse: float) -> float:
    return -10 * math.log10(max(mse, 1e-12))


def box_mask(points: np.ndarray, margin: float, size: int) -> np.ndarray:
    """[size, size] bool: the box around ``points`` [K, 2] (pixels) grown by ``margin``."""
    m = np.zeros((size, size), bool)
    x0, y0 = np.floor(points.min(0) - margin).astype(int).clip(0, size)
    x1, y1 = np.ceil(points.max(0) + margin).astype(int).clip(0, size)
    m[y0:y1, x0:x1] = True
    return m


def best_shift_mse(render: np.ndarray, truth: np.ndarray, mask: np.ndarray, reach: float = 3.0,
                   step: float = 0.5) -> tuple[float, float, float]:
    """The lowest mean squared error inside ``mask`` [H, W] of ``render`` [H, W, 3] float shifted by (dx, dy) within
    +-``reach`` px against ``truth`` -> (mse, dx, dy)."""
    ys, xs = np.nonzero(mask)
    pad = int(math.ceil(reach)) + 1  # only the mask's box (and what a shift brings into it) is warped
    y0, y1 = max(ys.min() - pad, 0), ys.max() + pad + 1
    x0, x1 = max(xs.min() - pad, 0), xs.max() + pad + 1
    render, truth, mask = render[y0:y1, x0:x1], truth[y0:y1, x0:x1], mask[y0:y1, x0:x1]
    h, w = mask.shape
    best = (float(np.mean((render[mask] - truth[mask]) ** 2)), 0.0, 0.0)
    for dx in np.arange(-reach, reach + 1e-6, step):
        for dy in np.arange(-reach, reach + 1e-6, step):
            moved = cv2.warpAffine(render, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_REPLICATE)
            mse = float(np.mean((moved[mask] - truth[mask]) ** 2))
            if mse < best[0]:
                best = (mse, float(dx), float(dy))
    return best


def score(data, path: Path, shift: bool) -> tuple[dict, np.ndarray]:
    frames, extra = read_jpegs(path)
    ids = extra["ids"]
    size = data.size
    sums: dict[str, list[float]] = {}  # region -> [squared error, pixels]
    head = {"mse": 0.0, "shifted": 0.0, "shifts": []}
    err_map = np.zeros((size, size))
    for render, k in zip(frames, ids, strict=True):
        r, t = render.astype(np.float32) / 255, data.frames[k].astype(np.float32) / 255
        se = ((r - t) ** 2).mean(2)
        err_map += se
        regions = {name: data.labels[k] == int(v) for v, name in data.manifest.labels.items()}
        pts = data.landmarks[k][:, :2]
        scale = size / 512
        regions["eyes"] = (box_mask(pts[list(EYE_POINTS[0])], BOX_MARGIN["eyes"] * scale, size)
                           | box_mask(pts[list(EYE_POINTS[1])], BOX_MARGIN["eyes"] * scale, size))
        regions["mouth"] = box_mask(pts[list(LIPS)], BOX_MARGIN["mouth"] * scale, size)
        regions["outline"] = outline_band(data.labels[k], OUTLINE_PX * scale)
        regions["all"] = np.ones_like(se, bool)
        for name, m in regions.items():
            acc = sums.setdefault(name, [0.0, 0.0])
            acc[0] += float(se[m].sum())
            acc[1] += float(m.sum())
        if shift:
            hm = cv2.dilate((data.labels[k] >= HEAD).astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
            mse, dx, dy = best_shift_mse(r, t, hm)
            head["mse"] += float(np.mean((r[hm] - t[hm]) ** 2)) / len(ids)
            head["shifted"] += mse / len(ids)
            head["shifts"].append((dx, dy))
    total, pixels = sums.pop("all")
    out = {"file": path.name, "frames": len(ids), "psnr": psnr(total / pixels), "regions": {}}
    for name, (e, n) in sums.items():
        if n == 0:
            continue
        out["regions"][name] = {"pixel_share": n / pixels, "error_share": e / total, "psnr": psnr(e / n),
                                "psnr_if_perfect": psnr((total - e) / pixels)}
    if shift:
        out["head_shift"] = {"psnr": psnr(head["mse"]), "psnr_best_shift": psnr(head["shifted"]),
                             "median_abs_shift_px": np.median(np.abs(np.array(head["shifts"])), 0).tolist()}
    return out, np.sqrt(err_map / len(ids))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("renders", type=Path, nargs="+")
    ap.add_argument("--shift", action="store_true", help="also score the head after its best shift (slow)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--map", type=Path, help="the first file's RMS error per pixel, x4, as a PNG")
    args = ap.parse_args()
    data = load_head_data(args.dataset, EXPRESSIONS)
    result = {"benchmark": "psnr_regions", "command": "python " + " ".join(sys.argv), "dataset": args.dataset.name,
              "renders": []}
    for i, path in enumerate(args.renders):
        row, rms = score(data, path, args.shift)
        result["renders"].append(row)
        print(f"{path.name}: PSNR {row['psnr']:.2f} dB", flush=True)
        for name, r in row["regions"].items():
            print(f"  {name:10s} pixels {r['pixel_share']:6.1%}  error {r['error_share']:6.1%}  PSNR {r['psnr']:5.2f}"
                  f"  whole frame if perfect {r['psnr_if_perfect']:5.2f}")
        if "head_shift" in row:
            h = row["head_shift"]
            print(f"  head: PSNR {h['psnr']:.2f}, best shift {h['psnr_best_shift']:.2f} "
                  f"(median |shift| {h['median_abs_shift_px']} px)")
        if i == 0 and args.map:
            cv2.imwrite(str(args.map), (np.clip(rms * 4, 0, 1) * 255).astype(np.uint8))
    if args.json:
        args.json.write_text(json.dumps(finite_json(result), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
