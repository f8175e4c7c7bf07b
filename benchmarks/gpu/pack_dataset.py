"""Pack a prepared dataset small enough to send to a GPU machine that lacks MediaPipe and PyAV.

    python benchmarks/gpu/pack_dataset.py DATASET SOURCE_VIDEO DEST

Copies everything training reads except the frames (the source video travels instead, and
``unpack_dataset.py`` decodes the frames again there) and prep's own state and report.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description="Pack a prepared dataset, without its frames, for a GPU machine.")
    ap.add_argument("dataset", type=Path, help="a folder written by `syncanim prep`")
    ap.add_argument("video", type=Path, help="the source video it was prepared from (its frames are decoded again there)")
    ap.add_argument("dest", type=Path, help="where to write DEST/dataset and DEST/source.mp4")
    args = ap.parse_args()
    src, video, dest = args.dataset, args.video, args.dest
    if not (src / "manifest.json").is_file() or not video.is_file():
        ap.error(f"need a prepared dataset ({src}/manifest.json) and its source video ({video})")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest / "dataset", ignore=shutil.ignore_patterns("frames", "report", ".syncanim"))
    shutil.copy(video, dest / "source.mp4")
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"packed {dest}: {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
