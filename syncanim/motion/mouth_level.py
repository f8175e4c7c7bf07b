"""Mouth level: the mouth moves as much on new speech as on the subject's own.

The mouth predictor answers speech it has not heard (another voice, language or microphone) with codes
nearer the subject's average mouth than their own speech gets: a regression toward the mean that shows
as lips that barely part. A stream therefore follows how far its predicted codes stray from the subject's
closed mouth while speech is heard, and scales that distance up to the subject's own speaking level:

- **rest** ``r [C]``: the mean code of the subject's training frames with the least open mouth (the
  lowest ``REST_SHARE`` of the opening).
- **level** of codes ``c [T, C]``: ``sqrt(mean_t sum_k w_k (c[t, k] - r[k])^2)`` over the speech frames,
  ``w`` each component's share of the mouth's variance (:class:`~syncanim.face.mouth.MouthBasis`).
- **reference**: the level of the subject's own codes over their training speech, times the gain the
  predictor was calibrated to render with (its codes ask for more than the head renders).
- **stream** (:class:`MouthLevel`): a running mean of the squared distance over the speech frames heard
  so far (:class:`~syncanim.motion.syncer.SpeechGate`), which starts at the reference as if ``prior_s``
  of it had been heard and then forgets with time constant ``window_s``; frame ``t``'s gain is
  ``clip(reference / running level, 1, max_gain)`` and its code becomes ``r + gain * (c - r)``. Silence
  leaves the running level alone, so the mouth at rest stays at rest; a gain never drops below 1 while speech is
  heard.
- **silence**: the subject's mouth in their own pauses, the :data:`SILENCE_QUANTILE` quantile of the distance of
  their codes from the rest over the training frames without speech. In a frame the stream hears no speech in,
  a code further from the rest is drawn back to that distance. The predictor can answer a pause it has not heard
  (a studio's clean silence, where the subject's clip had room noise) with a mouth wider open than in any of the
  subject's pauses or words; the subject's own pauses, breaths included, stay as they are.

Causal (each frame's gain reads its own and earlier frames), so ``render`` and ``live`` level alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..device import to_device
from .syncer import SpeechGate

#: the share of the training frames, least open mouth first, whose mean code is the mouth at rest
REST_SHARE = 0.1
#: the quantile of the subject's distances from the rest in their pauses that the mouth keeps to in silence
SILENCE_QUANTILE = 0.5


@dataclass(frozen=True)
class LevelReference:
    """A subject's mouth at rest ``rest [C]``, the component weights ``weight [C]``, the speaking ``level`` the
    stream aims for and the distance from the rest the mouth keeps to in ``silence`` (module doc; None: no bound,
    a model made before it)."""

    rest: np.ndarray
    weight: np.ndarray
    level: float
    silence: float | None = None

    def to_json(self) -> dict[str, Any]:
        d = {"rest": [float(v) for v in self.rest], "weight": [float(v) for v in self.weight],
             "level": float(self.level)}
        return d if self.silence is None else {**d, "silence": float(self.silence)}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LevelReference:
        silence = d.get("silence")
        return cls(np.asarray(d["rest"], np.float64), np.asarray(d["weight"], np.float64), float(d["level"]),
                   None if silence is None else float(silence))


def rest_code(codes: np.ndarray, opening: np.ndarray, share: float = REST_SHARE) -> np.ndarray:
    """The mean of ``codes [N, C]`` over the frames whose ``opening [N]`` is among the lowest ``share``
    (NaN rows left out) -> ``[C]``."""
    c, o = np.asarray(codes, np.float64), np.asarray(opening, np.float64)
    ok = np.isfinite(c).all(1) & np.isfinite(o)
    if not ok.any():
        raise ValueError("rest_code: no frame with a code and an opening")
    c, o = c[ok], o[ok]
    k = max(1, int(round(share * len(o))))
    return c[np.argsort(o, kind="stable")[:k]].mean(0)


def code_level(codes: np.ndarray, rest: np.ndarray, weight: np.ndarray) -> float:
    """The level of ``codes [T, C]`` about ``rest [C]`` with component weights ``weight [C]`` (module doc;
    NaN rows left out; 0 for none)."""
    c = np.asarray(codes, np.float64)
    c = c[np.isfinite(c).all(1)]
    if len(c) == 0:
        return 0.0
    return float(np.sqrt((((c - rest) ** 2) * weight).sum(1).mean()))


def level_reference(codes: np.ndarray, opening: np.ndarray, speech: np.ndarray, weight: np.ndarray,
                    render_gain: float) -> LevelReference:
    """The reference of a subject from the codes ``[N, C]`` and openings ``[N]`` of their training frames,
    which of them hold speech ``[N] bool`` and the component weights ``[C]``."""
    rest = rest_code(codes, opening)
    w = np.asarray(weight, np.float64)
    sp = np.asarray(speech, bool)
    c = np.asarray(codes, np.float64)
    level = code_level(c[sp] if sp.sum() >= 2 else c, rest, w)
    quiet = c[~sp]
    quiet = quiet[np.isfinite(quiet).all(1)]
    silence = float(np.quantile(np.sqrt((((quiet - rest) ** 2) * w).sum(1)), SILENCE_QUANTILE)) if len(quiet) >= 2 \
        else None
    return LevelReference(rest, w, level * render_gain, silence)


class MouthLevel:
    """One stream's mouth level (module doc): push each frame's predicted code and loudness, in order."""

    def __init__(self, ref: LevelReference, fps: float, max_gain: float, window_s: float = 4.0,
                 prior_s: float = 0.5) -> None:
        if max_gain < 1:
            raise ValueError(f"MouthLevel: max_gain must be >= 1, got {max_gain}")
        self.ref, self.max_gain = ref, float(max_gain)
        self.window = max(1.0, window_s * fps)  # frames of speech the running level forgets over
        self.weight = float(max(1.0, prior_s * fps))  # frames of speech the running level stands for
        self.mean_sq = ref.level ** 2
        self.gate = SpeechGate(fps)

    def gains(self, sq: np.ndarray, rms: np.ndarray) -> np.ndarray:
        """The gain of each of the next frames from their codes' squared distances to the rest (:func:`distances`)
        ``sq [B]`` and their loudness ``rms [B]`` -> ``[B]`` (the running level moves on past them)."""
        if self.max_gain == 1 or self.ref.level <= 0:
            return np.ones(len(sq))
        out = np.empty(len(sq))
        quiet = self.ref.silence
        for t, (d, r) in enumerate(zip(np.asarray(sq, np.float64), np.asarray(rms, np.float64).reshape(-1),
                                       strict=True)):
            if self.gate.step(float(r)):
                self.weight = min(self.weight + 1.0, self.window)
                self.mean_sq += (d - self.mean_sq) / self.weight
            elif quiet is not None and d > quiet * quiet:  # silence: no further from the rest than the subject's pauses
                out[t] = quiet / math.sqrt(d)
                continue
            level = math.sqrt(max(self.mean_sq, 0.0))
            out[t] = min(self.max_gain, max(1.0, self.ref.level / level)) if level > 0 else self.max_gain
        return out

    def apply(self, codes: torch.Tensor, rms: np.ndarray) -> torch.Tensor:
        """The next frames' codes ``[B, C]`` levelled (their loudness ``rms [B]``) -> ``[B, C]``."""
        return apply_levels([(self, len(codes), rms)], codes)


def distances(codes: torch.Tensor, rest: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted squared distances of codes ``[B, C]`` to rests ``[B, C]`` with weights ``[B, C]`` -> ``[B]``."""
    return (((codes.float() - rest) ** 2) * weight).sum(1)


def apply_levels(parts: list[tuple[MouthLevel | None, int, np.ndarray]], codes: torch.Tensor) -> torch.Tensor:
    """Several streams' next frames levelled at once: ``parts`` (each stream's level or None: left as they are,
    its number of frames, their loudness) in the order of the rows of ``codes [sum B, C]`` -> ``[sum B, C]``.
    The same codes as each :meth:`MouthLevel.apply` in turn, with one read-back of the distances for all (a
    read-back waits for the device) and no other wait."""
    if all(level is None for level, _, _ in parts):
        return codes
    n, c = codes.shape
    rest, weight = np.zeros((n, c), np.float32), np.zeros((n, c), np.float32)
    row = 0
    for level, b, _ in parts:  # no level: rest 0 and gain 1 leave the rows exactly as they are
        if level is not None:
            rest[row:row + b], weight[row:row + b] = level.ref.rest, level.ref.weight
        row += b
    if row != n:
        raise ValueError(f"apply_levels: the parts have {row} frames, the codes {n}")
    ref = to_device(np.stack([rest, weight]), codes.device)  # [2, N, C]
    sq = distances(codes, ref[0], ref[1]).double().cpu().numpy()  # [N]
    gains, row = np.ones(n), 0
    for level, b, rms in parts:
        if level is not None:
            gains[row:row + b] = level.gains(sq[row:row + b], rms)
        row += b
    g = to_device(gains, codes.device, codes.dtype)[:, None]
    r = ref[0].to(codes.dtype)
    return r + g * (codes - r)


def stream_level(mouth: dict[str, Any], fps: float, max_gain: float) -> MouthLevel | None:
    """A new stream's :class:`MouthLevel` for a model's ``mouth`` section (model.json), or None: off
    (``max_gain`` 1) or a model trained without a reference."""
    ref = mouth.get("level")
    return MouthLevel(LevelReference.from_json(ref), fps, max_gain) if ref is not None and max_gain > 1 else None
