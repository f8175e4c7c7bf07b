"""Pack a prepared dataset small enough to send to a GPU machine that lacks MediaPipe and PyAV.

    python benchmarks/gpu/pack_dataset.py DATASET SOURCE_VIDEO DEST

Copies everything training reads except the frames (the source video travels instead, and
``unpack_dataset.py`` decodes the frames again there) and prep's own state and report.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def main() -> int:
    src, video, dest = (Path(a) for a in sys.argv[1:4])
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest / "dataset", ignore=shutil.ignore_patterns("frames", "report", ".syncanim"))
    shutil.copy(video, dest / "source.mp4")
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"packed {dest}: {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
