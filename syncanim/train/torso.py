"""Fitting the torso field (:class:`syncanim.model.torso.TorsoField`) after the head.

Each step takes ``frames_per_step`` random training frames and ``pixels`` pixels among them, most
inside the box around the person (where the torso changes with the pose), the rest anywhere; the
field's torso over the background plate is fitted to what the head is trained over (the frame with
the head replaced by the plate, :func:`syncanim.data.dataset.torso_background`) by mean squared error.
Adam, feature planes at ``lr_planes`` and MLPs at ``lr_net``, both decaying to a tenth. The held-out
frames' PSNR over their person boxes is reported.

With ``scene_frames`` set, each training frame also gets a **scene code** (:class:`SceneCodes`), so what
the pose does not explain and that changes slowly through the clip (the camera moved, the light changed)
need not be averaged into one body. After the fit the code of the clip's last frame is folded into the
field's weights: renders, held-out frames and new speech alike, show the subject as the clip ends, and
the saved field is the same as without codes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..config import TorsoTrainConfig
from ..console import ProgressFn, no_progress
from ..data.labels import TORSO
from ..model.torso import TorsoArch, TorsoField

Shift = tuple[torch.Tensor, torch.Tensor]


@dataclass
class TorsoFitReport:
    steps: int
    seconds: float
    loss: float  # mean squared error of the last 10 % of the steps
    holdout_psnr: float | None  # over the held-out frames' person boxes (8-bit levels), None without held-out frames
    scene_frame: int | None = None  # the training frame whose scene code was folded into the field; None: no scene codes


def person_boxes(labels: np.ndarray, margin: int) -> np.ndarray:
    """Boxes ``[N, 4]`` (x0, y0, x1, y1; end exclusive) around the labelled person of each label map ``[N, H, W]``
    (any label from torso up), grown by ``margin`` pixels; the whole image where no person is labelled."""
    n, h, w = labels.shape
    out = np.tile(np.array([0, 0, w, h], np.int64), (n, 1))
    for k in range(n):
        person = labels[k] >= TORSO
        rows, cols = np.flatnonzero(person.any(1)), np.flatnonzero(person.any(0))
        if len(rows):
            out[k] = [max(0, cols[0] - margin), max(0, rows[0] - margin), min(w, cols[-1] + 1 + margin),
                      min(h, rows[-1] + 1 + margin)]
    return out


def sample_pixels(boxes: torch.Tensor, frames: torch.Tensor, count: int, person_share: float, size: int,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` pixels spread over ``frames: [B] long``, ``person_share`` of them inside each frame's box
    (``boxes: [N, 4]``) -> (x ``[B, P]``, y ``[B, P]``) long, P = count // B."""
    b = len(frames)
    p = max(1, count // b)
    inside = int(round(p * person_share))
    u = torch.rand(b, p, 2, generator=gen, device=gen.device).to(boxes.device)
    box = boxes[frames].float()  # [B, 4]
    x = torch.where(torch.arange(p, device=boxes.device) < inside, box[:, None, 0] + u[..., 0] * (box[:, None, 2] - box[:, None, 0]),
                    u[..., 0] * size)
    y = torch.where(torch.arange(p, device=boxes.device) < inside, box[:, None, 1] + u[..., 1] * (box[:, None, 3] - box[:, None, 1]),
                    u[..., 1] * size)
    return x.long().clamp(0, size - 1), y.long().clamp(0, size - 1)


class SceneCodes(torch.nn.Module):
    """Training-only codes of slow change: ``dim`` numbers at knots spread evenly over the training frames
    ``0 .. num_train - 1`` (about ``spacing`` frames apart, the first and last frames on knots), interpolated
    linearly in between, and mapped by two linear maps to shifts of the first hidden layers of the field's offset
    and colour MLPs (:meth:`syncanim.model.torso.TorsoField.forward`)."""

    def __init__(self, num_train: int, spacing: int, dim: int, hidden: int) -> None:
        super().__init__()
        self.last = max(0, num_train - 1)  # the last training frame, the one folded
        knots = max(2, math.ceil(self.last / max(1, spacing)) + 1)
        self.knots = torch.nn.Parameter(torch.zeros(knots, dim))
        gen = torch.Generator().manual_seed(0)
        self.maps = torch.nn.ParameterList(torch.nn.Parameter(torch.randn(dim, hidden, generator=gen) / math.sqrt(dim))
                                           for _ in range(2))

    def forward(self, frames: torch.Tensor) -> Shift:
        """Training frames ``[B] long`` -> their shifts (``[B, hidden]`` offset, ``[B, hidden]`` colour)."""
        t = frames.float().clamp(0, self.last) / max(1, self.last) * (len(self.knots) - 1)  # [B] in knot units
        i = t.floor().long().clamp(max=len(self.knots) - 2)
        w = (t - i)[:, None]
        code = self.knots[i] * (1 - w) + self.knots[i + 1] * w  # [B, dim]
        return code @ self.maps[0], code @ self.maps[1]

    @torch.no_grad()
    def fold_last(self, field: TorsoField) -> None:
        """Add the last training frame's shifts to ``field``'s biases: it then renders that scene with no codes."""
        off, col = self(torch.tensor([self.last], device=self.knots.device))
        field.offset[0].bias += off[0]
        field.colour[0].bias += col[0]


def fit_torso(backgrounds: torch.Tensor, rotation: np.ndarray, translation: np.ndarray, plate: np.ndarray,
              boxes: np.ndarray, num_train: int, cfg: TorsoTrainConfig, gen: torch.Generator,
              progress: ProgressFn = no_progress) -> tuple[TorsoField, TorsoFitReport]:
    """The subject's torso (module doc). backgrounds ``[N, H, W, 3] uint8`` (on the training device);
    rotation ``[N, 3, 3]``, translation ``[N, 3]``; plate ``[H, W, 3] uint8``; boxes ``[N, 4]``
    (:func:`person_boxes`); frames ``0 .. num_train - 1`` are the training frames."""
    t0 = time.perf_counter()
    dev = backgrounds.device
    size = backgrounds.shape[1]
    # the field's first weights come from the fit's generator, not torch's global one: one seed, one torso
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen, device=gen.device).item())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        field = TorsoField(TorsoArch.of(cfg, size))
    field.set_normalisation(rotation[:num_train], translation[:num_train])
    with torch.no_grad():
        field.plate.copy_(torch.from_numpy(np.ascontiguousarray(plate)))
    field = field.to(dev)
    codes = field.codes(rotation, translation)  # [N, 6]
    box_t = torch.from_numpy(boxes).to(dev)
    plate_f = field.plate.float() / 255
    scenes = SceneCodes(num_train, cfg.scene_frames, cfg.scene_dim, cfg.hidden).to(dev) if cfg.scene_frames else None
    nets = [*field.offset.parameters(), *field.colour.parameters(), *(scenes.parameters() if scenes is not None else [])]
    opt = torch.optim.Adam([{"params": list(field.planes.parameters()), "lr": cfg.lr_planes},
                            {"params": nets, "lr": cfg.lr_net}])
    base = [g["lr"] for g in opt.param_groups]
    tail: list[float] = []

    def batch(frames: torch.Tensor, count: int, share: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = sample_pixels(box_t, frames, count, share, size, gen)
        xy = torch.stack([(x.float() + 0.5) / size, (y.float() + 0.5) / size], -1)  # [B, P, 2]
        target = backgrounds[frames[:, None], y, x].float() / 255  # [B, P, 3]
        return xy, target, plate_f[y, x]

    field.train()
    for step in range(cfg.steps):
        for g, lr in zip(opt.param_groups, base, strict=True):
            g["lr"] = lr * 0.1 ** (step / max(1, cfg.steps))
        frames = torch.randint(0, num_train, (cfg.frames_per_step,), generator=gen, device=gen.device).to(dev)
        xy, target, under = batch(frames, cfg.pixels, cfg.person_share)
        shift = scenes(frames) if scenes is not None else None
        loss = ((field.composite(xy, codes[frames], under, shift) - target) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= cfg.steps * 0.9:
            tail.append(float(loss.detach()))
        if (step + 1) % 50 == 0 or step + 1 == cfg.steps:
            progress("torso", step + 1, cfg.steps)
    field.eval()
    if scenes is not None:
        scenes.fold_last(field)
    held = None
    n = backgrounds.shape[0]
    if n > num_train:
        frames = torch.arange(num_train, n, device=dev)
        se, count = 0.0, 0
        with torch.no_grad():
            for s in range(0, len(frames), 16):
                f = frames[s:s + 16]
                xy, target, under = batch(f, 4096 * len(f), 1.0)
                se += float(((field.composite(xy, codes[f], under) - target) ** 2).sum())
                count += target.numel()
        held = -10 * math.log10(max(se / max(count, 1), 1e-12))
    report = TorsoFitReport(cfg.steps, time.perf_counter() - t0, float(np.mean(tail)) if tail else 0.0, held,
                            scenes.last if scenes is not None else None)
    return field, report
