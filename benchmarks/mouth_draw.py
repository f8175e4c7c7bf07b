"""How faithfully does a head draw the mouth opening its codes ask for? On a dataset's held-out frames: the opening
of the codes render gives the head (the predictor, then the mouth level and the mouth support, crossed lips as
closed) against the opening MediaPipe reads in the rendered frames and in the real ones.

    python benchmarks/mouth_draw.py DATASET MODEL VAL_RENDERS [--preset cpu-quick] [--json OUT]

``VAL_RENDERS``: ``val_renders.npz`` of ``benchmarks/head_gpu.py`` (or a video, as ``lipsync.py`` reads it).
Runs on CPU. Needs MediaPipe.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from lipsync import read_renders

from syncanim.config import build_config
from syncanim.data.dataset import load_head_data
from syncanim.eval.video_stats import track_landmarks
from syncanim.face.mouth import mouth_opening
from syncanim.model.folder import load_model
from syncanim.model.head import EXPRESSIONS
from syncanim.motion.mouth_support import mouth_support
from syncanim.render.validation import split_level

#: bins of the asked opening (eye-corner distances) the response is reported in
BINS = (0.0, 0.01, 0.03, 0.05, 0.07, 0.1, np.inf)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("model", type=Path)
    ap.add_argument("renders", type=Path)
    ap.add_argument("--preset", default="cpu-quick", help="the render settings (mouth level and support) used")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cfg = build_config(args.preset, [])
    dev = torch.device("cpu")
    model, info = load_model(args.model, dev)
    data = load_head_data(args.dataset, EXPRESSIONS)
    ids = np.arange(data.num_train, data.num_frames)
    level = split_level(info.mouth, info.fps, args.dataset, data, cfg.render.mouth_level)
    support = mouth_support(info.mouth, cfg.render.mouth_support, dev)
    with torch.no_grad():
        codes = {"predicted": model.predictor(torch.from_numpy(data.audio).float(), torch.from_numpy(ids))}
        codes["levelled"] = level[0].apply(codes["predicted"], level[1][ids]) if level is not None else codes["predicted"]
        codes["asked"] = support.apply(codes["levelled"]) if support is not None else codes["levelled"]
    basis = model.mouth_basis()
    opening = {k: basis.opening(v.numpy(), shown=True) for k, v in codes.items()}
    frames, _ = read_renders(args.renders, data)
    pts, _ = track_landmarks(iter(frames))
    drawn, truth = mouth_opening(pts), mouth_opening(data.landmarks[ids])

    def corr(x: np.ndarray, y: np.ndarray) -> float:
        ok = np.isfinite(x) & np.isfinite(y)
        return float(np.corrcoef(x[ok], y[ok])[0, 1])

    asked = opening["asked"]
    bins = []
    for lo, hi in zip(BINS[:-1], BINS[1:], strict=True):
        m = (asked > lo if lo > 0 else np.ones(len(asked), bool)) & (asked <= hi)
        if m.any():
            bins.append({"asked": [lo, None if np.isinf(hi) else hi], "frames": int(m.sum()),
                         "drawn_mean": float(np.nanmean(drawn[m])), "truth_mean": float(truth[m].mean())})
    result = {"benchmark": "mouth_draw", "command": "python " + " ".join(sys.argv), "frames": len(ids),
              "codes_vs_truth": {k: corr(v, truth) for k, v in opening.items()},
              "codes_vs_drawn": {k: corr(v, drawn) for k, v in opening.items()},
              "drawn_vs_truth": corr(drawn, truth), "spread": {"asked": float(asked.std()),
                                                               "drawn": float(np.nanstd(drawn)), "truth": float(truth.std())},
              "by_asked_opening": bins}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
