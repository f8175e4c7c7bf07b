"""How well does the torso field fit, and generalise to held-out frames, for different settings? No head:
the torso is fitted exactly as ``syncanim train`` fits it (:func:`syncanim.train.torso.fit_torso`) and
scored on the dataset's held-out frames over their person boxes, and over the whole frame.

    python benchmarks/torso_fit.py DATASET [NAME=key:value,key:value ...] [--seeds 0] [--json OUT]

Keys set ``[train.torso]`` (:class:`~syncanim.config.TorsoTrainConfig`); ``base=`` is the defaults. Runs on
CUDA when there is one. The training target is what the head is trained over (the frame with the head
replaced by the plate), so these figures bound how well head + torso can match held-out frames below the head.
Two yardsticks come first: the training frames' mean image (a body that never moves), and for each held-out frame the
training frame nearest it, picked with the truth (the clip's own best-matching body; also with the head).
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np
import torch

from syncanim.config import TorsoTrainConfig
from syncanim.data.dataset import load_head_data
from syncanim.data.files import write_json_atomic
from syncanim.model.head import EXPRESSIONS
from syncanim.train.torso import fit_torso, person_boxes


def _value(v: str) -> float | int:
    return float(v) if any(c in v for c in ".e") else int(v)


def whole_frame_psnr(field, backgrounds: torch.Tensor, codes: torch.Tensor, ids: range) -> float:
    """PSNR (dB) of the field's torso over its plate against ``backgrounds`` [N, H, W, 3] uint8, whole frames ``ids``."""
    se, count = 0.0, 0
    with torch.no_grad():
        for s in range(ids.start, ids.stop, 8):
            f = list(range(s, min(s + 8, ids.stop)))
            img = field.render(codes[f])  # [B, H, W, 3] float in [0, 1]
            se += float(((img * 255 - backgrounds[f].float()) ** 2).sum())
            count += img.numel()
    return 10 * math.log10(255.0 ** 2 / max(se / max(count, 1), 1e-12))


def nearest_frame_psnr(backgrounds: torch.Tensor, n: int, shrink: int = 4) -> float:
    """A retrieval yardstick, the clip's own best-matching body: each held-out frame of ``backgrounds``
    ``[N, H, W, 3] uint8`` (frames ``n ..``) scored against the training frame (``0 .. n - 1``) closest to it,
    picked with the truth at 1/``shrink`` of the size: PSNR (dB) over all held-out pixels, as :func:`whole_frame_psnr`."""
    def small(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(x.permute(0, 3, 1, 2).float(), shrink).flatten(1)  # [B, D]

    train = torch.cat([small(backgrounds[s:min(s + 64, n)]) for s in range(0, n, 64)])  # [n, D]
    se = 0.0
    for i in range(n, backgrounds.shape[0]):
        best = int(torch.cdist(small(backgrounds[i:i + 1]), train).argmin())
        se += float(((backgrounds[i].float() - backgrounds[best].float()) ** 2).mean())
    return 10 * math.log10(255.0 ** 2 / max(se / max(1, backgrounds.shape[0] - n), 1e-12))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("variants", nargs="*", default=["base="])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--json")
    args = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = load_head_data(args.dataset, EXPRESSIONS)
    n, total = data.num_train, data.manifest.num_frames
    backgrounds = torch.from_numpy(data.backgrounds).to(dev)
    boxes = person_boxes(data.labels, margin=data.size // 32)
    result = {"benchmark": "torso_fit", "command": "python " + " ".join(sys.argv), "device": dev.type,
              "train_frames": n, "held_out_frames": total - n, "variants": {}}
    # yardstick: the training frames' mean image (a torso that never moves) against the held-out frames
    mean_img = backgrounds[:n].float().mean(0)
    mse = float(((backgrounds[n:].float() - mean_img) ** 2).mean())
    result["mean_image_held_out_frame_psnr"] = 10 * math.log10(255.0 ** 2 / max(mse, 1e-12))
    print(f"mean training image: held-out frame PSNR {result['mean_image_held_out_frame_psnr']:.2f} dB", flush=True)
    result["nearest_training_frame_held_out_frame_psnr"] = nearest_frame_psnr(backgrounds, n)
    # the same for the real frames, head included: what the whole person of the nearest training frame scores
    result["nearest_training_frame_whole_person_psnr"] = nearest_frame_psnr(torch.from_numpy(data.frames), n)
    print("nearest training frame (picked with the truth): held-out frame PSNR "
          f"{result['nearest_training_frame_held_out_frame_psnr']:.2f} dB, with the head "
          f"{result['nearest_training_frame_whole_person_psnr']:.2f} dB", flush=True)
    for spec in args.variants:
        name, _, sets = spec.partition("=")
        cfg = TorsoTrainConfig(**{k: _value(v) for k, v in (x.split(":", 1) for x in sets.split(",") if x)})
        runs = []
        for seed in args.seeds:
            gen = torch.Generator(device=dev)
            gen.manual_seed(seed)
            field, report = fit_torso(backgrounds, data.rotation, data.translation, data.plate, boxes, n, cfg, gen)
            codes = field.codes(data.rotation, data.translation)
            runs.append({"seed": seed, "seconds": report.seconds, "train_loss_psnr": -10 * math.log10(report.loss),
                         "held_out_box_psnr": report.holdout_psnr,
                         "held_out_frame_psnr": whole_frame_psnr(field, backgrounds, codes, range(n, total)),
                         "train_frame_psnr": whole_frame_psnr(field, backgrounds, codes, range(0, n, 10))})
            r = runs[-1]
            print(f"{name:16s} seed {seed}: box {r['held_out_box_psnr']:.2f} frame {r['held_out_frame_psnr']:.2f} "
                  f"(train frames {r['train_frame_psnr']:.2f}) dB, {r['seconds']:.0f} s", flush=True)
        result["variants"][name] = {"settings": sets, "runs": runs,
                                    "mean_held_out_box_psnr": float(np.mean([r["held_out_box_psnr"] for r in runs]))}
    if args.json:
        write_json_atomic(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
