"""Many live streams of one model on one device: each tick, every stream's next frame, drawn together.

    python benchmarks/many_streams.py MODEL --speech WAV --out FILE.json [--streams 1 4 8 16 24] [--ticks 100]
    python benchmarks/many_streams.py MODEL --features FEATS.npz --out FILE.json ...   (features saved before)

N :class:`~syncanim.stream.avatar.AvatarStream` of one avatar (head + torso, the motion syncer, look-ahead 1, as
``syncanim live``), each hearing the speech from another point. One tick = 1 frame of every stream: each stream
prepares its frame (motion syncer; then :func:`~syncanim.stream.avatar.prepare_calls` gives all N frames their mouth
codes and conditioning in one call each, or with ``--no-batched-prepare`` each stream on its own), then
:func:`~syncanim.stream.avatar.launch_calls` draws all N in one render call, back on the host as uint8. On CUDA
(``--pipelined``, the default there) tick k is drawn while tick k + 1 is prepared on a second CUDA stream. Per N:
the tick period (p50 / p95), each frame's latency from its tick's start (its features in) to its picture on the
host (p50 / p95), aggregate frames per second, the prepare part and the wait for the draw after it. The speech
features are computed beforehand (their cost per frame of one stream is reported alone): streams of 25 fps need
a tick within 40 ms. By default ticks follow one another as fast as they can (the most frames a second); with
``--pace 25`` tick k starts at k / 25 s, as live speech arrives, and a frame's latency counts from then (a tick
that starts late adds its lateness). ``--count-waits`` reports how often a tick's prepare made the host wait for
the device. ``--render-setting KEY=VALUE``: a render-only setting of the model (``runtime.render_settings``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from syncanim.audio.waveform import read_audio
from syncanim.bench.timing import environment, percentile
from syncanim.registry import default_registry
from syncanim.stream.avatar import AvatarStream, StreamSettings, launch_calls, load_avatar, prepare_calls
from syncanim.stream.speech import FeatureBlock, build_extractor, stream_features


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _images(drawn: list[list]) -> np.ndarray:
    """The images of a tick's frames, stream after stream: [N, H, W, 3] uint8."""
    return np.stack([f.image for frames in drawn for f in frames])


def run(avatar, feats: FeatureBlock, n: int, ticks: int, warmup: int, settings: StreamSettings,
        batched: bool = True, draw: bool = True, pipelined: bool = False, keep: list | None = None,
        pace: float | None = None, count_waits: bool = False) -> dict:
    """N streams for ``warmup + ticks`` ticks. With ``pipelined`` (CUDA), tick k's frames are drawn
    (:func:`launch_calls`) while tick k + 1 is prepared on a second CUDA stream; otherwise each tick is prepared,
    then drawn and waited for. The tick period is the time between two ticks' starts; a frame's latency is from
    its tick's start (its features in) to its picture on the host: pipelined, from CUDA events (when the copy
    landed: what a thread waiting on it would see; this loop collects it only after the next tick's prepare).
    ``keep``: a list the drawn frames are appended to (each tick's, [N, H, W, 3] uint8). ``pace``: ticks a second
    (after the warm-up, tick k starts at k / pace s, or late if the one before it ran long; latency counts from
    when it was due).
    ``count_waits``: count the host's waits for the device (synchronising calls) during each tick's prepare."""
    device = avatar.device
    total = len(feats.rms)
    streams = [AvatarStream(avatar, settings) for _ in range(n)]
    offsets = [(i * 97) % total for i in range(n)]
    # a high-priority stream: its small kernels go ahead of the draw's blocks instead of waiting for its kernels
    side = torch.cuda.Stream(device, priority=-1) if pipelined and device.type == "cuda" else None
    period_ms, latency_ms, prep_ms, wait_ms = [], [], [], []
    queued: list[list] = [[] for _ in range(n)]
    pending = None  # (PendingCalls, (its tick's start: host time, CUDA event; its frames' landing event), counted)
    last = None
    late_ms, waits = [], []
    start = time.perf_counter()
    for k in range(warmup + ticks):
        due = None
        if pace and k >= warmup:  # the warm-up ticks (graph capture) run as they can; the clock starts after them
            if k == warmup:
                start = time.perf_counter()
            due = start + (k - warmup) / pace
            ahead = due - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        t0 = time.perf_counter()
        lateness = 0.0 if due is None else max(0.0, t0 - due)
        begun = None
        if side is not None:
            begun = torch.cuda.Event(enable_timing=True)
            begun.record(side)
        blocks = []
        for i, st in enumerate(streams):
            j = (k + offsets[i]) % total
            blocks.append((st, FeatureBlock(k, feats.features[j:j + 1], feats.rms[j:j + 1])))
        with torch.cuda.stream(side) if side is not None else contextlib.nullcontext(), \
                host_waits(count_waits and device.type == "cuda") as waited:
            prepared = prepare_calls(blocks) if batched else [st.prepare(b) for st, b in blocks]
        if side is None:
            _sync(device)
        t1 = time.perf_counter()
        for i, calls in enumerate(prepared):
            queued[i] += calls
        if pending is not None:  # the last tick's frames (drawn while this tick was prepared)
            calls, (began, begun_at, landed, late), counted = pending
            drawn = calls.frames()
            if keep is not None:
                keep.append(_images(drawn))
            if counted:
                latency_ms.append(late * 1e3 + (begun_at.elapsed_time(landed) if landed is not None
                                                else (time.perf_counter() - began) * 1e3))
                wait_ms.append((time.perf_counter() - t1) * 1e3)
            pending = None
        full = all(queued)  # every stream has a frame to draw (after the first look-ahead ticks)
        counted = k >= warmup and full
        if full:
            picked = [(streams[i], queued[i].pop(0)) for i in range(n)]
            if draw:
                if side is not None:
                    torch.cuda.current_stream(device).wait_stream(side)  # the conditioning, prepared on ``side``
                launched = launch_calls(picked)
                pending = (launched, (t0, begun, launched.landed, lateness), counted)
                if side is None:
                    t2 = time.perf_counter()
                    drawn = pending[0].frames()
                    if keep is not None:
                        keep.append(_images(drawn))
                    if counted:
                        latency_ms.append((lateness + time.perf_counter() - t0) * 1e3)
                        wait_ms.append((time.perf_counter() - t2) * 1e3)
                    pending = None
            elif counted:
                latency_ms.append((t1 - t0) * 1e3)
        if counted:
            prep_ms.append((t1 - t0) * 1e3)
            late_ms.append(lateness * 1e3)
            waits.append(waited[0])
            if last is not None:
                period_ms.append((t0 - last) * 1e3)
            last = t0
    if pending is not None and keep is not None:
        keep.append(_images(pending[0].frames()))

    def pct(v: list[float]) -> dict:
        return {"p50": round(float(np.median(v)), 2), "p95": round(percentile(v, 95), 2), "max": round(max(v), 2)}

    med = float(np.median(period_ms))
    return {"streams": n, "batched_prepare": batched, "drawn": draw, "pipelined": side is not None,
            "ticks": len(period_ms), "tick_ms": pct(period_ms), "latency_ms": pct(latency_ms),
            "prepare_ms": pct(prep_ms), "draw_wait_ms": pct(wait_ms) if wait_ms else None,
            "aggregate_fps": round(1000 * n / med, 1), "keeps_25fps": bool(percentile(period_ms, 95) <= 40.0),
            "pace": pace, "late_ms": pct(late_ms) if pace else None,
            "host_waits_per_prepare": pct(waits) if count_waits and device.type == "cuda" else None}


@contextlib.contextmanager
def host_waits(on: bool):
    """Count the calls that make the host wait for the device inside the block (CUDA's synchronising calls, as
    ``torch.cuda.set_sync_debug_mode`` reports them) -> a one-item list, the count once the block is done."""
    import warnings

    got = [0]
    if not on:
        yield got
        return
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            yield got
    finally:
        torch.cuda.set_sync_debug_mode(0)
    got[0] = sum("synchroniz" in str(w.message) for w in seen)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--speech", type=Path, help="the speech every stream hears (from different points)")
    ap.add_argument("--features", type=Path, default=None, metavar="NPZ",
                    help="the speech's features computed before (written here from --speech when the file is new)")
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
    ap.add_argument("--pipelined", action=argparse.BooleanOptionalAction, default=None,
                    help="prepare tick k + 1 on a second CUDA stream while tick k draws [on with CUDA]")
    ap.add_argument("--render-samples", type=int, default=None, help="the head's model.render_samples instead")
    ap.add_argument("--render-setting", action="append", default=[], metavar="KEY=VALUE",
                    help="a render-only setting of the model (runtime.render_settings), e.g. render_occupancy_grow=0")
    ap.add_argument("--pace", type=float, default=None, metavar="FPS",
                    help="start tick k at k / FPS s (live speech) instead of as soon as the last one allows")
    ap.add_argument("--count-waits", action="store_true",
                    help="count the host's waits for the device in each tick's prepare (CUDA)")
    ap.add_argument("--check", type=int, default=0, metavar="N",
                    help="first draw N streams for 12 ticks pipelined and prepared-then-drawn: the same frames?")
    args = ap.parse_args()
    device = torch.device(args.device)
    render_settings = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.render_setting)}
    if args.render_samples is not None:
        render_settings["render_samples"] = args.render_samples
    avatar = load_avatar(args.model, device, render_settings=render_settings or None)
    info = avatar.info
    if args.features is not None and args.features.exists():
        with np.load(args.features) as z:
            feats, feat_ms = FeatureBlock(0, z["features"], z["rms"]), float(z["ms_per_frame"])
    elif args.speech is None:
        ap.error("give --speech (or --features of a file that exists)")
    else:
        wave = read_audio(args.speech, info.sample_rate)
        frames = int(min(args.seconds, len(wave.samples) / wave.sample_rate) * info.fps)
        extractor = build_extractor(dict(info.audio), default_registry(), device)
        t0 = time.perf_counter()
        feats = stream_features(extractor, wave, info.fps, frames)
        feat_ms = (time.perf_counter() - t0) * 1e3 / frames
        if args.features is not None:
            args.features.parent.mkdir(parents=True, exist_ok=True)
            np.savez(args.features, features=feats.features, rms=feats.rms, ms_per_frame=feat_ms)
    static = device.type == "cuda" if args.static is None else args.static
    settings = StreamSettings(pose="audio", frames_per_call=1, lookahead=1, precision=args.precision,
                              chunk_rays=1 << 22, static=static)
    report = {"benchmark": "many_streams", "environment": environment(), "model": args.model.name,
              "image_size": info.image_size, "torso": avatar.torso is not None, "precision": args.precision,
              "static": static, "render_samples": avatar.model.config.render_samples or avatar.model.config.samples,
              "render_settings": render_settings, "features_ms_per_frame_one_stream_whole_clip": round(feat_ms, 2),
              "runs": []}
    if args.check:
        frames = {}
        for piped in (False, True):
            frames[piped] = []
            run(avatar, feats, args.check, 12, 2, settings, args.batched_prepare, True, piped, frames[piped])
        a, b = np.stack(frames[False]).astype(int), np.stack(frames[True]).astype(int)
        diff = int(np.abs(a - b).max()) if a.shape == b.shape else -1
        report["check"] = {"streams": args.check, "ticks": len(a), "max_abs_difference": diff}
        print(f"check: {args.check} streams, {len(a)} ticks pipelined against prepared-then-drawn: max |difference| "
              f"{diff} (of 255)", flush=True)
        if diff < 0 or diff > 1:
            return 1
    for n in args.streams:
        r = run(avatar, feats, n, args.ticks, args.warmup, settings, args.batched_prepare, not args.prepare_only,
                device.type == "cuda" if args.pipelined is None else args.pipelined, pace=args.pace,
                count_waits=args.count_waits)
        report["runs"].append(r)
        print(f"{n:3d} streams: tick {r['tick_ms']['p50']:7.2f} ms p50, {r['tick_ms']['p95']:7.2f} p95; latency "
              f"{r['latency_ms']['p50']:7.2f} p50, {r['latency_ms']['p95']:7.2f} p95 (prepare "
              f"{r['prepare_ms']['p50']:.2f}, then waited for the draw {(r['draw_wait_ms'] or {}).get('p50', 0):.2f}); "
              f"{r['aggregate_fps']:7.1f} frames/s"
              + (f"; late {r['late_ms']['p95']:.2f} ms p95" if r["late_ms"] else "")
              + (f"; host waits in prepare {r['host_waits_per_prepare']['p50']:.0f} p50" if r["host_waits_per_prepare"]
                 else ""), flush=True)
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
