"""The audio feature extractor protocol (entry-point group ``syncanim.asr``) and its result type.

An extractor turns 16 kHz mono audio into one block of ``P`` feature vectors per video frame:
frame ``k`` covers ``[k / fps, (k + 1) / fps)`` and its ``P`` vectors sample that interval at the
sub-step centres ``(k + (i + 0.5) / P) / fps`` (see :mod:`syncanim.audio.framing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..console import ProgressFn, no_progress
from ..errors import DataError, PluginError
from .waveform import Waveform

#: The rate every feature backend expects; resample with ``read_audio(path, SAMPLE_RATE)`` upstream.
SAMPLE_RATE = 16000


@runtime_checkable
class FeatureExtractor(Protocol):
    """What ``Spec.build(config)`` returns for the ``syncanim.asr`` group.

    ``name``: the registry name. ``per_frame``: feature vectors per video frame (P).
    ``dim``: size of one feature vector (F).
    """

    name: str
    per_frame: int
    dim: int

    def extract(
        self, wave: Waveform, fps: float, num_frames: int | None = None, progress: ProgressFn = no_progress
    ) -> np.ndarray:
        """Features for video frames ``0 .. N-1``: ``[N, P, F] float32``.

        ``wave`` must be 16 kHz mono and non-empty (DataError otherwise). ``num_frames`` forces N
        (frames past the end of the audio get the features of silence or of the last audio; extra
        audio is ignored); default ``N = ceil(duration * fps)``.
        """
        ...


@dataclass(frozen=True)
class AudioFeatures:
    """Per-frame features with the settings that made them.

    ``values: [N, P, F] float32``; ``fps``: the video rate they are aligned to; ``backend``: the
    extractor's registry name.
    """

    values: np.ndarray
    fps: float
    backend: str

    def __post_init__(self) -> None:
        if self.values.ndim != 3:
            raise ValueError(f"features must be [N, P, F], got shape {self.values.shape}")
        if self.values.dtype != np.float32:
            raise ValueError(f"features must be float32, got {self.values.dtype}")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")

    @property
    def num_frames(self) -> int:
        return int(self.values.shape[0])

    @property
    def per_frame(self) -> int:
        return int(self.values.shape[1])

    @property
    def dim(self) -> int:
        return int(self.values.shape[2])


def check_waveform(wave: Waveform, sample_rate: int = SAMPLE_RATE) -> None:
    """Raise DataError unless ``wave`` is non-empty mono audio at ``sample_rate`` Hz."""
    if wave.sample_rate != sample_rate:
        raise DataError(
            f"audio features need {sample_rate} Hz audio, got {wave.sample_rate} Hz",
            hint=f"resample first: read_audio(path, sample_rate={sample_rate})",
        )
    if wave.samples.ndim != 1:
        raise DataError(f"audio features need mono samples [T], got shape {wave.samples.shape}")
    if wave.samples.size == 0:
        raise DataError("the audio is empty: nothing to compute features from")


def check_frames(fps: float, num_frames: int | None) -> None:
    """Raise ValueError for a non-positive ``fps`` or a negative ``num_frames``."""
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if num_frames is not None and num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")


def compute_features(
    extractor: FeatureExtractor,
    wave: Waveform,
    fps: float,
    num_frames: int | None = None,
    progress: ProgressFn = no_progress,
) -> AudioFeatures:
    """Run ``extractor`` and check its output: ``[N, extractor.per_frame, extractor.dim] float32``.

    Raises PluginError when a backend returns another shape.
    """
    values = extractor.extract(wave, fps, num_frames, progress)
    expect = (num_frames, extractor.per_frame, extractor.dim)
    ok = (
        values.ndim == 3
        and values.shape[1:] == expect[1:]
        and (num_frames is None or values.shape[0] == num_frames)
    )
    if not ok:
        raise PluginError(f"audio backend {extractor.name!r} returned shape {values.shape}, expected [N={expect[0]}, {expect[1]}, {expect[2]}]")
    return AudioFeatures(np.ascontiguousarray(values, dtype=np.float32), float(fps), extractor.name)
