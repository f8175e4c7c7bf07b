"""Write the first blocks of Whisper base's encoder, in float16, as a small CTranslate2 model.bin: what a
GPU machine without the weight packages needs to run the ``whisper`` backend (layer 4 reads blocks 0-3).

    python benchmarks/gpu/pack_whisper.py OUT_DIR [--blocks 4]
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

import numpy as np

from syncanim.audio.whisper import model_bytes, read_ctranslate2


def _text(s: str) -> bytes:
    b = s.encode() + b"\0"
    return struct.pack("<H", len(b)) + b


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--blocks", type=int, default=4)
    a = ap.parse_args()
    name, variables = read_ctranslate2(model_bytes("base"), prefix="encoder/")
    keep = {k: v for k, v in variables.items()
            if not k.split("/")[1].split("_")[-1].isdigit() or int(k.split("/")[1].split("_")[-1]) < a.blocks}
    parts = [struct.pack("<I", 6), _text(name), struct.pack("<I", 1), struct.pack("<I", len(keep))]
    for k, v in keep.items():
        arr = np.ascontiguousarray(v.astype(np.float16) if v.dtype.kind == "f" else v)
        dtype = {np.dtype(np.float16): 4, np.dtype(np.int32): 3, np.dtype(np.int8): 1, np.dtype(np.int16): 2}[arr.dtype]
        parts += [_text(k), struct.pack("<B", arr.ndim), *(struct.pack("<I", d) for d in arr.shape),
                  struct.pack("<B", dtype), struct.pack("<I", arr.nbytes), arr.tobytes()]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "model.bin").write_bytes(b"".join(parts))
    print(f"{a.out / 'model.bin'}: {len(keep)} variables, {(a.out / 'model.bin').stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
