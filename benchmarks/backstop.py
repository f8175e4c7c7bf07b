"""The mouth backstop (``syncanim.model.backstop``) on a trained model: its held-out frames (and new speech) drawn
with it and without, for ``lip_holes.py`` (frames where the backdrop shows through the lips) and ``lipsync.py``.

A model trained before the backstop was kept gets the one its dataset gives (the ellipsoid from the canonical
landmarks, the colour from the training frames), as training now makes it.

    python benchmarks/backstop.py DATASET MODEL --out DIR [--variants on off] [--measured] [--speech FOLDER]
        [--device cpu]

Writes ``DIR/val_renders_{on,off}.npz`` (the predicted codes, mouth level and support as ``head_gpu.py`` draws them),
with ``--measured`` ``val_renders_measured_{on,off}.npz`` (the codes of the real frames), with ``--speech`` (a folder
of ``NAME.npy`` features, as ``head_gpu.py --speech``) ``speech_NAME_{on,off}.npz``, and ``DIR/backstop.json`` (the
backstop, the seconds each took).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from head_gpu import render_conditioned, render_speech, save_jpegs

from syncanim.config import build_config
from syncanim.data.dataset import load_head_data
from syncanim.face.mouth import mouth_opening
from syncanim.model.backstop import backstop_ellipsoid, mouth_inside_colour
from syncanim.model.conditioning import FrameBatch
from syncanim.model.folder import load_model
from syncanim.model.head import EXPRESSIONS
from syncanim.motion.mouth_support import mouth_support
from syncanim.render.validation import render_split, split_level


def dataset_backstop(data) -> np.ndarray:
    """The backstop ``[3, 3]`` (centre, half-axes, colour) training makes from the dataset ``data``."""
    n = data.num_train
    inside = mouth_inside_colour(data.frames[:n], data.landmarks[:n], mouth_opening(data.landmarks[:n]))
    return np.concatenate([backstop_ellipsoid(data.canonical), inside[None]])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path)
    ap.add_argument("model", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--variants", nargs="+", choices=("on", "off"), default=["on", "off"])
    ap.add_argument("--measured", action="store_true", help="also draw the held-out frames with their real codes")
    ap.add_argument("--speech", type=Path, help="a folder of NAME.npy speech features to draw too")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    cfg = build_config("gpu-default", [f"runtime.device={args.device}"])
    model, info = load_model(args.model, device)
    data = load_head_data(args.dataset, EXPRESSIONS)
    kept = model.mouth_backstop.detach().cpu().numpy()
    backstop = kept if (kept[1] > 0).all() else dataset_backstop(data)
    ids = list(range(data.num_train, data.num_frames))
    support = mouth_support(info.mouth, cfg.render.mouth_support, device)
    report = {"benchmark": "backstop", "command": "python " + " ".join(sys.argv), "device": args.device,
              "model_kept_one": bool((kept[1] > 0).all()), "backstop": backstop.round(5).tolist(), "seconds": {}}
    for variant in args.variants:
        with torch.no_grad():
            model.mouth_backstop.copy_(torch.from_numpy(backstop if variant == "on" else np.zeros((3, 3), np.float32)))
        model._backstop_on = variant == "on"
        t0 = time.perf_counter()
        # a fresh mouth level for each pass: it follows the loudness of the frames heard so far
        level = split_level(info.mouth, info.fps, args.dataset, data, cfg.render.mouth_level)
        frames, _ = render_split(model, data, ids, device, cfg.render.chunk_rays, 4, precision=cfg.render.precision,
                                 level=level, support=support)
        save_jpegs(args.out / f"val_renders_{variant}.npz", frames, ids=np.array(ids))
        report["seconds"][f"val_{variant}"] = time.perf_counter() - t0
        if args.measured:
            codes = torch.from_numpy(model.mouth_basis().encode(data.landmarks[ids])).float().to(device)
            with torch.no_grad():
                cond = model.condition(FrameBatch(torch.from_numpy(data.expressions[ids]).to(device), codes=codes))
            save_jpegs(args.out / f"val_renders_measured_{variant}.npz",
                       render_conditioned(model, info, data, cond, np.array(ids), device, cfg), ids=np.array(ids))
        for p in sorted(args.speech.glob("*.npy")) if args.speech else []:
            r = render_speech(model, info, data, p, args.out / f"speech_{p.stem}_{variant}.npz", device, cfg,
                              args.model, compare=False)
            report["seconds"][f"speech_{p.stem}_{variant}"] = r["render_s"]
        print(json.dumps({variant: report["seconds"]}), flush=True)
    (args.out / "backstop.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
