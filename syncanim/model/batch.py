"""What one training step fits: rays of a few frames, the colours they should show, and the frames' inputs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .camera import Camera
from .conditioning import FrameBatch


@dataclass(frozen=True)
class RayBatch:
    """R rays in each of B frames.

    camera: the B frames' cameras; inputs: their per-frame inputs; pixels: [B, R, 2] float pixel
    centres (u, v); target, background: [B, R, 3] float in [0, 1]. patch: ``p`` when each frame's rays
    are a row-major ``p`` x ``p`` square of pixels (R = p * p; image losses apply), else 0.
    """

    camera: Camera
    inputs: FrameBatch
    pixels: torch.Tensor
    target: torch.Tensor
    background: torch.Tensor
    patch: int = 0

    def __post_init__(self) -> None:
        b, r = self.pixels.shape[:2]
        assert self.pixels.shape == (b, r, 2) and self.target.shape == (b, r, 3) == self.background.shape, \
            f"RayBatch: pixels [B, R, 2], target and background [B, R, 3], got {tuple(self.pixels.shape)}, " \
            f"{tuple(self.target.shape)}, {tuple(self.background.shape)}"
        assert len(self.camera) == len(self.inputs) == b, \
            f"RayBatch: {len(self.camera)} cameras and {len(self.inputs)} frame inputs for B={b}"
        assert not self.patch or self.patch * self.patch == r, f"RayBatch: patch {self.patch} for R={r} rays"
