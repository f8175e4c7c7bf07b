"""The cameras of the frames a head model renders: one head pose per frame, pinhole intrinsics, a square image.

Poses follow :mod:`syncanim.geometry`: ``X_cam = R @ X_head + t`` with OpenCV camera axes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..device import to_device
from .rays import pixel_rays


@dataclass(frozen=True)
class Camera:
    """B frames seen through one pinhole camera.

    rotation: [B, 3, 3] float32; translation: [B, 3] float32 (each frame's head pose, on the render
    device); focal, cx, cy: intrinsics in pixels; size: the side of the square image (H = W = size).
    ``host``: the same poses on the host when the camera was made from them (:meth:`from_numpy`), so that
    :meth:`poses_numpy` need not wait for the device.
    """

    rotation: torch.Tensor
    translation: torch.Tensor
    focal: float
    cx: float
    cy: float
    size: int
    host: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        b = self.rotation.shape[0] if self.rotation.ndim else 0
        assert self.rotation.shape == (b, 3, 3) and self.translation.shape == (b, 3), \
            f"Camera: rotation must be [B, 3, 3] and translation [B, 3], got {tuple(self.rotation.shape)} " \
            f"and {tuple(self.translation.shape)}"

    @classmethod
    def from_numpy(cls, rotation: np.ndarray, translation: np.ndarray, focal: float, cx: float, cy: float,
                   size: int, device: torch.device | str) -> Camera:
        """Poses from host arrays (rotation [B, 3, 3], translation [B, 3]) moved to ``device`` (without waiting
        for the work queued there)."""
        rotation, translation = np.ascontiguousarray(rotation), np.ascontiguousarray(translation)
        return cls(to_device(rotation, device), to_device(translation, device), focal, cx, cy, size,
                   (rotation, translation))

    def __len__(self) -> int:
        return self.rotation.shape[0]

    def rays(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels: [B, R, 2] float (u, v) -> origins, dirs: [B, R, 3] in the head frame (dirs unit)."""
        return pixel_rays(self.rotation, self.translation, self.focal, self.cx, self.cy, pixels)

    def poses_numpy(self) -> tuple[np.ndarray, np.ndarray]:
        """The poses on the host: rotation [B, 3, 3], translation [B, 3]."""
        if self.host is not None:
            return self.host
        return self.rotation.detach().cpu().numpy(), self.translation.detach().cpu().numpy()
