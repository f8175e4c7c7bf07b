"""The depth-prior shell sampler: samples only in a thin layer around where the head surface is.

A talking head is seen from the front, and its surface is close to the face the landmarks describe.
:func:`depth_prior` turns the canonical landmarks into a depth map ``z = D(x, y)`` over the head box
(the face mesh inside its outline; outside it, the surface curves away like a sphere of the head's
size, which covers hair and ears). :func:`surface_depth` finds where each ray meets that surface and
:func:`shell_samples` places S samples from ``front`` before it to ``back`` behind it. Every ray gets
the same number of samples, so all tensors stay dense ``[R, S]`` and the same code runs on CPU and GPU.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def depth_prior(canonical: np.ndarray, lo: np.ndarray, hi: np.ndarray, res: int = 96) -> np.ndarray:
    """Depth map of the head surface over the box's x-y extent. -> [res, res] float32 (row: y, col: x).

    canonical: [478, 3] landmarks in the head frame; lo, hi: [3] box corners. Inside the landmarks'
    outline: linear interpolation of their depth; outside: the nearest outline depth plus
    ``d^2 / (2 r)`` (a sphere of radius r = half the face width), clamped to the box's back.
    """
    from scipy.interpolate import griddata
    from scipy.ndimage import distance_transform_edt

    p = np.asarray(canonical, np.float64)
    xs = np.linspace(lo[0], hi[0], res)
    ys = np.linspace(lo[1], hi[1], res)
    gx, gy = np.meshgrid(xs, ys)
    depth = griddata(p[:, :2], p[:, 2], (gx, gy), method="linear")  # NaN outside the convex hull
    inside = np.isfinite(depth)
    dist, (iy, ix) = distance_transform_edt(~inside, return_indices=True)
    near = depth[iy, ix]
    step = float(np.mean([(hi[0] - lo[0]) / (res - 1), (hi[1] - lo[1]) / (res - 1)]))
    radius = 0.5 * float(np.linalg.norm(p[234] - p[454]))
    out = near + (dist * step) ** 2 / (2 * radius)
    return np.minimum(np.where(inside, depth, out), hi[2]).astype(np.float32)


def _lookup(prior: torch.Tensor, xy_unit: torch.Tensor) -> torch.Tensor:
    """Bilinear lookup. prior: [H, W], xy_unit: [R, 2] in [-1, 1] (x, y) -> [R]."""
    grid = xy_unit.clamp(-1, 1).view(1, 1, -1, 2).to(prior.dtype)
    return F.grid_sample(prior[None, None], grid, mode="bilinear", align_corners=True).view(-1)


def surface_depth(origins: torch.Tensor, dirs: torch.Tensor, prior: torch.Tensor, lo: torch.Tensor,
                  hi: torch.Tensor, iterations: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray parameter where each ray meets the prior surface, and whether it does inside the box.

    origins, dirs: [R, 3] (head frame, dirs unit); prior: [H, W] depth map from :func:`depth_prior`.
    Fixed-point iterations on ``o_z + t d_z = D(o_xy + t d_xy)`` (rays look mostly along +z).
    Returns t: [R], hit: [R] bool.
    """
    dz = dirs[:, 2].clamp_min(1e-3)
    span = (hi - lo)[:2]
    t = (0.5 * (lo[2] + hi[2]) - origins[:, 2]) / dz
    for _ in range(iterations):
        p = origins + t[:, None] * dirs
        z = _lookup(prior, (p[:, :2] - lo[:2]) / span * 2 - 1)
        t = t + (z - p[:, 2]) / dz
    p = origins + t[:, None] * dirs
    hit = (dirs[:, 2] > 1e-3) & (p[:, 0] >= lo[0]) & (p[:, 0] <= hi[0]) & (p[:, 1] >= lo[1]) & (p[:, 1] <= hi[1])
    return t, hit


def shell_samples(t_surface: torch.Tensor, samples: int, front: float, back: float,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """S sample depths per ray from ``front`` before to ``back`` after the surface.

    t_surface: [R]. With a generator, each sample is jittered inside its bin (training); without,
    it sits at the bin centre (rendering). Returns t: [R, S], deltas: [R, S] (bin lengths).
    """
    r = t_surface.shape[0]
    width = (front + back) / samples
    if generator is None:
        u = torch.full((r, samples), 0.5, device=t_surface.device, dtype=t_surface.dtype)
    else:
        u = torch.rand((r, samples), generator=generator, device=generator.device).to(t_surface)
    bins = torch.arange(samples, device=t_surface.device, dtype=t_surface.dtype)
    t = t_surface[:, None] - front + (bins + u) * width  # [R, S]
    return t, torch.full_like(t, width)
