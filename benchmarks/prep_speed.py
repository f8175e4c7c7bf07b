"""Prep speed: wall time of ``syncanim prep`` (start-up included) against the clip's duration.

Target: at most 0.5x real time for a 60 s, 25 fps, 512x512 clip with the default speech features (Whisper base).

    python benchmarks/prep_speed.py VIDEO [--seconds 60] [--repeat 3] [--json benchmarks/results/prep_speed.json]

The clip is cut to ``--seconds`` by stream copy (no re-encoding), then prepped from scratch in a
new folder each repeat, as a separate process, so imports and worker start-up are counted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cut(src: Path, dst: Path, seconds: float) -> None:
    """Copy the first ``seconds`` of every stream of ``src`` into ``dst`` without re-encoding."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        streams = [s for s in inp.streams if s.type in ("video", "audio")]
        mapping = {s.index: out.add_stream_from_template(s) for s in streams}
        for pkt in inp.demux(streams):
            if pkt.dts is None or pkt.pts is None:
                continue
            if float(pkt.pts * pkt.time_base) >= seconds:
                continue
            pkt.stream = mapping[pkt.stream.index]
            out.mux(pkt)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", type=Path)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        cut(args.video, clip, args.seconds)
        walls, manifests = [], []
        for i in range(args.repeat):
            out = Path(tmp) / f"ds{i}"
            cmd = [sys.executable, "-m", "syncanim.cli", "-q", "prep", str(clip), "--out", str(out), "--json"]
            if args.workers:
                cmd += ["--workers", str(args.workers)]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode:
                sys.stderr.write(proc.stderr)
                return proc.returncode
            walls.append(wall)
            manifests.append(json.loads(proc.stdout))
            print(f"run {i + 1}: {wall:.1f} s", file=sys.stderr)
    m = manifests[-1]
    med = statistics.median(walls)
    result = {
        "benchmark": "prep_speed",
        "command": "python " + " ".join(sys.argv),
        "hardware": {"cpu": cpu_name(), "cores": len(os.sched_getaffinity(0)), "platform": platform.platform()},
        "video": str(args.video.name),
        "clip_seconds": m["duration_s"],
        "frames": m["num_frames"],
        "image_size": m["image_size"],
        "audio_backend": m["audio_backend"],
        "wall_s": {"min": min(walls), "median": med, "max": max(walls), "runs": walls},
        "realtime_factor": med / m["duration_s"],
        "target_realtime_factor": 0.5,
        "stage_wall_s": m["timings"],
        "stream_worker_s": m["stream_cpu_s"],
        "peak_rss_mb_largest_process": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "reprojection_error_px": m["reprojection_error_px"],
        "warnings": m["warnings"],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
