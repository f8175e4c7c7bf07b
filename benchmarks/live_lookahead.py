"""What live's shorter look-ahead costs the lips: held-out mouth-code correlation of a trained model's
predictor with the truth (codes of the measured landmarks), for features computed as ``render`` computes
them (one-second blocks, the predictor's whole look-ahead) and as ``live`` does (each frame's features as
soon as its audio is in, the mouth reading ``lookahead`` frames ahead).

    python benchmarks/live_lookahead.py MODEL [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from syncanim.audio.waveform import read_audio
from syncanim.data.dataset import load_head_data
from syncanim.data.manifest import DatasetLayout
from syncanim.model.folder import dataset_path, load_model
from syncanim.model.head import EXPRESSIONS
from syncanim.registry import default_registry
from syncanim.stream.speech import SpeechStream, build_extractor, stream_features


def predict(pred, feats: np.ndarray, lookahead: int) -> np.ndarray:
    """Codes [T, C] of every frame, the predictor seeing features up to ``lookahead`` frames ahead."""
    f = torch.from_numpy(feats)
    n, out = len(feats), []
    with torch.no_grad():
        for k in range(n):
            lo, hi = max(0, k - pred.past), min(n - 1, k + lookahead)
            out.append(pred(f[lo:hi + 1], torch.tensor([k - lo]))[0].numpy())
    return np.stack(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    model, info = load_model(a.model)
    root = dataset_path(a.model, info)
    data = load_head_data(root, EXPRESSIONS)
    truth = model.mouth_basis().encode(data.landmarks)  # [T, C]
    held = np.arange(data.num_train, data.num_frames)
    held = held[np.isfinite(truth[held]).all(1)]  # frames with a face
    wave = read_audio(DatasetLayout(root).audio, info.sample_rate)
    ex = build_extractor(dict(info.audio), default_registry(), "cpu")
    n = data.num_frames
    render = stream_features(ex, wave, info.fps, n).features
    st = SpeechStream(ex, info.fps, info.sample_rate)
    live = np.concatenate([st.push(wave.samples[i:i + 320]).features for i in range(0, len(wave.samples), 320)]
                          + [st.finish(n).features])[:n]
    pred = model.predictor
    rows = []
    for name, feats, looks in (("render", render, [pred.future]), ("live", live, [pred.future, 2, 1, 0])):
        for la in looks:
            c = predict(pred, feats, la)[held]
            corr = [float(np.corrcoef(c[:, j], truth[held, j])[0, 1]) for j in range(3)]
            rows.append({"features": name, "lookahead": la, "held_out_corr": [round(x, 3) for x in corr],
                         "frames": len(held)})
            print(rows[-1])
    if a.json:
        a.json.write_text(json.dumps({"model": str(a.model), "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
