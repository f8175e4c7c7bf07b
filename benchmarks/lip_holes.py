"""Holes in the drawn lips: frames where the backdrop shows through the mouth.

For each rendered frame (JPEGs in an npz, as ``head_gpu.py`` writes them), FaceMesh's mouth landmarks give the
lips' box (grown by 6 px); a pixel there is a **hole** when its chromaticity (rgb over r + g + b: a dark mouth keeps
its hue) has moved from the face's (the median of the box as tall as it is wide above the lips) at least
``--towards`` (0.2) of the way to the backdrop's (the median of the dataset plate's seen pixels), and the frame
counts when more than ``--min-px`` (20) of them are. Prints, per file, the frames that count and their hole pixels.

    python benchmarks/lip_holes.py DATASET NAME=RENDERS.npz ... [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from syncanim.data.dataset import read_rgb
from syncanim.data.manifest import DatasetLayout
from syncanim.metrics.lmd import mouth_landmarks


def decode(path: Path) -> np.ndarray:
    """``f0, f1, ...`` JPEGs of an npz -> ``[T, H, W, 3] uint8`` RGB."""
    d = np.load(path)
    n = sum(1 for k in d.files if k[0] == "f" and k[1:].isdigit())
    return np.stack([cv2.cvtColor(cv2.imdecode(d[f"f{i}"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for i in range(n)])


def hole_pixels(frames: np.ndarray, backdrop: np.ndarray, towards: float = 0.2, grow: int = 6) -> np.ndarray:
    """Hole pixels (module doc) of each of ``frames [T, H, W, 3] uint8`` with the backdrop colour ``[3]`` ->
    ``[T]`` int (-1 where FaceMesh finds no mouth)."""
    out = np.full(len(frames), -1)
    for i, (im, lm) in enumerate(zip(frames, mouth_landmarks(list(frames)), strict=True)):
        if lm is None:
            continue
        p = np.asarray(lm)[:, :2]
        x0, y0 = np.maximum(p.min(0).astype(int) - grow, 0)
        x1, y1 = p.max(0).astype(int) + grow
        span = x1 - x0
        face = im[max(0, y0 - span):y0, x0:x1].reshape(-1, 3).astype(np.float32)  # cheeks and upper lip above
        skin = np.median(face, 0) if len(face) else np.array([200.0, 150.0, 130.0])
        box = im[y0:y1, x0:x1].astype(np.float32)
        chroma = box / np.maximum(box.sum(-1, keepdims=True), 1.0)  # brightness left out: a dark mouth stays red
        cs, cb = skin / max(float(skin.sum()), 1.0), backdrop / max(float(backdrop.sum()), 1.0)
        share = ((chroma - cs) @ (cb - cs)) / max(float((cb - cs) @ (cb - cs)), 1e-9)  # 0: the skin's hue, 1: the backdrop's
        out[i] = int((share > towards).sum())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("renders", nargs="+", metavar="NAME=RENDERS.npz")
    ap.add_argument("--min-px", type=int, default=20)
    ap.add_argument("--towards", type=float, default=0.2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    lay = DatasetLayout(args.dataset)
    plate = read_rgb(lay.background).astype(np.float32)
    seen = cv2.imread(str(lay.background_unseen), cv2.IMREAD_GRAYSCALE) == 0
    backdrop = np.median(plate[seen], 0)
    result = {"benchmark": "lip_holes", "command": "python " + " ".join(sys.argv), "dataset": args.dataset.name,
              "backdrop_rgb": backdrop.round(1).tolist(), "min_px": args.min_px, "towards": args.towards, "renders": {}}
    for spec in args.renders:
        name, _, path = spec.partition("=")
        px = hole_pixels(decode(Path(path)), backdrop, args.towards)
        bad = np.nonzero(px > args.min_px)[0]
        result["renders"][name] = {"frames": len(px), "frames_with_holes": len(bad),
                                   "holes": {int(k): int(px[k]) for k in bad}}
        print(f"{name}: {len(bad)} of {len(px)} frames with holes " + " ".join(f"{k}:{px[k]}" for k in bad))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
