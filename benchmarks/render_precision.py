"""How the render precision and kernel backend change a trained model's validation frames, and its speed.

    python benchmarks/render_precision.py MODEL DATASET [--json OUT.json]

Renders the dataset's validation frames with every (precision, backend) pair the device allows:
fp32 / bf16 autocast, and the reference / fast (Triton) kernels on CUDA. Reports, for each, the mean PSNR
against the ground truth and against the fp32 reference-kernel render, and frames per second
of the render (batches of 4 frames, poses and audio on the device, copy back included).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from syncanim.bench.timing import environment
from syncanim.config import RuntimeConfig
from syncanim.data.dataset import load_head_data
from syncanim.device import resolve_device
from syncanim.metrics.frames import psnr_8bit
from syncanim.model.folder import build_model, load_model
from syncanim.model.head import EXPRESSIONS
from syncanim.render.validation import render_split


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--chunk", type=int, default=1 << 19)
    args = ap.parse_args()
    device = resolve_device(RuntimeConfig())
    base, info = load_model(args.model, "cpu")
    state = base.state_dict()
    data = load_head_data(args.dataset, EXPRESSIONS)
    ids = list(range(data.num_train, data.num_frames))
    gt = data.frames[ids]
    backends = ["ref", "auto"] if device.type == "cuda" else ["auto"]  # auto: triton on CUDA, torch on CPU
    precisions = ["fp32", "bf16"]
    renders, rows = {}, []
    for backend in backends:
        model = build_model(dataclasses.replace(info, model={**info.model, "backend": backend}))
        model.load_state_dict(state)
        model = model.to(device).eval()
        for precision in precisions:
            render_split(model, data, ids[:8], device, args.chunk, 4, precision=precision)  # warm-up
            img, fps = render_split(model, data, ids, device, args.chunk, 4, precision=precision)
            renders[(backend, precision)] = img
            rows.append({"backend": backend, "precision": precision, "fps": fps,
                         "psnr_vs_ground_truth": float(np.mean(psnr_8bit(img, gt)))})
            print(json.dumps(rows[-1]), flush=True)
    ref = renders[(backends[0], "fp32")]
    for r in rows:
        d = psnr_8bit(renders[(r["backend"], r["precision"])], ref)
        r["psnr_vs_fp32_reference"] = float(np.mean(np.where(np.isinf(d), 99.0, d)))  # identical frames: 99
    out = {"benchmark": "render_precision", "environment": environment(), "model": str(args.model),
           "frames": len(ids), "results": rows}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
