"""Would a mouth that closes in the pauses follow the subject better? The mouth predictor fitted as training fits
it (``mouth_predictor.py``), its predicted opening (crossed lips as closed) scaled by ``1 - S`` in the frames of
pauses of at least ``L`` frames (quieter than ``PAUSE_DB`` below the clip's loud level), scored against the real
opening on five parts of the clip held out in turn and on the validation frames.

    python benchmarks/pause_close.py DATASET [--seed 0] [--json OUT]

Runs on CPU in a few minutes. The subject's own pauses decide: where he rests with his lips apart, closing them
costs correlation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from mouth_predictor import held_out_parts, score_part

from syncanim.config import MouthTrainConfig
from syncanim.data.dataset import clip_rms
from syncanim.data.manifest import DatasetLayout, read_manifest
from syncanim.face.mouth import mouth_opening
from syncanim.metrics.mouth import PAUSE_DB, opening_correlation, speech_frames
from syncanim.model.head_config import MouthNetConfig

SHARES = (0.0, 0.3, 0.5, 0.8, 1.0)  # how far the opening closes in a pause
MIN_FRAMES = (1, 5, 10, 15)  # the shortest pause closed


def long_runs(mask: np.ndarray, min_len: int) -> np.ndarray:
    """``mask [T] bool`` keeping only its runs of at least ``min_len`` frames -> ``[T] bool``."""
    out = np.zeros_like(mask)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if end - start >= min_len:
            out[start:end] = True
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    dev = torch.device("cpu")
    manifest = read_manifest(args.dataset)
    landmarks = np.load(DatasetLayout(args.dataset).landmarks)
    feats = torch.from_numpy(np.load(DatasetLayout(args.dataset).audio_features)).float()
    rms = clip_rms(args.dataset, manifest)
    speaking, voiced = speech_frames(rms), speech_frames(rms, PAUSE_DB)
    truth = mouth_opening(landmarks)
    parts = held_out_parts(len(landmarks), manifest.num_train, 5) + held_out_parts(len(landmarks), manifest.num_train, 1)
    openings = []
    for part in parts:
        _, codes, basis = score_part(landmarks, feats, part, MouthNetConfig(), MouthTrainConfig(), args.seed, dev, {},
                                     speaking, shown=True, voiced=voiced)
        openings.append(basis.opening(codes, shown=True))
    rows = []
    for min_len in MIN_FRAMES:
        paused = long_runs(~voiced, min_len)
        for share in SHARES:
            corr = [opening_correlation(np.where(paused[lo:hi], o * (1 - share), o), truth[lo:hi])[0]
                    for (lo, hi), o in zip(parts, openings, strict=True)]
            rows.append({"min_frames": min_len, "share": share, "parts": corr[:-1],
                         "parts_mean": float(np.mean(corr[:-1])), "val": corr[-1]})
            print(f"pauses of {min_len:2d}+ frames closed by {share:.1f}: parts "
                  + " ".join(f"{c:.3f}" for c in corr[:-1]) + f" mean {np.mean(corr[:-1]):.3f}, val {corr[-1]:.3f}",
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "pause_close", "command": "python " + " ".join(sys.argv),
                                         "dataset": args.dataset.name, "seed": args.seed, "pause_db": PAUSE_DB,
                                         "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
