"""Long sequences in overlapping chunks, blended back together: pure functions of integers and arrays.

Speech encoders see a bounded window (a transformer's attention is quadratic in it, and Whisper was
trained on 30 s). Long audio runs in equal chunks that overlap by at least ``overlap`` frames; in the
overlaps the chunks are blended with linear weights that fall to zero at each chunk's inner edges,
so no frame is taken from the edge of a chunk and there is no step at chunk boundaries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def chunk_starts(total: int, chunk: int, overlap: int) -> list[int]:
    """Start indices of equal chunks of length ``chunk`` covering ``[0, total)``, overlapping by ``>= overlap``.

    One chunk ``[0, total)`` when ``total <= chunk``; otherwise evenly spaced starts, the last one
    at ``total - chunk``. Needs ``chunk > 2 * overlap`` so no frame lies in three chunks.
    """
    if chunk <= 2 * overlap or overlap < 0:
        raise ValueError(f"chunk ({chunk}) must exceed twice the overlap ({overlap}) and overlap must be >= 0")
    if total <= chunk:
        return [0]
    n = math.ceil((total - overlap) / (chunk - overlap))
    return [int(s) for s in np.floor(np.linspace(0, total - chunk, n) + 0.5)]


def blend_weights(start: int, stop: int, total: int, overlap: int) -> np.ndarray:
    """Weights ``[stop - start] float32`` of one chunk's frames in an overlap-blend.

    Rise linearly over the first ``overlap`` frames (unless the chunk starts at 0) and fall over the
    last ``overlap`` frames (unless it ends at ``total``); 1 in between, never exactly 0.
    """
    t = np.arange(stop - start, dtype=np.float64) + 0.5  # [n]
    w = np.ones_like(t)
    if overlap > 0 and start > 0:
        w = np.minimum(w, t / overlap)
    if overlap > 0 and stop < total:
        w = np.minimum(w, (stop - start - t) / overlap)
    return w.astype(np.float32)


def stitch(chunks: Sequence[np.ndarray], starts: Sequence[int], total: int, overlap: int) -> np.ndarray:
    """Blend overlapping chunks ``[n_i, F]`` starting at ``starts`` into one ``[total, F] float32`` sequence."""
    dim = chunks[0].shape[1]
    num = np.zeros((total, dim), np.float64)  # [T, F]
    den = np.zeros((total, 1), np.float64)  # [T, 1]
    for c, s in zip(chunks, starts, strict=True):
        w = blend_weights(s, s + c.shape[0], total, overlap)[:, None]  # [n, 1]
        num[s:s + c.shape[0]] += w * c
        den[s:s + c.shape[0]] += w
    if np.any(den == 0):
        raise ValueError("chunks do not cover every frame")
    return (num / den).astype(np.float32)
