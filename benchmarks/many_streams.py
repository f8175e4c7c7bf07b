"""Many live streams of one model on one device: each tick, every stream's next frame, drawn together.

    python benchmarks/many_streams.py MODEL --speech WAV --out FILE.json [--streams 1 4 8 16 24] [--ticks 100]

N :class:`~syncanim.stream.avatar.AvatarStream` of one avatar (head + torso, the motion syncer, look-ahead 1, as
``syncanim live``), each hearing the speech from another point. One tick = 1 frame of every stream: each stream
prepares its frame (motion syncer; then :func:`~syncanim.stream.avatar.prepare_calls` gives all N frames their mouth
codes and conditioning in one call each, or with ``--no-batched-prepare`` each stream on its own), then
:func:`~syncanim.stream.avatar.draw_calls` draws all N in one render call, back on the host as uint8. Per N: milliseconds per tick (p50 / p95: a frame's latency from its
features to its picture), aggregate frames per second, and the prepare and draw parts. The speech features are
computed beforehand (their cost per frame of one stream is reported alone): streams of 25 fps need a tick within
40 ms.
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
from syncanim.bench.timing import environment, percentile
from syncanim.registry import default_registry
from syncanim.stream.avatar import AvatarStream, StreamSettings, draw_calls, load_avatar, prepare_calls
from syncanim.stream.speech import FeatureBlock, build_extractor, stream_features


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(avatar, feats: FeatureBlock, n: int, ticks: int, warmup: int, settings: StreamSettings,
        batched: bool = True, draw: bool = True) -> dict:
    device = avatar.device
    total = len(feats.rms)
    streams = [AvatarStream(avatar, settings) for _ in range(n)]
    offsets = [(i * 97) % total for i in range(n)]
    tick_ms, prep_ms, draw_ms = [], [], []
    pending: list[list] = [[] for _ in range(n)]
    for k in range(warmup + ticks):
        _sync(device)
        t0 = time.perf_counter()
        blocks = []
        for i, st in enumerate(streams):
            j = (k + offsets[i]) % total
            blocks.append((st, FeatureBlock(k, feats.features[j:j + 1], feats.rms[j:j + 1])))
        for i, calls in enumerate(prepare_calls(blocks) if batched else [st.prepare(b) for st, b in blocks]):
            pending[i] += calls
        ready = [i for i in range(n) if pending[i]]
        _sync(device)
        t1 = time.perf_counter()
        if len(ready) == n:  # every stream has a frame to draw (after the first look-ahead ticks)
            picked = [(streams[i], pending[i].pop(0)) for i in ready]
            if draw:
                draw_calls(picked)
        t2 = time.perf_counter()
        if k >= warmup and len(ready) == n:
            tick_ms.append((t2 - t0) * 1e3)
            prep_ms.append((t1 - t0) * 1e3)
            draw_ms.append((t2 - t1) * 1e3)

    def pct(v: list[float]) -> dict:
        return {"p50": round(float(np.median(v)), 2), "p95": round(percentile(v, 95), 2), "max": round(max(v), 2)}

    med = float(np.median(tick_ms))
    return {"streams": n, "batched_prepare": batched, "drawn": draw, "ticks": len(tick_ms), "tick_ms": pct(tick_ms), "prepare_ms": pct(prep_ms),
            "draw_ms": pct(draw_ms), "aggregate_fps": round(1000 * n / med, 1),
            "keeps_25fps": bool(percentile(tick_ms, 95) <= 40.0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--speech", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8, 16, 24])
    ap.add_argument("--ticks", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20.0, help="speech read from the file")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--static", action=argparse.BooleanOptionalAction, default=None,
                    help="draw with static shapes (CUDA graphs on CUDA), as live does there [on with CUDA]")
    ap.add_argument("--batched-prepare", action=argparse.BooleanOptionalAction, default=True,
                    help="one mouth predictor and conditioning call for every stream's frame a tick [on]")
    ap.add_argument("--prepare-only", action="store_true", help="time the streams' prepare alone (no drawing)")
    args = ap.parse_args()
    device = torch.device(args.device)
    avatar = load_avatar(args.model, device)
    info = avatar.info
    wave = read_audio(args.speech, info.sample_rate)
    frames = int(min(args.seconds, len(wave.samples) / wave.sample_rate) * info.fps)
    extractor = build_extractor(dict(info.audio), default_registry(), device)
    t0 = time.perf_counter()
    feats = stream_features(extractor, wave, info.fps, frames)
    feat_ms = (time.perf_counter() - t0) * 1e3 / frames
    static = device.type == "cuda" if args.static is None else args.static
    settings = StreamSettings(pose="audio", frames_per_call=1, lookahead=1, precision=args.precision,
                              chunk_rays=1 << 22, static=static)
    report = {"benchmark": "many_streams", "environment": environment(), "model": args.model.name,
              "image_size": info.image_size, "torso": avatar.torso is not None, "precision": args.precision,
              "static": static, "features_ms_per_frame_one_stream_whole_clip": round(feat_ms, 2), "runs": []}
    for n in args.streams:
        r = run(avatar, feats, n, args.ticks, args.warmup, settings, args.batched_prepare, not args.prepare_only)
        report["runs"].append(r)
        print(f"{n:3d} streams: tick {r['tick_ms']['p50']:7.2f} ms p50, {r['tick_ms']['p95']:7.2f} p95 "
              f"(prepare {r['prepare_ms']['p50']:.2f}, draw {r['draw_ms']['p50']:.2f}); "
              f"{r['aggregate_fps']:7.1f} frames/s", flush=True)
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
