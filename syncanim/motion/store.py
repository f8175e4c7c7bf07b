"""The motion syncer in a model folder: its weights in ``motion.safetensors``, its shape and blinks in
``model.json`` (the ``motion`` section)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..model.folder import ModelInfo, ModelLayout, save_weights
from .blinks import BlinkModel
from .syncer import MotionArch, MotionSyncer


def motion_section(syncer: MotionSyncer, fit: dict[str, Any]) -> dict[str, Any]:
    """What model.json keeps of a syncer: its shape, its blinks and the fit report ``fit``."""
    b = syncer.blinks
    blinks = {**asdict(b), "profile": b.profile.tolist(), "baseline": b.baseline.tolist()}
    return {"arch": asdict(syncer.arch), "blinks": blinks, "fit": fit}


def save_motion(layout: ModelLayout, syncer: MotionSyncer) -> None:
    save_weights(layout.motion, syncer)


def load_motion(layout: ModelLayout, info: ModelInfo, device: str | torch.device = "cpu") -> MotionSyncer | None:
    """The model's syncer on ``device`` (eval mode); None when the model has none."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if info.motion is None or not layout.motion.is_file():
        return None
    try:
        arch = MotionArch(**info.motion["arch"])
        b = dict(info.motion["blinks"])
        blinks = BlinkModel(**{**b, "profile": np.asarray(b["profile"], np.float32),
                               "baseline": np.asarray(b["baseline"], np.float32)})
        syncer = MotionSyncer(arch, blinks)
        state = load_file(str(layout.motion))
        if "scale" in state and "basis" not in state:  # a syncer made channel by channel: its units, each a spread
            state["basis"] = torch.diag(state.pop("scale"))
        syncer.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"model.json has no usable motion section: {e}") from e
    except (SafetensorError, OSError, RuntimeError) as e:
        raise CheckpointError(f"cannot load {layout.motion}: {str(e).splitlines()[0]}") from e
    return syncer.to(device).eval()
