"""One call of B frames, the same everywhere (``render``, ``live``, ``render --split val``, ``eval``, ``bench``):
the model's :meth:`~syncanim.model.base.HeadModel.render_frames` under the run's precision, over
background frames or over the model's torso."""

from __future__ import annotations

import numpy as np
import torch

from ..device import autocast
from ..model.base import HeadModel
from ..model.camera import Camera
from ..model.conditioning import Conditioning
from ..model.frames import DenseRects, from_uint8, to_uint8
from ..model.torso import TorsoField


def render_batch(model: HeadModel, camera: Camera, cond: Conditioning, backgrounds: torch.Tensor, *, precision: str,
                 chunk: int, dense: DenseRects | None = None, autocast_cache: bool = True) -> torch.Tensor:
    """One call: B frames of the head over ``backgrounds`` [B, H, W, 3] float in [0, 1] -> images
    [B, H, W, 3] float, on the device.

    ``precision``: the run's resolved precision (fp32 | bf16 | fp16); ``chunk``: rays per ray-renderer
    call. ``dense`` (the static-shape layout) and ``autocast_cache`` (off inside CUDA graph capture) serve
    ``bench``.
    """
    with autocast(backgrounds.device, precision, cache=autocast_cache):
        return model.render_frames(camera, cond, backgrounds, dense=dense, chunk=chunk).images


def render_batch_uint8(model: HeadModel, camera: Camera, cond: Conditioning, backgrounds: np.ndarray, *,
                       precision: str, chunk: int) -> np.ndarray:
    """:func:`render_batch` from and to the host: backgrounds [B, H, W, 3] uint8 -> frames [B, H, W, 3] uint8."""
    images = render_batch(model, camera, cond, from_uint8(backgrounds, camera.rotation.device), precision=precision,
                          chunk=chunk)
    return to_uint8(images).cpu().numpy()


def render_person(model: HeadModel, torso: TorsoField, camera: Camera, cond: Conditioning, *, precision: str,
                  chunk: int, under: np.ndarray | None = None) -> np.ndarray:
    """B frames of the whole person: the torso for each frame's head pose over the background plate (or over
    ``under [B, H, W, 3] uint8``), the head over that -> ``[B, H, W, 3] uint8`` on the host."""
    rotation, translation = camera.poses_numpy()
    below = None if under is None else from_uint8(under, camera.rotation.device)
    backgrounds = torso.render(torso.codes(rotation, translation), chunk=chunk, size=camera.size, under=below)
    return to_uint8(render_batch(model, camera, cond, backgrounds, precision=precision, chunk=chunk)).cpu().numpy()
