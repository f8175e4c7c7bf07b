"""Does the rendered mouth follow the speech? Score renders brought back from a GPU run (or made here).

    python benchmarks/lipsync.py DATASET --val val_renders.npz \
        [--speech NAME=speech_NAME.npz:AUDIO ...] [--json OUT.json] [--strip OUT.png]

``val_renders.npz`` and ``speech_*.npz`` are what ``benchmarks/head_gpu.py`` writes (frames as JPEG
bytes ``f0, f1, ...``; ``ids`` = the dataset frames of the validation renders). Either may instead be
a video: ``syncanim render MODEL --audio AUDIO -o NAME.mp4`` for new speech, and for ``--val`` a video of the
dataset's held-out frames in order, such as ``val_side_by_side.mp4`` of ``syncanim render MODEL --split val``
(a video twice as wide as the dataset's frames is render | truth: its left half is read). Needs MediaPipe.

Held-out frames (the subject's own speech, never trained on): mouth-opening correlation, lag and
amplitude ratio of the rendered mouth against the real one, the correlation over the voiced frames alone and the share
of pauses (:func:`~syncanim.metrics.mouth.voiced_correlation`), LMD (and ``lmd_centred``, each frame's lips centred
on their mean point first: the share of LMD that is the mouth's shape rather than where it sits), and how far the rendered lips and eye corners sit from
the real ones on average (``offset_px``). New speech: the spread of the
rendered mouth opening while the audio has speech, over the subject's own spread while speaking in the
training frames (1 = the mouth moves as much as the subject's did). The strip shows mouth crops over
time: for held-out frames the render above the truth, for each new speech the render alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from syncanim.audio.waveform import read_audio
from syncanim.data.dataset import load_head_data
from syncanim.data.files import finite_json
from syncanim.data.manifest import DatasetLayout
from syncanim.eval.sync import frame_rms
from syncanim.eval.video_stats import track_landmarks
from syncanim.face.mouth import LIPS, mouth_opening
from syncanim.media.video import iter_frames
from syncanim.metrics.lmd import lmd_stats, mouth_landmarks
from syncanim.metrics.mouth import (
    PAUSE_DB,
    amplitude_ratio,
    opening_correlation,
    speaking_spread,
    speech_frames,
    voiced_correlation,
)
from syncanim.model.head import EXPRESSIONS


def read_renders(path: Path, data) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Frames [T, H, W, 3] uint8 RGB and the other arrays of a JPEG npz, or of a video (``ids``: the held-out
    frames of ``data``, whose frame rate it is read at)."""
    if path.suffix == ".npz":
        return read_jpegs(path)
    frames = np.stack([f for _, f in iter_frames(path, data.manifest.fps)])
    if frames.shape[2] == 2 * data.size:  # render | truth side by side
        frames = np.ascontiguousarray(frames[:, :, :data.size])
    return frames, {"ids": np.arange(data.num_train, data.num_train + len(frames))}


def read_jpegs(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Frames [T, H, W, 3] uint8 RGB and the other arrays of a JPEG npz."""
    z = np.load(path)
    n = sum(1 for k in z.files if k.startswith("f") and k[1:].isdigit())
    frames = np.stack([cv2.cvtColor(cv2.imdecode(z[f"f{i}"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for i in range(n)])
    return frames, {k: z[k] for k in z.files if not (k.startswith("f") and k[1:].isdigit())}


def mouth_crop(image: np.ndarray, points: np.ndarray, size: int = 96) -> np.ndarray:
    """A square crop [size, size, 3] around the mouth points [K, 2] (pixels) of ``image``."""
    c = np.nanmean(points[:, :2], 0)
    half = 0.9 * float(np.nanmax(np.ptp(points[:, :2], 0)))
    if not np.isfinite(half) or half < 4:
        return np.zeros((size, size, 3), np.uint8)
    x0, y0 = int(c[0] - half), int(c[1] - half)
    h = int(2 * half)
    pad = np.pad(image, ((h, h), (h, h), (0, 0)))
    return cv2.resize(pad[y0 + h:y0 + 2 * h, x0 + h:x0 + 2 * h], (size, size), interpolation=cv2.INTER_AREA)


def score_val(data, frames: np.ndarray, ids: np.ndarray, voiced: np.ndarray) -> tuple[dict, np.ndarray]:
    """The held-out renders ``frames [N, H, W, 3]`` of the dataset frames ``ids [N]`` against the truth;
    ``voiced [num_frames] bool``: the dataset's frames that are not pauses."""
    pts, _ = track_landmarks(iter(frames))
    rendered = mouth_opening(pts)
    truth = mouth_opening(data.landmarks[ids])
    corr, lag = opening_correlation(rendered, truth)
    v = voiced[ids]
    drawn_lips, real_lips = mouth_landmarks(iter(frames)), mouth_landmarks(iter(data.frames[ids]))
    lm = lmd_stats(drawn_lips, real_lips, data.size)
    # each frame's lips centred on their mean point first (the papers' LMDMeter): what is left is the mouth's shape
    centred = lmd_stats(drawn_lips, real_lips, data.size, centered=True)
    picks = np.argsort(truth)[np.linspace(0, len(ids) - 1, 10).round().astype(int)]
    picks = np.sort(picks)
    ref = data.landmarks[ids][:, LIPS]
    strip = np.concatenate([np.concatenate([mouth_crop(frames[i], ref[i]), mouth_crop(data.frames[ids[i]], ref[i])], 0)
                            for i in picks], 1)
    # where the rendered lips and eye corners sit against the real ones (x, y pixels; + = right, down): LMD's share
    # that is a shift rather than a shape
    offset = {name: [round(float(v), 3) for v in np.nanmean(pts[:, idx, :2] - data.landmarks[ids][:, idx, :2], (0, 1))]
              for name, idx in (("lips", LIPS), ("eye_corners", [33, 133, 263, 362]))}
    return {"frames": len(ids), "mouth_correlation": corr, "mouth_lag": lag,
            "voiced_correlation": voiced_correlation(rendered, truth, v, lag), "pause_share": float(1 - v.mean()),
            "mouth_amplitude": amplitude_ratio(rendered, truth), "lmd": lm.value, "lmd_centred": centred.value,
            "lmd_frames": lm.frames_used,
            "offset_px": offset}, strip


def score_speech(frames: np.ndarray, audio: Path, fps: float, subject_spread: float) -> tuple[dict, np.ndarray]:
    pts, found = track_landmarks(iter(frames))
    opening = mouth_opening(pts)
    wave = read_audio(audio, 16000)
    speech = speech_frames(frame_rms(wave.samples, wave.sample_rate, fps, 0, len(frames)))
    spread = speaking_spread(opening, speech)
    picks = np.linspace(0, min(len(frames), int(4 * fps)) - 1, 10).round().astype(int)  # the first 4 s
    strip = np.concatenate([mouth_crop(frames[i], pts[i, LIPS]) for i in picks], 1)
    return {"frames": len(frames), "speech_frames": int(speech.sum()), "faces": int(found.sum()),
            "spread": spread, "spread_ratio": spread / subject_spread}, strip


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--val", type=Path, required=True)
    ap.add_argument("--speech", action="append", default=[], help="NAME=RENDERS.npz:AUDIO")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--strip", type=Path)
    args = ap.parse_args()
    data = load_head_data(args.dataset, EXPRESSIONS)
    fps = data.manifest.fps
    n = data.num_train
    wave = read_audio(DatasetLayout(args.dataset).audio, data.manifest.sample_rate)
    subject = speaking_spread(mouth_opening(data.landmarks[:n]),
                              speech_frames(frame_rms(wave.samples, wave.sample_rate, fps, 0, n)))
    frames, extra = read_renders(args.val, data)
    rms = frame_rms(wave.samples, wave.sample_rate, fps, 0, data.manifest.num_frames)
    val, strip = score_val(data, frames, extra["ids"], speech_frames(rms, PAUSE_DB))
    rows = [strip]
    result = {"benchmark": "lipsync", "command": "python " + " ".join(sys.argv), "dataset": args.dataset.name, "subject_spread": subject, "val": val, "speech": {}}
    print("held-out:", json.dumps(val), flush=True)
    for spec in args.speech:
        name, rest = spec.split("=", 1)
        renders, audio = rest.split(":", 1)
        frames, _ = read_renders(Path(renders), data)
        result["speech"][name], strip = score_speech(frames, Path(audio), fps, subject)
        rows.append(np.pad(strip, ((8, 0), (0, rows[0].shape[1] - strip.shape[1]), (0, 0))))
        print(f"{name}:", json.dumps(result["speech"][name]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(finite_json(result), indent=2) + "\n")
    if args.strip:
        cv2.imwrite(str(args.strip), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))
    return 0


if __name__ == "__main__":
    sys.exit(main())
