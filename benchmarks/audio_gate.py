"""Where does speech act on a trained head? The audio region gate over the head box, inside and outside the
box around the mouth and jaw (:func:`syncanim.model.rays.speech_box`), and in bands of height.

    python benchmarks/audio_gate.py MODEL DATASET [--json OUT]

Points: a 64^3 grid over the unit head box, those in the model's occupied cells (where rendering samples).
The gate is the mean over the audio channels of ``sigmoid(A e(x))``. Hair and ears that answer to the gate
move with the mouth code, and so with new speech (benchmarks/results/audio_gate_outside_cnn2_h200.json: on
cnn2 the held-out frames' error from the predicted codes sits mostly along the hair's edge).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

from syncanim.data.files import write_json_atomic
from syncanim.data.manifest import DatasetLayout
from syncanim.data.track import load_track
from syncanim.model import occupancy
from syncanim.model.folder import load_model
from syncanim.model.rays import head_box, outside_box, speech_box


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("dataset")
    ap.add_argument("--json")
    args = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, _ = load_model(args.model, dev)
    canonical = load_track(DatasetLayout(args.dataset).track).canonical
    lo, hi = head_box(canonical)
    box = torch.from_numpy(speech_box(canonical, lo, hi)).to(dev)
    pts = occupancy.cell_points(64, dev)  # [64^3, 3] unit coordinates
    pts = pts[occupancy.lookup(model.occupied_grid(), pts)]
    with torch.no_grad():
        gate = torch.sigmoid(model.field.audio_gate(model.field.encode(pts))).float().mean(-1)  # [N]
    out = outside_box(pts, box)
    result = {"model": args.model, "points": int(len(pts)), "inside_mean": float(gate[~out].mean()),
              "outside_mean": float(gate[out].mean()), "outside_p95": float(gate[out].quantile(0.95)),
              "bands": {}}
    edges = np.linspace(-1, 1, 9)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        sel = (pts[:, 1] >= a) & (pts[:, 1] < b)
        if sel.any():
            result["bands"][f"y {a:+.2f}..{b:+.2f}"] = float(gate[sel].mean())
    print(json.dumps(result, indent=1))
    if args.json:
        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
