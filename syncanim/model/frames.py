"""Whole frames from a head model: which pixels of a batch of frames get rays, and the frames that come back.

A batch of B frames is rendered in one of two pixel layouts (:meth:`~syncanim.model.base.HeadModel.render_frames`):

- **compact** (:func:`compact_rays`): the pixels of each frame's own head rectangle, packed one after
  another; the ray count depends on the poses.
- **dense** (:class:`DenseRects`, :func:`dense_rays`): one rectangle of a fixed size for every frame of
  a clip, placed per frame; every tensor's size is fixed by B and the rectangle, so a CUDA graph can
  capture the render.

Pixels outside the rectangles keep the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..device import to_device
from .camera import Camera
from .conditioning import Rows
from .rays import pixel_rays


@dataclass(frozen=True)
class RenderedFrames:
    """images: [B, H, W, 3] float in [0, 1]; opacity: [B, H, W] float (0 outside the rendered rectangles);
    points: [runs] long on the device, the most field points one ray-renderer call wanted per run of samples
    (the dense layout only; None otherwise): more than the layout's ``capacity`` means some were left out."""

    images: torch.Tensor
    opacity: torch.Tensor
    points: torch.Tensor | None = None


@dataclass(frozen=True)
class PixelRays:
    """R rays through pixel centres. xy: [R, 2] long (x, y); frame: [R] long (the batch row of each ray);
    origins, dirs: [R, 3] float in the head frame."""

    xy: torch.Tensor
    frame: torch.Tensor
    origins: torch.Tensor
    dirs: torch.Tensor


def fixed_rects(rects: np.ndarray, size: int, wh: tuple[int, int] | None = None) -> tuple[tuple[int, int], np.ndarray]:
    """One rectangle size for all frames: ``wh`` (w, h), or the largest width and height of ``rects`` [N, 4]
    (x0, y0, x1, y1), centred on each frame's rectangle and kept inside the image.
    Returns ((w, h), offsets [N, 2] int64: x0, y0)."""
    if wh is not None:
        w, h = wh
    else:
        w = int(max(1, (rects[:, 2] - rects[:, 0]).max()))
        h = int(max(1, (rects[:, 3] - rects[:, 1]).max()))
    cx = (rects[:, 0] + rects[:, 2]) / 2
    cy = (rects[:, 1] + rects[:, 3]) / 2
    x0 = np.clip(np.round(cx - w / 2), 0, size - w).astype(np.int64)
    y0 = np.clip(np.round(cy - h / 2), 0, size - h).astype(np.int64)
    return (w, h), np.stack([x0, y0], 1)


@dataclass(frozen=True)
class DenseRects:
    """The dense layout: a ``width`` x ``height`` rectangle in every frame, its top-left corner at
    ``offsets: [B, 2] long`` (x0, y0) on the render device. ``capacity``: field points evaluated per call
    of the ray renderer and run of samples (None: every sample, :meth:`~syncanim.model.base.HeadModel.render_rays_dense`)."""

    width: int
    height: int
    offsets: torch.Tensor
    capacity: tuple[int, ...] | None = None

    @classmethod
    def covering(cls, rects: np.ndarray, size: int, device: torch.device | str) -> DenseRects:
        """The layout of a clip whose frames' own head rectangles are ``rects`` [N, 4] (:func:`fixed_rects`)."""
        (w, h), offsets = fixed_rects(rects, size)
        return cls(w, h, torch.from_numpy(offsets).to(device))

    def __getitem__(self, rows: Rows) -> DenseRects:
        """The layout of some frames (``rows`` of this one)."""
        return DenseRects(self.width, self.height, self.offsets[rows], self.capacity)

    @property
    def pixels(self) -> int:
        return self.width * self.height


def compact_rays(camera: Camera, rects: np.ndarray) -> PixelRays | None:
    """Rays through every pixel of each frame's rectangle ``rects`` [B, 4] (x0, y0, x1, y1; empty ones
    are skipped), frame after frame in row-major order. None when all rectangles are empty."""
    dev = camera.rotation.device
    pix, frame = [], []
    for i, (x0, y0, x1, y1) in enumerate(rects.tolist()):
        if x1 <= x0 or y1 <= y0:
            continue
        ys, xs = torch.meshgrid(torch.arange(y0, y1, device=dev), torch.arange(x0, x1, device=dev), indexing="ij")
        xy = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)
        pix.append(xy)
        frame.append(torch.full((len(xy),), i, device=dev, dtype=torch.long))
    if not pix:
        return None
    xy = torch.cat(pix)  # [R, 2]
    f = torch.cat(frame)  # [R]
    o, d = pixel_rays(camera.rotation[f], camera.translation[f], camera.focal, camera.cx, camera.cy,
                      xy.float()[:, None, :] + 0.5)  # [R, 1, 3]
    return PixelRays(xy, f, o[:, 0], d[:, 0])


def dense_rays(camera: Camera, dense: DenseRects) -> PixelRays:
    """Rays through the B x (width x height) pixels of the dense layout, frame after frame, row-major.
    Only device work: no host synchronisation, no data-dependent shapes."""
    b, p = len(camera), dense.pixels
    assert dense.offsets.shape == (b, 2), f"DenseRects: offsets must be [{b}, 2], got {tuple(dense.offsets.shape)}"
    dev = dense.offsets.device
    k = torch.arange(p, device=dev)
    grid = torch.stack([k % dense.width, k // dense.width], -1)  # [P, 2] (x, y) within the rectangle
    frame = torch.arange(b * p, device=dev) // p  # [B*P]
    xy = (grid[None] + dense.offsets[:, None]).reshape(b * p, 2)  # [B*P, 2]
    o, d = camera.rays(xy.view(b, p, 2).float() + 0.5)  # [B, P, 3]
    return PixelRays(xy, frame, o.reshape(-1, 3), d.reshape(-1, 3))


def from_uint8(images: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """[B, H, W, 3] uint8 on the host -> [B, H, W, 3] float in [0, 1] on ``device``."""
    return to_device(images, device).float() / 255


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[B, H, W, 3] float -> [B, H, W, 3] uint8 (clamped to [0, 1], rounded to the nearest level), same device."""
    return (images.clamp(0, 1) * 255).round().byte()
