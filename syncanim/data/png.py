"""A fast PNG encoder for 8-bit single-channel label maps.

General-purpose encoders try several row filters per row, which costs more than the compression
for label maps (large flat regions). This writes standard PNG (greyscale, 8 bit, filter type 0,
zlib level 1), which any PNG reader opens; it is about four times faster here.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_grey_png(image: np.ndarray, level: int = 1) -> bytes:
    """image: [H, W] uint8 -> the bytes of a PNG file (colour type 0, bit depth 8, no row filters)."""
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"expected [H, W] uint8, got {image.shape} {image.dtype}")
    h, w = image.shape
    rows = np.zeros((h, w + 1), np.uint8)  # each row starts with its filter type byte (0: none)
    rows[:, 1:] = image
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + _chunk(b"IEND", b"")
