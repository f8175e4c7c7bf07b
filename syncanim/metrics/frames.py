"""Rendered 8-bit frames scored against the real ones, frame by frame: PSNR over the frame and over the
face box, and SSIM. What ``render --split val``, ``eval`` and the GPU benchmark report.

PSNR is taken on 8-bit levels with exact integer arithmetic (it equals :func:`syncanim.metrics.image.psnr`
of the same frames; ``inf`` for identical frames). SSIM is :func:`syncanim.metrics.image.ssim_map`
evaluated in float32, about three times faster on a CPU than the float64
:func:`~syncanim.metrics.image.ssim`; the two differ by < 1e-6.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..face.boxes import Box
from .image import ssim_map


def psnr_8bit(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """PSNR in dB of 8-bit frames: ``[B, H, W, 3] uint8`` each -> ``[B] float64`` (data range 255, the
    mean squared error over pixels and channels; ``inf`` for identical frames)."""
    if pred.shape != target.shape or pred.dtype != np.uint8 or target.dtype != np.uint8 or pred.ndim != 4:
        raise ValueError(f"psnr_8bit: need two [B, H, W, 3] uint8 arrays, got {pred.shape} {pred.dtype} "
                         f"and {target.shape} {target.dtype}")
    d = pred.astype(np.int32) - target.astype(np.int32)  # [B, H, W, 3]
    se = np.einsum("bhwc,bhwc->b", d, d, dtype=np.int64).astype(np.float64)  # [B]
    mse = se / (d[0].size * 255.0**2) if len(d) else se
    with np.errstate(divide="ignore"):
        return np.where(mse > 0, -10.0 * np.log10(np.where(mse > 0, mse, 1.0)), np.inf)


def ssim_8bit(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Mean SSIM of each frame pair: ``[B, H, W, 3] uint8`` each -> ``[B] float64``."""
    x = torch.from_numpy(pred).permute(0, 3, 1, 2).float() / 255  # [B, 3, H, W]
    y = torch.from_numpy(target).permute(0, 3, 1, 2).float() / 255
    return ssim_map(x, y, data_range=1.0).mean((1, 2, 3)).double().numpy()


@dataclass(frozen=True)
class FrameScores:
    """Per-frame scores of B frames (float64 [B] each): ``psnr`` and ``ssim`` over the whole frame,
    ``psnr_face`` over the face box (NaN for frames without one)."""

    psnr: np.ndarray
    psnr_face: np.ndarray
    ssim: np.ndarray

    def means(self) -> dict[str, float]:
        """The clip's means: psnr, psnr_face (over the frames with a face box; NaN without any), ssim."""
        face = self.psnr_face[~np.isnan(self.psnr_face)]
        nan = float("nan")
        return {"psnr": float(np.mean(self.psnr)) if len(self.psnr) else nan,
                "psnr_face": float(np.mean(face)) if len(face) else nan,
                "ssim": float(np.mean(self.ssim)) if len(self.ssim) else nan}


def score_frames(pred: np.ndarray, target: np.ndarray, boxes: Sequence[Box | None]) -> FrameScores:
    """Scores of ``pred`` against ``target`` (``[B, H, W, 3] uint8`` each); ``boxes[k]``: the face box
    of frame k, or None."""
    if len(boxes) != len(pred):
        raise ValueError(f"score_frames: {len(boxes)} face boxes for {len(pred)} frames")
    face = np.full(len(pred), np.nan)
    for i, box in enumerate(boxes):
        if box is not None:
            x0, y0, x1, y1 = box
            face[i] = psnr_8bit(pred[i:i + 1, y0:y1, x0:x1], target[i:i + 1, y0:y1, x0:x1])[0]
    return FrameScores(psnr_8bit(pred, target), face, ssim_8bit(pred, target))
