"""Do the head poses the motion syncer makes for new speech lie among the subject's own? (CPU, seconds.)

    python benchmarks/motion_poses.py MODEL --speech NAME=SPEECH.wav ... [--seed S] [--json OUT.json]

The poses as the syncer's pose channels (:func:`syncanim.motion.syncer.motion_channels`: the rotation vector
about the clip's mean rotation, the translation) of the model's training frames (its replay) and of each speech's
generated motion. Per speech:

- **Mahalanobis distance** of each generated pose under the training poses' mean and covariance (median, 90th
  percentile), beside the training poses' own: a pose whose rotation and translation are each ordinary but
  combined as the subject never does (turned without the shift that goes with the turn) is far;
- **coupling error**: the mean absolute difference between the generated and the training channels' correlation
  matrices (off the diagonal);
- each channel's mean and spread in units of the training spread.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from syncanim.audio.waveform import read_audio
from syncanim.model.folder import ModelLayout, load_replay, read_info
from syncanim.motion.store import load_motion
from syncanim.motion.syncer import generate_motion, motion_channels
from syncanim.registry import default_registry
from syncanim.stream.speech import build_extractor, stream_features


def pose_figures(seen: np.ndarray, made: np.ndarray) -> dict:
    """Figures (module doc) of generated pose channels ``made [M, 6]`` against the training ones ``seen [N, 6]``."""
    mean, sd = seen.mean(0), seen.std(0)
    prec = np.linalg.inv(np.cov(seen.T))

    def distance(x: np.ndarray) -> np.ndarray:
        d = x - mean
        return np.sqrt(np.einsum("ni,ij,nj->n", d, prec, d))

    off = ~np.eye(seen.shape[1], dtype=bool)
    return {"mahalanobis_median": float(np.median(distance(made))),
            "mahalanobis_p90": float(np.quantile(distance(made), 0.9)),
            "coupling_error": float(np.abs(np.corrcoef(made.T) - np.corrcoef(seen.T))[off].mean()),
            "channel_mean_in_spreads": ((made.mean(0) - mean) / sd).round(3).tolist(),
            "channel_spread_ratio": (made.std(0) / sd).round(3).tolist()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--speech", action="append", default=[], help="NAME=SPEECH.wav")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    info = read_info(args.model)
    layout = ModelLayout(args.model)
    syncer = load_motion(layout, info)
    if syncer is None:
        sys.exit(f"{args.model} has no motion syncer")
    replay = load_replay(layout)
    mean_rot = syncer.mean_rotation.numpy().astype(np.float64)
    n = replay.num_train
    seen = motion_channels(mean_rot, replay.rotation[:n], replay.translation[:n])
    own = pose_figures(seen, seen)
    result: dict = {"benchmark": "motion_poses", "model": str(args.model), "seed": args.seed,
                    "training_frames": n, "training_mahalanobis_median": own["mahalanobis_median"],
                    "training_mahalanobis_p90": own["mahalanobis_p90"], "speech": {}}
    extractor = build_extractor(dict(info.audio), default_registry(), torch.device("cpu"))
    for item in args.speech:
        name, path = item.split("=", 1)
        wave = read_audio(path, info.sample_rate)
        block = stream_features(extractor, wave, info.fps, int(wave.duration_s * info.fps))
        motion = generate_motion(syncer, torch.from_numpy(block.features), block.rms, seed=args.seed)
        result["speech"][name] = pose_figures(seen, motion_channels(mean_rot, motion.rotation, motion.translation))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
