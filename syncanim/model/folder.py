"""A trained model folder: everything ``syncanim render`` needs, with nothing else to point at.

```
MODEL/
  model.json              what the model is: architecture, audio backend, camera, version, dataset summary
  model.safetensors       the weights (and geometry buffers)
  motion.safetensors      the motion syncer: speech -> head pose, brows, blinks (syncanim.motion)
  torso.safetensors       the torso field and the background plate (syncanim.model.torso)
  assets/replay.npz       head poses, expressions and face outlines of the training frames (pose replay)
  assets/frames.mp4       the original frames (for --portrait)
  assets/backgrounds.mp4  the frames with the head removed (what the head is rendered over)
  checkpoint/             the resumable training state (optimiser, step, random generator)
  metrics.jsonl           one JSON object per logged step
  config.resolved.toml    the settings of the run
```
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..config import PluginSection
from ..data.files import save_npz_atomic, write_atomic, write_json_atomic
from ..errors import CheckpointError, ConfigError
from ..inputs import check_model_folder
from ..registry import Registry, default_registry
from .base import HeadModel, HeadSetup
from .torso import TorsoArch, TorsoField

MODEL_FORMAT = 2  # 2: the mouth is driven by a mouth code and its predictor


class ModelLayout:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    info = property(lambda self: self.root / "model.json")
    weights = property(lambda self: self.root / "model.safetensors")
    motion = property(lambda self: self.root / "motion.safetensors")
    torso = property(lambda self: self.root / "torso.safetensors")
    assets = property(lambda self: self.root / "assets")
    replay = property(lambda self: self.root / "assets" / "replay.npz")
    frames_video = property(lambda self: self.root / "assets" / "frames.mp4")
    backgrounds_video = property(lambda self: self.root / "assets" / "backgrounds.mp4")
    checkpoint = property(lambda self: self.root / "checkpoint")
    state = property(lambda self: self.root / "checkpoint" / "state.safetensors")
    state_info = property(lambda self: self.root / "checkpoint" / "state.json")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    config = property(lambda self: self.root / "config.resolved.toml")


@dataclass(frozen=True)
class ModelInfo:
    """The contents of ``model.json``."""

    model: dict[str, Any]  # {"kind": ..., options}
    audio: dict[str, Any]  # the prep audio-backend section the features came from
    audio_per_frame: int
    audio_dim: int
    num_latents: int
    expressions: list[str]
    image_size: int
    fps: float
    focal: float
    cx: float
    cy: float
    dataset: str  # the training dataset: relative to the model folder where it can be (see dataset_path)
    sample_rate: int
    # the mouth code: {"components": C, "points": K, "speaking_spread": the subject's mouth-opening
    # spread while speaking (training frames), "fit": the predictor's calibration report}
    mouth: dict[str, Any]
    # the motion syncer: {"arch": ..., "blinks": ..., "fit": its report}; None: a model without one
    motion: dict[str, Any] | None = None
    # the torso field: {"arch": its shape, "fit": its report}; None: renders show the training frames' bodies
    torso: dict[str, Any] | None = None
    stage: str = "untrained"
    step: int = 0

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.update(format=MODEL_FORMAT, syncanim_version=__version__)
        return d


def write_info(layout: ModelLayout, info: ModelInfo) -> None:
    layout.root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(layout.info, info.to_json())


def dataset_reference(dataset: Path, model_root: Path) -> str:
    """How model.json records its dataset: the path relative to the model folder (a model and its dataset
    moved together, e.g. to another machine, still find each other), absolute where no relative path exists."""
    try:
        return os.path.relpath(dataset.resolve(), model_root.resolve())
    except ValueError:  # another drive
        return str(dataset.resolve())


def dataset_path(model_root: str | Path, info: ModelInfo) -> Path:
    """The training dataset of the model in ``model_root``: ``info.dataset`` read relative to the model
    folder (models from older versions record it absolute)."""
    p = Path(info.dataset)
    return p if p.is_absolute() else Path(os.path.normpath(Path(model_root).resolve() / p))


def read_info(root: str | Path) -> ModelInfo:
    """model.json of a model folder; CheckpointError if missing, unreadable or of another format."""
    layout = ModelLayout(root)
    check_model_folder(layout.root)
    try:
        data = json.loads(layout.info.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{layout.info} is unreadable: {e}") from e
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        got = data.get("format") if isinstance(data, dict) else None
        raise CheckpointError(f"{layout.root} holds a model of format {got} (from syncanim "
                              f"{data.get('syncanim_version', '?') if isinstance(data, dict) else '?'}); "
                              f"this syncanim reads format {MODEL_FORMAT}", hint="train it again with this version")
    fields = {k: data[k] for k in ModelInfo.__dataclass_fields__ if k in data}
    try:
        return ModelInfo(**fields)
    except TypeError as e:
        raise CheckpointError(f"{layout.info} is incomplete: {e}") from e


def save_weights(path: Path, model: torch.nn.Module, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    write_atomic(path, lambda p: save_file(state, str(p), metadata=metadata or {}))


def build_model(info: ModelInfo, registry: Registry | None = None,
                render_settings: dict[str, Any] | None = None) -> HeadModel:
    """An untrained model of the architecture ``info`` describes (weights come from load_model), built by
    the spec of its renderer: the ``syncanim.renderers`` entry named by ``info.model["kind"]``
    (PluginError when none is installed; CheckpointError when its settings are not that renderer's).
    ``render_settings``: settings its config calls render-only (``render_only``) over model.json's (ConfigError
    for any other)."""
    try:
        mouth = (int(info.mouth["components"]), int(info.mouth["points"]))
        section = PluginSection(**info.model)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"model.json has no usable model or mouth section: {e}") from e
    reg = registry or default_registry()
    if render_settings:
        allowed = getattr(reg.get("syncanim.renderers", section.kind).config_model, "render_only", frozenset())
        wrong = sorted(set(render_settings) - set(allowed))
        if wrong:
            raise ConfigError(f"runtime.render_settings: {', '.join(wrong)} changes what the {section.kind!r} model "
                              f"learned, not only how it renders",
                              hint=f"render-only settings: {', '.join(sorted(allowed)) or 'none'}")
    try:
        make = reg.build("syncanim.renderers", section, where="model")
    except ConfigError as e:
        raise CheckpointError(f"model.json holds settings the {section.kind!r} renderer does not take: {e}",
                              hint="train it again with this version") from e
    if render_settings:
        make = reg.build("syncanim.renderers", PluginSection(**{**section.model_dump(), **render_settings}),
                         where="runtime.render_settings")
    return make(HeadSetup(info.audio_per_frame, info.audio_dim, info.num_latents, mouth))


def load_model(root: str | Path, device: str | torch.device = "cpu", registry: Registry | None = None,
               render_settings: dict[str, Any] | None = None) -> tuple[HeadModel, ModelInfo]:
    """The trained model of a folder, on ``device``, in eval mode (its renderer looked up in ``registry``,
    by default the installed entry points), with ``render_settings`` over its own (:func:`build_model`)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    layout = ModelLayout(root)
    info = read_info(root)
    if not layout.weights.is_file():
        raise CheckpointError(f"{layout.root} has no weights yet (model.safetensors)",
                              hint="training writes them at its first checkpoint")
    model = build_model(info, registry, render_settings)
    try:
        state = load_file(str(layout.weights))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"cannot load {layout.weights}: {str(e).splitlines()[0]}") from e
    return model.to(device).eval(), info


@dataclass
class Replay:
    """Material for replaying the training frames. N frames."""

    rotation: np.ndarray  # [N, 3, 3] float32
    translation: np.ndarray  # [N, 3] float32
    expressions: np.ndarray  # [N, E] float32
    face_outline: np.ndarray  # [N, K, 2] float32 pixel polygon of the face
    num_train: int


def save_replay(layout: ModelLayout, replay: Replay) -> None:
    layout.assets.mkdir(parents=True, exist_ok=True)
    save_npz_atomic(layout.replay, rotation=replay.rotation, translation=replay.translation,
                    expressions=replay.expressions, face_outline=replay.face_outline,
                    num_train=np.array(replay.num_train))


def load_replay(layout: ModelLayout) -> Replay:
    try:
        with np.load(layout.replay) as z:
            return Replay(z["rotation"], z["translation"], z["expressions"], z["face_outline"], int(z["num_train"]))
    except (OSError, KeyError, ValueError) as e:
        raise CheckpointError(f"{layout.replay} is missing or unreadable: {e}",
                              hint="the model folder is incomplete; train it again") from e


def load_torso(layout: ModelLayout, info: ModelInfo, device: str | torch.device = "cpu") -> TorsoField | None:
    """The model's torso field on ``device`` (eval mode); None when the model has none."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if info.torso is None or not layout.torso.is_file():
        return None
    try:
        field = TorsoField(TorsoArch(**info.torso["arch"]))
        field.load_state_dict(load_file(str(layout.torso)), strict=True)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"model.json has no usable torso section: {e}") from e
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"cannot load {layout.torso}: {str(e).splitlines()[0]}") from e
    return field.to(device).eval()
