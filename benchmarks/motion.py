"""Does the head move like the subject when new speech drives it? Score renders brought back from a GPU run.

    python benchmarks/motion.py SOURCE.mp4 --train-frames N --speech NAME=speech_NAME.npz ... \
        [--silence NAME:START_S:END_S] [--json OUT.json] [--plot OUT.png]

``speech_*.npz`` are what ``benchmarks/head_gpu.py`` writes (frames as JPEG bytes; with the motion
syncer, the generated ``rotation`` / ``translation`` / ``expressions`` too). Needs MediaPipe.

Each render and the subject's real footage (the first ``N`` frames of ``SOURCE.mp4``: the training
frames) are tracked the same way (:func:`syncanim.eval.video_stats.clip_stats`): head-motion amplitude
(spread of yaw/pitch/roll) and jitter (RMS second difference), blinks per minute. Also: the amplitude
and jitter as ratios to the footage's, the correlation of the generated yaw between each pair of
speeches (different speech should give different motion), and blinks inside the silent stretch of
``--silence`` (from the tracked render). The plot shows the tracked yaw and pitch over time.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lipsync import read_jpegs  # noqa: E402

from syncanim.eval.video_stats import clip_stats, head_angles  # noqa: E402
from syncanim.geometry import matrix_to_euler  # noqa: E402
from syncanim.media.video import iter_frames, probe  # noqa: E402


def figures(frames_fn, fps: float, size: tuple[int, int], name: str) -> tuple[dict, np.ndarray]:
    stats, sig = clip_stats(frames_fn, fps, size, None, stage=f"track {name}")
    angles = head_angles(sig.points, sig.found, size)
    out = {"frames": stats.frames, "faces": stats.faces_found,
           "head_amplitude_deg": stats.head.amplitude_deg if stats.head else None,
           "head_jitter_deg": stats.head.jitter_deg if stats.head else None,
           "head_amplitude_axes_deg": stats.head.amplitude_axes_deg if stats.head else None,
           "blinks": stats.blinks.count if stats.blinks else None,
           "blink_rate_per_min": stats.blinks.rate_per_min if stats.blinks else None,
           "blink_frames": stats.blinks.frames if stats.blinks else []}
    return out, angles


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("source", type=Path)
    ap.add_argument("--train-frames", type=int, required=True,
                    help="the model's training frames, all of them: the syncer is calibrated to their spread, and a "
                         "part of a clip can move much less than the whole")
    ap.add_argument("--speech", action="append", default=[], help="NAME=speech_NAME.npz")
    ap.add_argument("--silence", default=None, help="NAME:START_S:END_S, a silent stretch of one speech")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    info = probe(args.source)
    size = (info.width, info.height)
    n = args.train_frames
    subject, subject_angles = figures(lambda: (img for _, img in iter_frames(args.source, info.fps, 0, n)),
                                      info.fps, size, "subject footage")
    result: dict = {"benchmark": "motion", "source": str(args.source), "subject_footage": subject, "speech": {}}
    angles = {"subject footage": subject_angles}
    generated_yaw = {}
    for item in args.speech:
        name, path = item.split("=", 1)
        frames, extra = read_jpegs(Path(path))
        fig, ang = figures(lambda f=frames: iter(f), info.fps, (frames.shape[2], frames.shape[1]), name)
        for key in ("head_amplitude_deg", "head_jitter_deg"):
            if fig[key] is not None and subject[key]:
                fig[key.replace("_deg", "_ratio")] = fig[key] / subject[key]
        if "rotation" in extra:
            generated_yaw[name] = np.degrees(matrix_to_euler(extra["rotation"].astype(np.float64)))[:, 1]
        result["speech"][name] = fig
        angles[name] = ang
    names = list(generated_yaw)
    result["generated_yaw_correlation"] = {
        f"{a}/{b}": float(np.corrcoef(generated_yaw[a][:m], generated_yaw[b][:m])[0, 1])
        for i, a in enumerate(names) for b in names[i + 1:] for m in [min(len(generated_yaw[a]), len(generated_yaw[b]))]}
    if args.silence:
        name, a, b = args.silence.split(":")
        lo, hi = float(a) * info.fps, float(b) * info.fps
        blinks = [f for f in result["speech"][name]["blink_frames"] if lo <= f < hi]
        result["silence"] = {"speech": name, "start_s": float(a), "end_s": float(b), "blinks": len(blinks)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(angles), 1, figsize=(12, 1.8 * len(angles)), squeeze=False)
        for ax, (name, ang) in zip(axes[:, 0], angles.items(), strict=True):
            t = np.arange(len(ang)) / info.fps
            ax.plot(t, ang[:, 0] - np.nanmean(ang[:, 0]), lw=1, label="yaw")
            ax.plot(t, ang[:, 1] - np.nanmean(ang[:, 1]), lw=1, label="pitch")
            ax.set_ylabel("degrees")
            ax.set_title(name, fontsize=10, loc="left")
            ax.set_ylim(-12, 12)
        axes[0, 0].legend(loc="upper right", fontsize=8)
        axes[-1, 0].set_xlabel("time (s)")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=80)
    return 0


if __name__ == "__main__":
    sys.exit(main())
