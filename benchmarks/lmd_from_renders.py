"""LMD of rendered validation frames (``val_renders.npz`` from head_gpu.py) against the dataset's frames.

    python benchmarks/lmd_from_renders.py val_renders.npz DATASET [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from syncanim.data.manifest import DatasetLayout
from syncanim.metrics.lmd import lmd_stats, mouth_landmarks


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("renders", type=Path)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    z = np.load(args.renders)
    ids = z["ids"].tolist()
    rendered = [cv2.cvtColor(cv2.imdecode(z[f"f{i}"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for i in range(len(ids))]
    lay = DatasetLayout(args.dataset)
    gt = [cv2.cvtColor(cv2.imread(str(lay.frame(k))), cv2.COLOR_BGR2RGB) for k in ids]
    size = gt[0].shape[0]
    r = lmd_stats(mouth_landmarks(rendered), mouth_landmarks(gt), (size, size))
    rc = lmd_stats(mouth_landmarks(rendered), mouth_landmarks(gt), (size, size), centered=True)
    out = {"frames": len(ids), "lmd_px": r.value, "lmd_centered_px": rc.value, "frames_used": r.frames_used}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
