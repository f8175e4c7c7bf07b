"""What travels to a viewer: one binary message per frame, its sound and (unless it was not drawn) its image.

Little-endian: ``magic b"SA"``, ``version u8``, ``flags u8`` (bit 0: an image follows), ``index u32``,
``pts f64`` (the frame's media time, s), ``sent f64`` (server wall clock, s), ``rate u32`` (audio sample
rate), ``samples u32``, ``image_bytes u32``; then ``samples`` int16 PCM (the frame's
``[index / fps, (index + 1) / fps)`` of sound) and the JPEG. Sound and image of a frame travel together, so
a viewer that plays each frame's sound at its ``pts`` shows lips and sound in sync by construction.
From the page to the server: binary messages are its microphone (int16 PCM at 16 kHz); text messages
are ``ack INDEX`` (the page has received frame INDEX: the server keeps at most ``live.viewer_window``
frames on their way) or JSON (``{"type": "stats", ...}``: what the page measured).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

MAGIC = b"SA"
VERSION = 1
HEADER = struct.Struct("<2sBBIddIII")


@dataclass(frozen=True)
class FrameMessage:
    index: int
    pts: float
    sent: float
    rate: int
    pcm: np.ndarray  # [n] int16
    jpeg: bytes  # b"" when the frame was not drawn


def pack(index: int, pts: float, sent: float, rate: int, audio: np.ndarray, jpeg: bytes | None) -> bytes:
    """One frame's message; ``audio [n] float`` in [-1, 1]."""
    pcm = (np.clip(np.asarray(audio, np.float32), -1, 1) * 32767).round().astype("<i2")
    body = jpeg or b""
    return HEADER.pack(MAGIC, VERSION, 1 if body else 0, index, pts, sent, rate, len(pcm), len(body)) + \
        pcm.tobytes() + body


def unpack(data: bytes) -> FrameMessage:
    """The fields of a message; ValueError for anything else."""
    if len(data) < HEADER.size:
        raise ValueError("message shorter than its header")
    magic, version, flags, index, pts, sent, rate, n, size = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise ValueError(f"not a syncanim frame message (magic {magic!r}, version {version})")
    if len(data) != HEADER.size + 2 * n + size:
        raise ValueError("message length disagrees with its header")
    pcm = np.frombuffer(data, "<i2", n, HEADER.size)
    return FrameMessage(index, pts, sent, rate, pcm, bytes(data[HEADER.size + 2 * n:]))

