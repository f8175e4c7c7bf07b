"""The interface of a head model: what every renderer of the ``syncanim.renderers`` group builds.

In the spirit of nerfstudio's ``Model``: a model encodes per-frame inputs (:meth:`HeadModel.condition`),
renders rays (:meth:`HeadModel.render_rays`, and a static-shape twin), and names its losses
(:meth:`HeadModel.loss_dict`). On top of those, this class renders whole frames
(:meth:`HeadModel.render_frames`, what ``render``, ``eval``, ``bench`` and training validation all
call) and takes a training step's losses (:meth:`HeadModel.train_step`); the trainer only steps the
optimiser.

A renderer's spec builds a :data:`HeadFactory` from its validated config; the factory makes the
model for a :class:`HeadSetup` (the dataset's feature sizes, the subject's face).
"""

from __future__ import annotations

import functools
from abc import ABCMeta, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..face.mouth import MouthBasis
from .batch import RayBatch
from .camera import Camera
from .conditioning import Conditioning, FrameBatch
from .frames import DenseRects, RenderedFrames, compact_rays, dense_rays
from .losses import LossWeights, PerceptualLoss


@dataclass(frozen=True)
class HeadSetup:
    """What a head model is built for, beyond its config.

    audio_per_frame P, audio_dim F: the shape ``[P, F]`` of a frame's speech features; num_latents:
    training frames (one lighting code each); mouth: the subject's mouth basis, or ``(components,
    points)`` for an empty one that a state dict fills; canonical: the subject's canonical face
    landmarks [478, 3] float, or None when the geometry comes with the weights; expression_rest: the
    subject's typical expressions [E] (the training frames' median), or None; mouth_inside: the colour inside the
    subject's open mouth [3] in [0, 1] (:func:`~syncanim.model.backstop.mouth_inside_colour`), or None.
    """

    audio_per_frame: int
    audio_dim: int
    num_latents: int
    mouth: MouthBasis | tuple[int, int]
    canonical: np.ndarray | None = None
    expression_rest: np.ndarray | None = None
    mouth_inside: np.ndarray | None = None


class HeadModel(nn.Module, metaclass=ABCMeta):
    """A head model: per-frame inputs and cameras in, frames out; rays and losses for training."""

    @abstractmethod
    def condition(self, batch: FrameBatch) -> Conditioning:
        """The conditioning of B frames from their inputs."""

    @abstractmethod
    def render_rays(self, origins: torch.Tensor, dirs: torch.Tensor, ray_frame: torch.Tensor, cond: Conditioning,
                    background: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Render R rays of B frames.

        origins, dirs: [R, 3] (head frame); ray_frame: [R] long, the batch row (of ``cond``) of each ray;
        background: [R, 3] float in [0, 1]. ``generator`` jitters the samples (training). Returns at least
        ``color`` [R, 3] and ``opacity`` [R], and whatever :meth:`loss_dict` reads.
        """

    @abstractmethod
    def render_rays_dense(self, origins: torch.Tensor, dirs: torch.Tensor, ray_frame: torch.Tensor,
                          cond: Conditioning, background: torch.Tensor,
                          capacity: tuple[int, ...] | None = None) -> dict[str, torch.Tensor]:
        """:meth:`render_rays` without gradients and with static shapes (the same colours up to float
        rounding): ``color`` [R, 3], ``opacity`` [R] and ``points`` [runs] long, the field points each run of
        samples wanted. ``capacity``: at most that many points evaluated per run (None: every sample)."""

    @abstractmethod
    def head_rects(self, camera: Camera) -> np.ndarray:
        """Pixel rectangles [B, 4] int64 (x0, y0, x1, y1) of each frame where the head can be."""

    @abstractmethod
    def loss_dict(self, batch: RayBatch, outputs: dict[str, torch.Tensor], weights: LossWeights,
                  perceptual: PerceptualLoss | None = None) -> dict[str, torch.Tensor]:
        """The weighted loss terms (scalars) of ``outputs`` (:meth:`render_rays` of ``batch``'s rays);
        the step minimises their sum."""

    def behind(self, origins: torch.Tensor, dirs: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
        """What each ray of a drawn frame ends on where the head lets it through: origins, dirs ``[R, 3]`` (head
        frame) and the frame's background under each ray ``[R, 3]`` -> ``[R, 3]``. The background itself here; a
        model may put something of the head behind its surface (:mod:`syncanim.model.backstop`)."""
        return background

    @torch.no_grad()
    def render_frames(self, camera: Camera, cond: Conditioning, backgrounds: torch.Tensor, *,
                      dense: DenseRects | None = None, chunk: int = 1 << 16) -> RenderedFrames:
        """Render B whole frames over their backgrounds.

        camera: the B frames' cameras; cond: their conditioning; backgrounds: [B, H, W, 3] float in
        [0, 1] (H = W = camera.size). Compact by default (rays only in each frame's :meth:`head_rects`,
        samples only where the head can be); with ``dense``, the static-shape layout and
        :meth:`render_rays_dense`. ``chunk``: rays per call of the ray renderer. Autocast, if any, is
        the caller's. Returns images [B, H, W, 3] and opacity [B, H, W].
        """
        b, h, w, _ = backgrounds.shape
        assert backgrounds.shape == (b, h, w, 3) and h == w == camera.size, \
            f"backgrounds must be [B, {camera.size}, {camera.size}, 3], got {tuple(backgrounds.shape)}"
        assert len(camera) == len(cond) == b, f"{len(camera)} cameras and {len(cond)} conditionings for B={b}"
        images = backgrounds.clone()
        opacity = torch.zeros(b, h, w, device=backgrounds.device)
        if dense is None:
            rays, march = compact_rays(camera, self.head_rects(camera)), self.render_rays
        else:
            rays = dense_rays(camera, dense)
            march = functools.partial(self.render_rays_dense, capacity=dense.capacity)
        if rays is None:
            return RenderedFrames(images, opacity)
        f, x, y = rays.frame, rays.xy[:, 0], rays.xy[:, 1]
        bg = self.behind(rays.origins, rays.dirs, backgrounds[f, y, x])  # [R, 3]
        points = None
        for s in range(0, len(f), chunk):
            sl = slice(s, s + chunk)
            out = march(rays.origins[sl], rays.dirs[sl], f[sl], cond, bg[sl])
            images[f[sl], y[sl], x[sl]] = out["color"].to(images.dtype)
            opacity[f[sl], y[sl], x[sl]] = out["opacity"].float()
            if dense is not None:
                points = out["points"] if points is None else torch.maximum(points, out["points"])
        return RenderedFrames(images, opacity, points)

    def train_step(self, batch: RayBatch, weights: LossWeights, perceptual: PerceptualLoss | None = None,
                   generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The loss terms of one training step on ``batch`` (:meth:`loss_dict`); ``generator`` jitters the
        samples. The caller sums them, and steps the optimiser."""
        b, r, _ = batch.pixels.shape
        o, d = batch.camera.rays(batch.pixels)  # [B, R, 3]
        cond = self.condition(batch.inputs)
        ray_frame = torch.arange(b, device=o.device).repeat_interleave(r)  # [B*R]
        outputs = self.render_rays(o.reshape(-1, 3), d.reshape(-1, 3), ray_frame, cond,
                                   batch.background.reshape(-1, 3), generator=generator)
        return self.loss_dict(batch, outputs, weights, perceptual)


#: what a renderer's spec builds from its config: the model for a subject
HeadFactory = Callable[[HeadSetup], HeadModel]
