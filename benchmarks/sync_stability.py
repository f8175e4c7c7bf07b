"""How stable is the weight-free sync score on short clips of real footage, and does it tell real
footage from footage with someone else's speech under it?

    python benchmarks/sync_stability.py DATASET [DATASET ...] [--seconds 5 10] [--json OUT.json]

Each prepared dataset (real video; its prep landmarks give the mouth opening, its audio.wav the
loudness) is cut into consecutive clips of each length. Every clip is scored twice: with its own audio,
and with the audio of the clip half the recording away ("swapped": real speech of the same voice, not
the speech this mouth was saying). Reports, per length, the spread of offset and confidence over the
clips and how often the real clip's confidence beats its swapped version's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from syncanim.audio.waveform import read_audio
from syncanim.data.manifest import DatasetLayout, read_manifest
from syncanim.eval.sync import frame_rms, sync_score
from syncanim.face.mouth import mouth_opening

MAX_LAG = 10


def clip_scores(opening: np.ndarray, samples: np.ndarray, rate: int, fps: float, frames: int) -> dict:
    """Scores of consecutive ``frames``-long clips, each with its own and with swapped audio."""
    n = len(opening)
    starts = list(range(0, n - frames + 1, frames))
    real, swapped = [], []
    for s in starts:
        other = (s + n // 2) % (n - frames + 1)  # about half the recording away
        if abs(other - s) < frames:  # overlapping its own speech: not another clip's
            continue
        for dest, a in ((real, s), (swapped, other)):
            rms = frame_rms(samples, rate, fps, a - MAX_LAG, frames + 2 * MAX_LAG)
            r = sync_score(opening[s:s + frames], rms, fps, max_lag=MAX_LAG)
            dest.append((r.offset_frames, r.confidence))
    ok = [i for i in range(len(real)) if real[i][1] is not None and swapped[i][1] is not None]
    if not ok:
        return {"clips": len(starts), "scored": 0}
    off = np.array([real[i][0] for i in ok], float)
    conf = np.array([real[i][1] for i in ok], float)
    sconf = np.array([swapped[i][1] for i in ok], float)
    return {"clips": len(starts), "scored": len(ok),
            "offset_median": float(np.median(off)), "offset_iqr": float(np.subtract(*np.percentile(off, [75, 25]))),
            "offset_within_2_of_median": float(np.mean(np.abs(off - np.median(off)) <= 2)),
            "confidence_mean": float(conf.mean()), "confidence_std": float(conf.std()),
            "swapped_confidence_mean": float(sconf.mean()), "swapped_confidence_std": float(sconf.std()),
            "real_beats_swapped": float(np.mean(conf > sconf))}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("datasets", type=Path, nargs="+")
    ap.add_argument("--seconds", type=float, nargs="+", default=[5.0, 10.0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    result: dict = {"benchmark": "sync_stability", "command": "python " + " ".join(sys.argv), "max_lag": MAX_LAG, "datasets": {}}
    for ds in args.datasets:
        m = read_manifest(ds)
        layout = DatasetLayout(ds)
        opening = mouth_opening(np.load(layout.landmarks))
        opening[~np.load(layout.landmarks_found)] = np.nan
        wave = read_audio(layout.audio, m.sample_rate)
        result["datasets"][ds.name] = {"duration_s": m.duration_s, **{
            f"{s:g}s": clip_scores(opening, wave.samples, wave.sample_rate, m.fps, int(round(s * m.fps)))
            for s in args.seconds}}
        print(ds.name, json.dumps(result["datasets"][ds.name], indent=1), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
