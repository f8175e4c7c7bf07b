"""Reading the other clips the mouth predictor also learns from (``[train.mouth] other_clips``).

Each is a dataset folder that ``syncanim prep`` finished, of another speaker or another recording of the subject.
Only its landmarks and speech features are read, so a copy holding ``manifest.json``, ``config.resolved.toml``,
``landmarks.npy`` and ``audio_features.npy`` is enough. Its speech features must come from the same encoder
settings as the subject's (``[prep.audio]``): the predictor reads both with the same layers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..config import MouthTrainConfig
from ..data.manifest import DatasetLayout, dataset_audio_section, read_manifest
from ..errors import DataError
from .mouth import OtherClip, other_clip


def load_other_clips(subject: str | Path, cfg: MouthTrainConfig, components: int, variance: float,
                     device: torch.device | str) -> list[OtherClip]:
    """The clips ``cfg.other_clips`` names (paths relative to the working folder), checked against the subject's
    dataset ``subject``: same speech features, landmarks readable. ``components``, ``variance``: each clip's own
    mouth basis, as the subject's (:class:`~syncanim.model.head_config.MouthNetConfig`). DataError on a clip that
    cannot be used."""
    if not cfg.other_clips:
        return []
    mine = _backend(dataset_audio_section(subject))
    out = []
    for path in cfg.other_clips:
        read_manifest(path)  # DataError if it is not a finished dataset
        theirs = _backend(dataset_audio_section(path))
        if theirs != mine:
            raise DataError(f"other clip {path} has other speech features than {subject}: {_differences(theirs, mine)}",
                            hint="prep it with the same --audio-backend and [prep.audio] settings")
        layout = DatasetLayout(path)
        try:
            features, landmarks = np.load(layout.audio_features), np.load(layout.landmarks)
        except (OSError, ValueError) as e:
            raise DataError(f"other clip {path}: cannot read its landmarks or speech features: {e}") from e
        try:
            out.append(other_clip(str(path), features, landmarks, cfg, components, variance, device))
        except ValueError as e:
            raise DataError(str(e)) from e
    return out


def _backend(section: dict) -> dict:
    """An audio-backend section with the defaults of its component filled in (as it is when prep runs it), so that
    two sections that name the same settings compare equal, whichever of them were written out."""
    from ..config import PluginSection
    from ..registry import default_registry

    try:
        _, resolved = default_registry().resolve("syncanim.asr", PluginSection(**section))
    except Exception:  # an unknown or broken component: compare the sections as written
        return section
    return {"kind": section.get("kind"), **resolved.model_dump(mode="json")}


def _differences(theirs: dict, mine: dict) -> str:
    """``key theirs against mine`` for each setting the two sections disagree on."""
    keys = sorted(k for k in theirs.keys() | mine.keys() if theirs.get(k) != mine.get(k))
    return ", ".join(f"{k} {theirs.get(k)} against {mine.get(k)}" for k in keys)
