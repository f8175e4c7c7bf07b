"""Mouth support: the head draws only mouth shapes it has seen often enough.

The head learns a mouth shape from the training frames that show it. A shape a clip shows once (cnn2: the
lips pressed together for half a second, 13 of 1617 frames) is learned from those few frames at their few
head poses, and drawn elsewhere it can come out as holes in the lips, the backdrop showing through. The mouth
predictor reaches for such shapes on new speech (a pause can sound like that one), and the mouth level
(:mod:`syncanim.motion.mouth_level`) can push a code further out.

So before a frame is drawn its code is checked against the codes of the training frames:

- **support** of a code ``c``: ``sum_n exp(-|c - s_n|^2 / (2 h^2))`` over the training codes ``s_n``, the
  distances in the mouth's shape space (each component weighted by its share of the mouth's variance, the
  weights summing to 1), ``h`` = :data:`BANDWIDTH`: about how many training frames show a shape like it;
- **typical support**: the median, over the training codes, of each one's support among the others; it grows with
  the clip's length (cnn2, 1617 training frames: 92; its first 20 s, 350 frames: 18);
- a code with support of at least ``share`` times the typical support (``min_frames``) is drawn as it is; any
  other is moved along the straight line towards the subject's mouth at rest
  (:func:`~syncanim.motion.mouth_level.rest_code`) to the first point whose support reaches ``min_frames``
  (searched in :data:`STEPS` steps, linear between the last two).

Per frame and without any state, so ``render`` and ``live`` bound alike. On the cnn2 clip with ``share`` 0.1, 6 % of
the training frames' own codes have less support (rare shapes, moved slightly), and so do 5-21 % of the codes
predicted for new speech.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..device import to_device

#: kernel width in the shape space, where the training codes' spread is 1
BANDWIDTH = 0.35
#: points tried along the line from a code to the mouth at rest
STEPS = 16


@dataclass(frozen=True)
class MouthSupport:
    """What a model's codes are checked against (module doc), on one device: the training frames' codes
    ``seen [N, C]``, the component ``weight [C]`` (summing to 1), the mouth at rest ``rest [C]`` and the support a
    code needs, ``min_frames``."""

    seen: torch.Tensor
    weight: torch.Tensor
    rest: torch.Tensor
    min_frames: float

    def apply(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, C]`` -> ``[B, C]``, each moved towards the rest as far as it needs (:func:`within_support`)."""
        return within_support(codes, self.seen, self.weight, self.rest, self.min_frames)


def support(codes: torch.Tensor, seen: torch.Tensor, weight: torch.Tensor,
            bandwidth: float = BANDWIDTH) -> torch.Tensor:
    """The support (module doc) of ``codes [..., C]`` among ``seen [N, C]`` with component weights ``weight [C]``
    (summing to 1) -> ``[...]``."""
    w = weight.to(codes.dtype).sqrt()
    flat = codes.reshape(-1, codes.shape[-1]) * w
    d2 = torch.cdist(flat, seen.to(codes.dtype) * w).square()  # [M, N]
    return torch.exp(-d2 / (2 * bandwidth * bandwidth)).sum(1).reshape(codes.shape[:-1])


def typical_support(seen: torch.Tensor, weight: torch.Tensor, bandwidth: float = BANDWIDTH,
                    rows: int = 2048) -> float:
    """The median over ``seen [N, C]`` (every ``ceil(N / rows)``-th of them, for long clips) of each code's support
    among the others (module doc)."""
    step = -(-seen.shape[0] // rows)
    return float((support(seen[::step], seen, weight, bandwidth) - 1).median())


def within_support(codes: torch.Tensor, seen: torch.Tensor, weight: torch.Tensor, rest: torch.Tensor,
                   min_frames: float, bandwidth: float = BANDWIDTH, steps: int = STEPS) -> torch.Tensor:
    """Each of ``codes [B, C]`` as it is where its support (:func:`support` among ``seen [N, C]``) reaches
    ``min_frames``, else moved towards ``rest [C]`` to the first point on the line that reaches it, the line tried
    at ``steps`` + 1 points and the support interpolated linearly between the last two (``rest`` itself when none
    does) -> ``[B, C]``. No read-back from the device."""
    if min_frames <= 0 or codes.shape[0] == 0:
        return codes
    x = codes.float()
    r = rest.to(x)
    t = torch.linspace(1.0, 0.0, steps + 1, device=x.device)  # [S]: 1 the code, 0 the rest
    path = r + t[None, :, None] * (x - r)[:, None, :]  # [B, S, C]
    dens = support(path, seen.to(x), weight.to(x), bandwidth)  # [B, S]
    ok = dens >= min_frames
    first = torch.where(ok.any(1), ok.to(torch.int8).argmax(1), torch.full_like(ok[:, 0], steps, dtype=torch.long))
    before = (first - 1).clamp_min(0)
    d1, d0 = dens.gather(1, first[:, None])[:, 0], dens.gather(1, before[:, None])[:, 0]
    frac = ((min_frames - d0) / (d1 - d0).clamp_min(1e-9)).clamp(0, 1)  # 0: the point before, 1: the first ok
    scale = torch.where(first == 0, 1.0, t[before] + (t[first] - t[before]) * frac)  # [B]
    return (r + scale[:, None] * (x - r)).to(codes.dtype)


def support_json(codes: np.ndarray, decimals: int = 3) -> list[list[float]]:
    """The training frames' codes ``[N, C]`` (NaN rows left out) as model.json keeps them."""
    c = np.asarray(codes, np.float64)
    c = c[np.isfinite(c).all(1)]
    return np.round(c, decimals).tolist()


def mouth_support(mouth: dict[str, Any], share: float, device: torch.device) -> MouthSupport | None:
    """The :class:`MouthSupport` of a model's ``mouth`` section (model.json) on ``device``, a code needing ``share``
    of the typical support (:func:`typical_support`), or None: off (``share`` 0) or a model trained without the
    codes or the rest it needs."""
    seen, level = mouth.get("seen"), mouth.get("level")
    if share <= 0 or not seen or level is None:
        return None
    s = torch.as_tensor(np.asarray(seen, np.float32))
    w = np.asarray(level["weight"], np.float64)
    w = torch.as_tensor((w / w.sum()).astype(np.float32))
    need = share * typical_support(s, w)
    return MouthSupport(to_device(s, device), to_device(w, device), to_device(np.asarray(level["rest"], np.float32),
                        device), need)


def apply_supports(parts: list[tuple[MouthSupport | None, int]], codes: torch.Tensor) -> torch.Tensor:
    """Several streams' next codes bounded at once: ``parts`` (each stream's support or None: left as they are, and
    its number of frames) in the order of the rows of ``codes [sum B, C]`` -> ``[sum B, C]``."""
    if sum(b for _, b in parts) != codes.shape[0]:
        raise ValueError(f"apply_supports: the parts have {sum(b for _, b in parts)} frames, the codes {codes.shape[0]}")
    if all(s is None for s, _ in parts):
        return codes
    first = parts[0][0]
    if all(s is first for s, _ in parts):  # one model's streams alike: one call
        return first.apply(codes)
    out, row = [], 0
    for s, b in parts:
        out.append(codes[row:row + b] if s is None else s.apply(codes[row:row + b]))
        row += b
    return torch.cat(out)
