"""Decode the frames of a packed dataset again (OpenCV only), as prep wrote them.

    python benchmarks/gpu/unpack_dataset.py PACKED
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np


def main() -> int:
    root = Path(sys.argv[1])
    ds = root / "dataset"
    m = json.loads((ds / "manifest.json").read_text())
    size, n = m["image_size"], m["num_frames"]
    if m["crop"] is not None or abs(m["source"]["fps"] - m["fps"]) > 0.05 * m["fps"]:
        raise SystemExit("only uncropped datasets at the source frame rate can be unpacked here")
    (ds / "frames").mkdir(exist_ok=True)
    cap = cv2.VideoCapture(str(root / "source.mp4"))
    k = 0
    while k < n:
        ok, bgr = cap.read()
        if not ok:
            break
        if bgr.shape[0] != size:
            bgr = cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(ds / "frames" / f"{k:06d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
        k += 1
    while k < n:  # a frame or two short at the end: repeat the last
        cv2.imwrite(str(ds / "frames" / f"{k:06d}.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
        k += 1
    print(f"unpacked {n} frames of {size}x{size}", np.array(bgr.shape))
    return 0


if __name__ == "__main__":
    sys.exit(main())
