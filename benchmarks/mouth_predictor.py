"""How well does the mouth predictor alone follow held-out speech? No rendering: the predicted codes'
mouth opening (:meth:`~syncanim.face.mouth.MouthBasis.opening`) against the real one on a dataset's
validation frames, for predictor and fit settings side by side, over several seeds.

    python benchmarks/mouth_predictor.py DATASET [NAME=key:value,key:value ...] [--seeds 0 1] [--json OUT]

Keys: ``m.*`` set ``[model.mouth]`` (:class:`~syncanim.model.head.MouthNetConfig`), ``t.*`` set
``[train.mouth]`` (:class:`~syncanim.config.MouthTrainConfig`); ``base=`` is the defaults. Runs on
CUDA when there is one. The rendered mouth follows the predicted codes about as well as these figures
(a renderer driven by the measured codes scores ~0.95 on cnn2), so this is where its lip sync is decided.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from syncanim.config import MouthTrainConfig
from syncanim.data.dataset import clip_rms, load_head_data
from syncanim.face.mouth import mouth_opening
from syncanim.metrics.mouth import amplitude_ratio, opening_correlation
from syncanim.model.head import EXPRESSIONS, MouthNetConfig
from syncanim.model.mouth_net import MouthPredictor
from syncanim.train.mouth import fit_mouth_predictor
from syncanim.train.trainer import mouth_targets


def _value(v: str) -> float | int:
    return float(v) if any(c in v for c in ".e") else int(v)


def parse_variant(spec: str) -> tuple[str, dict, dict]:
    """``NAME=m.hidden:256,t.steps:2000`` -> name, MouthNetConfig and MouthTrainConfig overrides."""
    name, _, sets = spec.partition("=")
    kv = [x.split(":", 1) for x in sets.split(",") if x]
    bad = [k for k, _ in kv if k[:2] not in ("m.", "t.")]
    if bad:
        raise SystemExit(f"keys must start with m. or t.: {bad}")
    return (name, {k[2:]: _value(v) for k, v in kv if k.startswith("m.")},
            {k[2:]: _value(v) for k, v in kv if k.startswith("t.")})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("variants", nargs="*", default=["base="])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = load_head_data(args.dataset, EXPRESSIONS)
    rms = clip_rms(args.dataset, data.manifest)
    base = MouthNetConfig()
    basis, _ = mouth_targets(data, rms, base.components, base.variance)
    codes = torch.from_numpy(basis.encode(data.landmarks)).float().to(dev)
    feats = torch.from_numpy(data.audio).float().to(dev)
    weight = torch.from_numpy(basis.weight).float().to(dev)
    n = data.num_train
    truth = mouth_opening(data.landmarks[n:])
    result = {"benchmark": "mouth_predictor", "command": "python " + " ".join(sys.argv), "dataset": args.dataset.name,
              "device": dev.type, "held_out_frames": int(len(truth)), "variants": {}}
    for spec in args.variants:
        name, mset, tset = parse_variant(spec)
        mc, tc = base.model_copy(update=mset), MouthTrainConfig(**tset)
        runs = []
        for seed in args.seeds:
            torch.manual_seed(seed)
            net = MouthPredictor(data.manifest.audio_per_frame, data.manifest.audio_dim, basis.size, mc.hidden,
                                 mc.layers, mc.past, mc.future, mc.dropout, mc.input_dropout).to(dev)
            gen = torch.Generator(device=dev)
            gen.manual_seed(seed)
            t0 = time.perf_counter()
            fit_mouth_predictor(net, feats, codes, n, weight, tc, gen)
            with torch.no_grad():
                opening = basis.opening(net.predict(feats).cpu().numpy()[n:])
            corr, lag = opening_correlation(opening, truth)
            runs.append({"seed": seed, "correlation": corr, "lag": lag, "amplitude": amplitude_ratio(opening, truth),
                         "fit_s": time.perf_counter() - t0})
        mean = float(np.mean([r["correlation"] for r in runs]))
        result["variants"][name] = {"model_mouth": mset, "train_mouth": tset, "mean_correlation": mean, "runs": runs}
        print(f"{name:14s} corr {mean:.3f} [" + " ".join(f"{r['correlation']:.3f}" for r in runs) + "] amp "
              + " ".join(f"{r['amplitude']:.2f}" for r in runs) + f" ({runs[0]['fit_s']:.0f} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
