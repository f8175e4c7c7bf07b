"""Whole images from the head model: rays for the pixels where the head can be, the rest is background."""

from __future__ import annotations

import numpy as np
import torch

from .head import NerfHead
from .rays import pixel_rays, project_box


def head_rects(model: NerfHead, rotation: np.ndarray, translation: np.ndarray, focal: float, cx: float, cy: float,
               size: int) -> np.ndarray:
    """Pixel rectangles [N, 4] (x0, y0, x1, y1) of the projected occupied part of the head box, N poses."""
    lo, hi = (t.cpu().numpy() for t in model.occupied_box())
    return np.array([project_box(r, t, focal, cx, cy, lo, hi, size, size) for r, t in zip(rotation, translation, strict=False)],
                    np.int64).reshape(-1, 4)


@torch.no_grad()
def render_views(model: NerfHead, rotation: torch.Tensor, translation: torch.Tensor, focal: float, cx: float,
                 cy: float, audio: torch.Tensor, expr: torch.Tensor, latent: torch.Tensor,
                 backgrounds: torch.Tensor, rects: np.ndarray, chunk: int = 1 << 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Render B frames.

    rotation: [B, 3, 3], translation: [B, 3], audio: [B, A], expr: [B, E], latent: [B, L],
    backgrounds: [B, H, W, 3] float in [0, 1], rects: [B, 4] pixel rectangles to render.
    Returns images [B, H, W, 3] float and opacity [B, H, W] float (0 outside the rectangles).
    """
    dev = backgrounds.device
    b, h, w, _ = backgrounds.shape
    images = backgrounds.clone()
    opacity = torch.zeros(b, h, w, device=dev)
    pix, cond, where = [], [], []
    for i, (x0, y0, x1, y1) in enumerate(rects.tolist()):
        if x1 <= x0 or y1 <= y0:
            continue
        ys, xs = torch.meshgrid(torch.arange(y0, y1, device=dev), torch.arange(x0, x1, device=dev), indexing="ij")
        xy = torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)
        pix.append(xy)
        cond.append(torch.full((len(xy),), i, device=dev, dtype=torch.long))
        where.append(xy)
    if not pix:
        return images, opacity
    xy = torch.cat(pix)
    ray_cond = torch.cat(cond)
    o, d = pixel_rays(rotation[ray_cond], translation[ray_cond], focal, cx, cy,
                      xy.float()[:, None, :] + 0.5)
    o, d = o[:, 0], d[:, 0]
    bg = backgrounds[ray_cond, xy[:, 1], xy[:, 0]]
    for s in range(0, len(xy), chunk):
        sl = slice(s, s + chunk)
        out = model.render_rays(o[sl], d[sl], ray_cond[sl], audio, expr, latent, bg[sl])
        images[ray_cond[sl], xy[sl, 1], xy[sl, 0]] = out["color"].to(images.dtype)
        opacity[ray_cond[sl], xy[sl, 1], xy[sl, 0]] = out["opacity"].float()
    return images, opacity
