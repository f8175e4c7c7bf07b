"""The ``pyav`` decoder: frames at a target rate and 16 kHz mono audio from any container FFmpeg reads."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..audio.waveform import Waveform, read_audio
from ..config import Frozen
from ..media.video import MediaInfo, iter_frames, probe
from ..registry import Spec


class PyAVConfig(Frozen):
    """PyAV needs no settings; decoding threads follow FFmpeg's automatic choice."""


class PyAVDecoder:
    """Decode video frames (``[H, W, 3] uint8`` RGB) and audio through PyAV."""

    def __init__(self, config: PyAVConfig) -> None:
        self.config = config

    def probe(self, path: str | os.PathLike[str]) -> MediaInfo:
        return probe(path)

    def frames(self, path: str | os.PathLike[str], fps: float, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
        """Output frames ``start <= k < stop`` at ``fps`` as ``(k, rgb)``."""
        return iter_frames(Path(path), fps, start, stop)

    def audio(self, path: str | os.PathLike[str], sample_rate: int) -> Waveform:
        return read_audio(path, sample_rate)


SPEC = Spec(
    name="pyav",
    config_model=PyAVConfig,
    build=PyAVDecoder,
    description="PyAV/FFmpeg decoder: any common container and codec; resamples frame rate by timestamp",
)
