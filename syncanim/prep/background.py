"""The ``median-inpaint`` background plate: what is behind the person, from the pixels never covered.

Each chunk of frames averages the background pixels of every n-th frame (the person mask grown by
a margin, so the soft edge of the person never leaks in). The plate is the per-pixel median of the
chunk averages (robust to a passing change), and pixels no frame ever showed are filled in: by
default smoothly from the seen pixels around them (:func:`smooth_fill`, a push-pull pyramid: no
streaks fanning out from the edge, as a pixel-marching inpainter leaves across a large hole).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from ..config import Frozen
from ..registry import Spec


class MedianPlateConfig(Frozen):
    every: int = Field(5, ge=1)  # sample every n-th frame
    margin_px: int = Field(9, ge=0)  # grow the person mask by this much (at output size) before sampling
    fill: Literal["smooth", "telea"] = "smooth"  # never-seen pixels: push-pull pyramid, or OpenCV's Telea inpainting
    inpaint_radius: int = Field(5, ge=1)  # for fill = "telea"


@dataclass
class ChunkPlate:
    """Running sums for one chunk. total: [H, W, 3] float32 (sums of 8-bit values), count: [H, W] int32."""

    total: np.ndarray
    count: np.ndarray

    def mean(self) -> np.ndarray:
        """[H, W, 3] float32, NaN where the chunk never saw the background."""
        with np.errstate(invalid="ignore", divide="ignore"):
            m = (self.total / self.count[..., None]).astype(np.float32)
        m[self.count == 0] = np.nan
        return m


def smooth_fill(image: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``image [H, W, C]`` float32 with its unknown pixels (``known [H, W]`` bool false) filled by push-pull:
    the known pixels are averaged down a Gaussian pyramid (each level the weighted mean of the finer one),
    then each level's holes take the coarser level's estimate on the way up, blended by how much of a
    pixel was known. Known pixels keep their values; with no known pixel the result is zeros."""
    w = known.astype(np.float32)
    v = np.where(known[..., None], image, 0).astype(np.float32)
    levels = [(v, w)]
    while min(levels[-1][1].shape[:2]) > 2:
        v, w = levels[-1]
        levels.append((cv2.pyrDown(v), cv2.pyrDown(w)))
    v, w = levels[-1]
    est = _weighted(v, w)
    for v, w in reversed(levels[:-1]):
        up = cv2.pyrUp(est, dstsize=(v.shape[1], v.shape[0])).reshape(v.shape)
        a = np.clip(w, 0, 1)[..., None]
        est = a * _weighted(v, w) + (1 - a) * up
    return np.where(known[..., None], image, est).astype(np.float32)


def _weighted(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (v.reshape(*w.shape, -1) / np.maximum(w, 1e-6)[..., None]).reshape(v.shape)


def merge_plates(means: list[np.ndarray], radius: int, fill: str = "smooth") -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel median of chunk means, then the never-seen pixels filled (``fill``: "smooth", :func:`smooth_fill`;
    "telea", OpenCV's inpainting over ``radius`` px).

    means: list of [H, W, 3] float32 with NaN where unseen. Returns (plate [H, W, 3] uint8,
    unseen [H, W] bool).
    """
    if not means:
        raise ValueError("merge_plates needs at least one chunk")
    stack = np.stack(means)  # [C, H, W, 3]
    seen = ~np.isnan(stack[..., 0]).all(0)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels are filled below
            med = np.nanmedian(stack, axis=0)
    plate = np.nan_to_num(med, nan=0.0).clip(0, 255).astype(np.uint8)
    unseen = ~seen
    if unseen.all():
        return plate, unseen
    if unseen.any() and fill == "telea":
        plate = cv2.inpaint(plate, unseen.astype(np.uint8), radius, cv2.INPAINT_TELEA)
    elif unseen.any():
        plate = smooth_fill(plate.astype(np.float32), seen).round().clip(0, 255).astype(np.uint8)
    return plate, unseen


class MedianPlate:
    """Builds per-chunk sums (``new_chunk`` / ``add``) and the final plate (``merge``)."""

    def __init__(self, config: MedianPlateConfig) -> None:
        self.config = config
        k = 2 * config.margin_px + 1
        self._kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)) if config.margin_px else None

    def new_chunk(self, height: int, width: int) -> ChunkPlate:
        return ChunkPlate(np.zeros((height, width, 3), np.float32), np.zeros((height, width), np.int32))

    def add(self, acc: ChunkPlate, index: int, rgb: np.ndarray, labels: np.ndarray) -> None:
        """Accumulate frame ``index`` if it is sampled. rgb: [H, W, 3] uint8, labels: [H, W] uint8."""
        if index % self.config.every:
            return
        person = (labels > 0).astype(np.uint8)
        if self._kernel is not None:
            person = cv2.dilate(person, self._kernel)
        bg = (person == 0).astype(np.uint8)
        cv2.accumulate(rgb, acc.total, mask=bg)
        acc.count += bg

    def merge(self, means: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return merge_plates(means, self.config.inpaint_radius, self.config.fill)


SPEC = Spec(
    name="median-inpaint",
    config_model=MedianPlateConfig,
    build=MedianPlate,
    description="background plate: median over time of unoccupied pixels, never-seen pixels filled smoothly",
)
