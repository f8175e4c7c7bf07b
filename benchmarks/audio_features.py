"""Which speech features let the mouth be predicted best? Candidate audio backends, scored by the
mouth predictor that training fits.

    python benchmarks/audio_features.py DATASET [DATASET ...] [--held-out 0.3] [--json OUT.json]
        [--candidates logmel whisper:base:4 whisper:base:6 whisper:tiny.en:2 ...]

For each dataset (a prepared clip: its audio.wav and landmarks) and candidate (``logmel`` or
``whisper:MODEL:LAYER``; tiny.en needs the ``whisper-tiny`` extra), the features are computed from the
audio, the mouth predictor is fitted on the first frames exactly as ``syncanim train`` fits it
(:func:`syncanim.train.mouth.fit_mouth_predictor`, default settings), and the mouth opening it predicts
for the last ``--held-out`` share of the frames is correlated with the real one
(:func:`syncanim.metrics.mouth.opening_correlation`). Also reports feature seconds per audio second.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from syncanim.audio.waveform import read_audio
from syncanim.config import MouthTrainConfig, PluginSection
from syncanim.data.manifest import DatasetLayout, read_manifest
from syncanim.face.mouth import MouthBasis, mouth_opening
from syncanim.metrics.mouth import amplitude_ratio, opening_correlation
from syncanim.model.mouth_net import MouthPredictor
from syncanim.registry import default_registry
from syncanim.train.mouth import fit_mouth_predictor, mouth_loss_weight


def section(candidate: str) -> dict:
    kind, *rest = candidate.split(":")
    if kind == "whisper":
        model, layer = rest
        return {"kind": "whisper", "model": model, "layer": int(layer)}
    return {"kind": kind}


def score(dataset: Path, candidate: str, held_out: float) -> dict:
    m = read_manifest(dataset)
    layout = DatasetLayout(dataset)
    points = np.load(layout.landmarks)
    points[~np.load(layout.landmarks_found)] = np.nan
    n = len(points)
    n_train = int(round(n * (1 - held_out)))
    wave = read_audio(layout.audio, m.sample_rate)
    backend = default_registry().build("syncanim.asr", PluginSection(**section(candidate)))
    t0 = time.perf_counter()
    feats = backend.extract(wave, m.fps, num_frames=n)  # [N, P, F]
    feat_s = time.perf_counter() - t0
    basis = MouthBasis.fit(points[:n_train])
    codes = torch.from_numpy(basis.encode(points)).float()
    torch.manual_seed(0)
    net = MouthPredictor(feats.shape[1], feats.shape[2], basis.size)
    f = torch.from_numpy(np.ascontiguousarray(feats)).float()
    cfg = MouthTrainConfig()
    fit_mouth_predictor(net, f, codes, n_train, mouth_loss_weight(basis, cfg.opening_weight, "cpu"), cfg,
                        torch.Generator().manual_seed(0), opening=basis.opening_direction())
    pred = net.predict(f).numpy()[n_train:]
    truth = mouth_opening(points[n_train:])
    predicted = basis.opening(pred)
    corr, lag = opening_correlation(predicted, truth)
    return {"correlation": corr, "lag": lag, "amplitude": amplitude_ratio(predicted, truth),
            "feature_dim": list(feats.shape[1:]), "feature_s_per_audio_s": feat_s / wave.duration_s,
            "held_out_frames": n - n_train}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", type=Path, nargs="+")
    ap.add_argument("--held-out", type=float, default=0.3)
    ap.add_argument("--candidates", nargs="+",
                    default=["logmel", "whisper:base:2", "whisper:base:4", "whisper:base:6"])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result: dict = {"benchmark": "audio_features", "command": "python " + " ".join(sys.argv),
                    "held_out": args.held_out, "scores": {}}
    for c in args.candidates:
        rows = {ds.name: score(ds, c, args.held_out) for ds in args.datasets}
        result["scores"][c] = {"mean_correlation": float(np.mean([r["correlation"] for r in rows.values()])),
                               "datasets": rows}
        print(f"{c:22s} mean correlation {result['scores'][c]['mean_correlation']:.3f} "
              + " ".join(f"{k} {r['correlation']:.3f}" for k, r in rows.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
