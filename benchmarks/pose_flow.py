"""How well do head poses follow the image? Smoothed poses against poses fitted to landmarks and optical flow.

    python benchmarks/pose_flow.py DATASET [--weights 1 3 10 30] [--json OUT.json]

The head tracker is run on the dataset's landmarks with its flow term off (the poses smoothed over time, as
before the flow existed). Then, for each flow weight, the poses are refitted (``syncanim.face.pose_flow``) to all
rigid landmarks (as the tracker fits them) and to the flow of every other one (half A), and scored on the other
half (B), whose flow the fit never saw:

- ``flow_px``: how far B's projected motion from each frame to the next misses B's own optical flow (median and
  root mean square over points and frames; the flow itself is good to about 0.1-0.2 px); held out;
- ``landmark_px``: the mean distance of B's projections from its MediaPipe landmarks, which both fits saw.

Lower is better on both: jitter shows in the first, lag or drift in the second. Frames without a detected face
count as the tracker counts them: their landmarks are left out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from syncanim.data.files import finite_json
from syncanim.data.manifest import DatasetLayout, read_manifest
from syncanim.face.headpose import LandmarkBAConfig, LandmarkBATracker, _residuals, rigid_landmarks
from syncanim.face.pose_flow import landmark_flow, refine_poses


def scores(rot, trans, shape, landmarks, flow, focal, c) -> dict[str, float]:
    """Flow miss and landmark error of ``shape [K, 3]`` (the points scored) under poses ``rot, trans``."""
    proj = _residuals(landmarks, rot, trans, shape, focal, c, c) + landmarks  # [N, K, 2]
    miss = proj[1:] - proj[:-1] - flow[1:]
    miss = np.linalg.norm(miss[np.isfinite(miss).all(-1)], axis=-1)
    err = np.linalg.norm(proj - landmarks, axis=-1)
    return {"flow_px_median": float(np.median(miss)), "flow_px_rms": float(np.sqrt(np.mean(miss**2))),
            "landmark_px": float(np.nanmean(err))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--weights", type=float, nargs="+", default=[1.0, 3.0, 10.0, 30.0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    layout = DatasetLayout(args.dataset)
    m = read_manifest(args.dataset)
    size = m.image_size
    landmarks = np.load(layout.landmarks)
    found = np.load(layout.landmarks_found)

    def frames():
        for k in range(m.num_frames):
            yield cv2.cvtColor(cv2.imread(str(layout.frame(k))), cv2.COLOR_BGR2RGB)

    t0 = time.perf_counter()
    track = LandmarkBATracker(LandmarkBAConfig(flow_weight=0.0)).fit(landmarks, found, (size, size))
    rigid = rigid_landmarks(track.canonical)
    points = np.where(found[:, None, None], landmarks[:, rigid, :2], np.nan).astype(np.float64)
    t1 = time.perf_counter()
    flow = landmark_flow(frames(), landmarks[:, rigid, :2], size=(size, size))
    flow_s = time.perf_counter() - t1
    shape = track.canonical[rigid].astype(np.float64)
    half_a = np.arange(len(rigid)) % 2 == 0
    b = ~half_a
    flow_a = flow.copy()
    flow_a[:, b] = np.nan
    c = track.cx
    rows = {"smoothed": scores(track.rotation, track.translation, shape[b], points[:, b], flow[:, b], track.focal, c)}
    print(f"smoothed: {rows['smoothed']}")
    for w in args.weights:
        r, t = refine_poses(track.rotation, track.translation, shape, points, flow_a, track.focal, c, c,
                            flow_weight=w)
        rows[f"flow_weight_{w:g}"] = scores(r, t, shape[b], points[:, b], flow[:, b], track.focal, c)
        print(f"flow weight {w:g}: {rows[f'flow_weight_{w:g}']}")
    out = {
        "benchmark": "pose_flow",
        "command": "python benchmarks/pose_flow.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "dataset": str(args.dataset), "frames": m.num_frames, "size": size, "rigid_landmarks": int(len(rigid)),
        "flow_found": float(np.isfinite(flow[1:, :, 0]).mean()), "flow_s": flow_s,
        "tracker_s": t1 - t0, "scored_on": "the rigid landmarks the refit did not see (every other one)",
        "results": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(finite_json(out), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
