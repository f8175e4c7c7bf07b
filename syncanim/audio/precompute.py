"""Speech features of an audio file computed ahead of time, for rendering on a machine without the
feature backend's weights (``syncanim features`` here, ``syncanim render --features`` there).

The features come from the backend that prepared a model's dataset, at the model's frame rate, so they
are exactly what ``syncanim render --audio`` would compute (:func:`syncanim.stream.speech.stream_features`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..config import PluginSection
from ..data.files import save_npy_atomic, writable_file
from ..errors import DataError, ResourceError
from ..registry import Registry
from .waveform import read_audio


def backend_of(folder: Path) -> tuple[dict, float, int]:
    """(audio-backend section, frame rate, sample rate) of a model folder or a prepared dataset."""
    from ..data.manifest import DatasetLayout, dataset_audio_section, read_manifest
    from ..model.folder import ModelLayout, read_info

    if ModelLayout(folder).info.is_file():
        info = read_info(folder)
        return dict(info.audio), info.fps, info.sample_rate
    if DatasetLayout(folder).manifest.is_file():
        m = read_manifest(folder)
        return dataset_audio_section(folder), m.fps, m.sample_rate
    raise DataError(f"{folder} is neither a model folder nor a prepared dataset")


def speech_features_file(folder: Path, audio: Path, out: Path, registry: Registry) -> tuple[int, int, int]:
    """Write the features [T, P, F] float32 of ``audio`` for the model or dataset in ``folder`` to ``out`` (.npy).
    Returns their shape."""
    section, fps, rate = backend_of(Path(folder))
    writable_file(out)  # before the features are computed
    wave = read_audio(audio, rate)
    if wave.rms() < 1e-4:
        raise DataError(f"{Path(audio).name} is silent", hint="give speech")
    n = max(1, math.ceil(wave.duration_s * fps - 1e-6))
    from ..stream.speech import stream_features

    feats = stream_features(registry.build("syncanim.asr", PluginSection(**section)), wave, fps, n).features
    try:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        save_npy_atomic(out, np.ascontiguousarray(feats, np.float32))
    except OSError as e:
        raise ResourceError(f"cannot write {out}: {e.strerror or e}") from None
    return tuple(feats.shape)  # type: ignore[return-value]
