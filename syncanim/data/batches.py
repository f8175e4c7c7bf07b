"""Training batches on the training device: random rays of a few frames, or patches around the mouth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .dataset import HeadData, eye_boxes, mouth_boxes


@dataclass
class DeviceData:
    """The dataset as tensors on one device (images stay uint8 until sampled)."""

    frames: torch.Tensor  # [N, H, W, 3] uint8
    backgrounds: torch.Tensor  # [N, H, W, 3] uint8
    rotation: torch.Tensor  # [N, 3, 3] float32
    translation: torch.Tensor  # [N, 3] float32
    audio: torch.Tensor  # [N, P, F] float32
    expressions: torch.Tensor  # [N, E] float32
    codes: torch.Tensor  # [N, C] float32: each frame's mouth code, measured on its landmarks
    rects: torch.Tensor  # [N, 4] long: x0, y0, x1, y1 of the head's projected box
    mouths: torch.Tensor  # [N, 2] long: top-left of the mouth patch
    eyes: torch.Tensor  # [N, 4] long: x0, y0, x1, y1 of the box around both eyes
    focal: float
    cx: float
    cy: float
    num_train: int
    patch: int
    weight: torch.Tensor | None = None  # [N] float: how often ray batches draw each training frame (None: alike)
    lip_weight: torch.Tensor | None = None  # [N] float: how often lip patches draw each training frame (None: alike)

    @property
    def size(self) -> int:
        return self.frames.shape[1]


def to_device(data: HeadData, device: torch.device, rects: np.ndarray, patch: int, codes: np.ndarray,
              weight: np.ndarray | None = None, lip_weight: np.ndarray | None = None) -> DeviceData:
    """Move a loaded dataset to ``device``. rects: [N, 4] head rectangles (see model.rays.project_box);
    codes: [N, C] mouth codes (see syncanim.face.mouth.MouthBasis); weight / lip_weight: [N] how often ray
    batches / lip patches draw each frame (None: all alike)."""
    return DeviceData(
        frames=torch.from_numpy(data.frames).to(device), backgrounds=torch.from_numpy(data.backgrounds).to(device),
        rotation=torch.from_numpy(data.rotation).to(device), translation=torch.from_numpy(data.translation).to(device),
        audio=torch.from_numpy(data.audio).to(device), expressions=torch.from_numpy(data.expressions).to(device),
        codes=torch.from_numpy(np.nan_to_num(codes).astype(np.float32)).to(device),
        rects=torch.from_numpy(rects.astype(np.int64)).to(device),
        mouths=torch.from_numpy(mouth_boxes(data.landmarks, data.size, patch)).to(device),
        eyes=torch.from_numpy(eye_boxes(data.landmarks, data.size)).to(device),
        focal=data.focal, cx=data.cx, cy=data.cy, num_train=data.num_train, patch=patch,
        weight=None if weight is None else torch.as_tensor(weight, dtype=torch.float32).to(device),
        lip_weight=None if lip_weight is None else torch.as_tensor(lip_weight, dtype=torch.float32).to(device),
    )


def blink_weight(expressions: np.ndarray, blink_columns: list[int], boost: float) -> np.ndarray | None:
    """Draw weights ``[N]`` that favour frames with closed eyes: ``1 + boost * closure``, the closure the
    larger of the ``blink_columns`` of ``expressions [N, E]`` (0 open .. 1 shut); None when ``boost`` is 0."""
    if boost <= 0 or not blink_columns:
        return None
    closure = np.clip(np.asarray(expressions, np.float64)[:, blink_columns].max(1), 0.0, 1.0)
    return 1.0 + boost * closure


def mouth_weight(opening: np.ndarray, num_train: int, boost: float) -> np.ndarray | None:
    """Draw weights ``[N]`` that favour frames with an open mouth: ``1 + boost * r``, ``r`` the frame's inner-lip
    ``opening [N]`` between the training frames' median (0) and their 95th percentile (1), clipped to [0, 1] (a frame
    without an opening counts as the median); None when ``boost`` is 0. The wide-open frames a clip has few of are
    the head's to learn as well as the closed ones it has many of."""
    if boost <= 0:
        return None
    o = np.asarray(opening, np.float64)
    seen = o[:num_train][np.isfinite(o[:num_train])]
    if len(seen) == 0:
        return None
    mid, top = float(np.median(seen)), float(np.percentile(seen, 95))
    r = np.clip((np.nan_to_num(o, nan=mid) - mid) / max(top - mid, 1e-9), 0.0, 1.0)
    return 1.0 + boost * r


def draw_frames(weight: torch.Tensor | None, num_train: int, count: int, gen: torch.Generator,
                device: torch.device) -> torch.Tensor:
    """``count`` random training frames ``[count]`` long on ``device``: drawn by ``weight [N]`` (with replacement),
    or all alike when it is None."""
    if weight is None:
        return torch.randint(0, num_train, (count,), generator=gen, device=gen.device).to(device)
    return torch.multinomial(weight[:num_train].to(gen.device), count, replacement=True, generator=gen).to(device)


@dataclass
class Batch:
    frames: torch.Tensor  # [B] long: dataset frame of each batch row
    pixels: torch.Tensor  # [B, R, 2] float: pixel centres (u, v)
    target: torch.Tensor  # [B, R, 3] float in [0, 1]
    background: torch.Tensor  # [B, R, 3] float in [0, 1]


def _gather(images: torch.Tensor, frames: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """images: [N, H, W, 3] uint8, frames: [B], xy: [B, R, 2] long -> [B, R, 3] float in [0, 1]."""
    return images[frames[:, None], xy[..., 1], xy[..., 0]].float() / 255.0


def ray_batch(d: DeviceData, frames_per_step: int, rays: int, head_share: float, gen: torch.Generator,
              mouth_share: float = 0.0, eye_share: float = 0.0) -> Batch:
    """``rays`` random rays from ``frames_per_step`` random training frames (drawn by ``d.weight`` when it
    is set): ``mouth_share`` of them in the ``patch`` square around each frame's mouth, ``eye_share`` in the
    box around its eyes, then ``head_share`` inside its head rectangle (fewer when the shares pass 1), the
    rest anywhere in the frame (none when they reach 1)."""
    dev = d.frames.device
    b = frames_per_step
    per = max(1, rays // b)
    frames = draw_frames(d.weight, d.num_train, b, gen, dev)
    n_mouth = int(round(per * mouth_share))
    n_eye = min(per, n_mouth + int(round(per * eye_share)))
    n_head = min(per, n_eye + int(round(per * head_share)))
    u = torch.rand((b, per, 2), generator=gen, device=gen.device).to(dev)
    rect = d.rects[frames].float()  # [B, 4]
    eyes = d.eyes[frames].float()  # [B, 4]
    lo = torch.zeros(b, per, 2, device=dev)
    span = torch.full((b, per, 2), float(d.size), device=dev)
    lo[:, n_eye:n_head] = rect[:, None, :2]
    span[:, n_eye:n_head] = (rect[:, 2:] - rect[:, :2]).clamp_min(1)[:, None, :]
    lo[:, n_mouth:n_eye] = eyes[:, None, :2]
    span[:, n_mouth:n_eye] = (eyes[:, 2:] - eyes[:, :2]).clamp_min(1)[:, None, :]
    lo[:, :n_mouth] = d.mouths[frames].float()[:, None, :]
    span[:, :n_mouth] = float(d.patch)
    xy = (lo + u * span).long().clamp(0, d.size - 1)
    return Batch(frames, xy.float() + 0.5, _gather(d.frames, frames, xy), _gather(d.backgrounds, frames, xy))


def patch_batch(d: DeviceData, frames_per_step: int, gen: torch.Generator) -> Batch:
    """A ``patch`` x ``patch`` square of pixels around the mouth of each of ``frames_per_step`` frames (drawn by
    ``d.lip_weight`` when it is set), shifted by up to a quarter patch at random. Pixels are row-major, so
    ``[B, p*p]`` reshapes to ``[B, p, p]``."""
    dev = d.frames.device
    b, p = frames_per_step, d.patch
    frames = draw_frames(d.lip_weight, d.num_train, b, gen, dev)
    jitter = (torch.rand((b, 2), generator=gen, device=gen.device).to(dev) - 0.5) * (p / 2)
    corner = (d.mouths[frames].float() + jitter).round().long().clamp(0, d.size - p)  # [B, 2]
    ys, xs = torch.meshgrid(torch.arange(p, device=dev), torch.arange(p, device=dev), indexing="ij")
    xy = torch.stack([xs, ys], -1).view(1, -1, 2) + corner[:, None, :]  # [B, p*p, 2]
    return Batch(frames, xy.float() + 0.5, _gather(d.frames, frames, xy), _gather(d.backgrounds, frames, xy))
