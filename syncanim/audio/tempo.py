"""A clip's speech at other speeds, for training the mouth predictor on more rates and voices than the clip has.

The audio played ``speed`` times as fast (:func:`~syncanim.audio.waveform.played_at`; its pitch rises as much, so
it also sounds like another voice) shows the clip's frames at other times: frame ``j`` of the copy is the clip at
frame ``j * speed`` (:func:`tempo_times`), whose mouth code is known by interpolating the clip's.
"""

from __future__ import annotations

import numpy as np
import torch

from .features import FeatureExtractor, compute_features
from .waveform import Waveform, played_at


def tempo_times(speed: float, num_frames: int) -> torch.Tensor:
    """The times (in frames of the clip, ``[M] float64``) that the frames of a ``num_frames``-frame clip played
    ``speed`` times as fast show: ``j * speed`` for every ``j`` that stays within the clip."""
    times = torch.arange(int(np.floor((num_frames - 1) / speed + 1e-9)) + 1, dtype=torch.float64) * speed
    return times.clamp(max=num_frames - 1)  # the last one may round past the clip's last frame


def tempo_features(extractor: FeatureExtractor, wave: Waveform, fps: float, num_frames: int,
                   speeds: tuple[float, ...]) -> dict[float, np.ndarray]:
    """Features of the clip's audio ``wave`` (``num_frames`` frames at ``fps``) played at each of ``speeds``:
    speed -> ``[len(tempo_times(speed, num_frames)), P, F] float32``."""
    return {float(s): compute_features(extractor, played_at(wave, s), fps, len(tempo_times(s, num_frames))).values
            for s in speeds}
