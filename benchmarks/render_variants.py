"""Render settings compared on one trained head: its held-out frames rendered again with the mouth level or
support off, the predictor's gain scaled, or its shape across the opening damped, each written for
``lipsync.py`` to score.

    python benchmarks/render_variants.py DATASET MODEL --out DIR NAME=key:value,... [NAME=...] [--preset gpu-default]

Keys: ``level`` (``off``: no mouth level), ``support`` (the mouth support's share; 0: off), ``gain`` (the predictor's
per-component gains times this), ``cross`` (the shape across the opening times this instead of the model's own
damping; :func:`syncanim.train.mouth.cross_mix`). ``NAME=`` renders the model as it is. Each variant goes to
``DIR/val_renders_NAME.npz`` (JPEG, as ``head_gpu.py`` writes them). Runs on the GPU when there is one, else on
the CPU (a 512 px ``gpu-default`` head: about 2.5 minutes per variant on 2 cores, the same pictures as on the GPU
to JPEG precision). Nothing is trained: a render setting is judged on the very head it will run with.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from head_gpu import save_jpegs

from syncanim.config import build_config
from syncanim.data.dataset import load_head_data
from syncanim.model.folder import load_model
from syncanim.model.head import EXPRESSIONS
from syncanim.motion.mouth_support import mouth_support
from syncanim.render.validation import render_split, split_level
from syncanim.train.mouth import cross_mix

KEYS = ("level", "support", "gain", "cross")


def parse_variant(spec: str) -> tuple[str, dict[str, str]]:
    """``NAME=key:value,...`` -> the name and its settings (keys in :data:`KEYS`)."""
    name, sep, rest = spec.partition("=")
    if not sep or not name:
        raise SystemExit(f"a variant is NAME=key:value,... (NAME= for the model as it is), got {spec!r}")
    kv = dict(x.split(":", 1) for x in rest.split(",") if x)
    bad = sorted(set(kv) - set(KEYS))
    if bad:
        raise SystemExit(f"unknown keys {bad} in {spec!r}; known: {', '.join(KEYS)}")
    return name, kv


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("model", type=Path)
    ap.add_argument("variants", nargs="+", metavar="NAME=key:value,...")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--preset", default="gpu-default", help="the render settings the variants start from")
    args = ap.parse_args()
    variants = [parse_variant(s) for s in args.variants]
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cfg = build_config(args.preset, [])
    model, info = load_model(args.model, dev)
    data = load_head_data(args.dataset, EXPRESSIONS)
    ids = list(range(data.num_train, data.num_frames))
    opening = model.mouth_basis().opening_direction()
    mix, gain = model.predictor.mix.clone(), model.predictor.gain.clone()
    level_on = split_level(info.mouth, info.fps, args.dataset, data, cfg.render.mouth_level)  # reads the clip's audio
    args.out.mkdir(parents=True, exist_ok=True)
    for name, kv in variants:
        level = None if kv.get("level") == "off" else level_on
        support = mouth_support(info.mouth, float(kv.get("support", cfg.render.mouth_support)), dev)
        with torch.no_grad():
            model.predictor.gain.copy_(gain * float(kv.get("gain", 1.0)))
            model.predictor.mix.copy_(mix if "cross" not in kv
                                      else torch.as_tensor(cross_mix(opening, float(kv["cross"])), dtype=mix.dtype))
        t0 = time.perf_counter()
        frames, _ = render_split(model, data, ids, dev, cfg.render.chunk_rays, 4, precision=cfg.render.precision,
                                 level=level, support=support)
        save_jpegs(args.out / f"val_renders_{name}.npz", frames, ids=np.array(ids))
        print(f"{name}: {len(ids)} frames in {time.perf_counter() - t0:.0f} s on {dev.type}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
