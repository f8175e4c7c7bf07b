"""What the frames a head model renders are conditioned on: the inputs per frame, and their encoding.

:class:`FrameBatch` holds B frames' inputs as the pipelines have them (mouth codes, or a clip's
speech features; expressions; which lighting latents). A model's ``condition`` turns it into a
:class:`Conditioning`, the per-frame vectors its field reads, which rendering and training take.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: rows of a batch: a [K] long tensor or int array, or a slice
Rows = torch.Tensor | np.ndarray | slice


@dataclass(frozen=True)
class FrameBatch:
    """The inputs of B frames, before a model encodes them. Exactly one of ``codes`` and ``features``.

    expressions: [B, E] float, the expression coefficients of each frame.
    codes: [B, C] float, mouth codes (measured on landmarks, or predicted from speech beforehand).
    features: [T, P, F] float, the speech features of a clip, with ``frames: [B] long`` the clip frames
    of the batch (the mouth predictor reads a window of frames around each).
    latent_frames: [B] long, the training frame whose lighting latent each frame takes; None: their mean.
    """

    expressions: torch.Tensor
    codes: torch.Tensor | None = None
    features: torch.Tensor | None = None
    frames: torch.Tensor | None = None
    latent_frames: torch.Tensor | None = None

    def __post_init__(self) -> None:
        assert (self.codes is None) != (self.features is None), "FrameBatch: give either codes or features"
        assert (self.features is None) == (self.frames is None), "FrameBatch: features go with frames"
        b = self.expressions.shape[0]
        n = self.codes.shape[0] if self.codes is not None else self.frames.shape[0]  # type: ignore[union-attr]
        assert self.expressions.ndim == 2 and n == b, \
            f"FrameBatch: expressions [B, E] and codes [B, C] / frames [B] disagree: " \
            f"{tuple(self.expressions.shape)}, B={n}"

    def __len__(self) -> int:
        return self.expressions.shape[0]


@dataclass(frozen=True)
class Conditioning:
    """B frames' conditioning as the field reads it.

    mouth: [B, A] float, the mouth conditioning (the embedding of the mouth code).
    expressions: [B, E] float. latent: [B, L] float, the lighting codes.
    """

    mouth: torch.Tensor
    expressions: torch.Tensor
    latent: torch.Tensor

    def __post_init__(self) -> None:
        b = self.mouth.shape[0]
        assert self.expressions.shape[0] == b and self.latent.shape[0] == b, \
            f"Conditioning: mouth {tuple(self.mouth.shape)}, expressions {tuple(self.expressions.shape)} and " \
            f"latent {tuple(self.latent.shape)} must have the same B"

    def __len__(self) -> int:
        return self.mouth.shape[0]

    def __getitem__(self, rows: Rows) -> Conditioning:
        """The conditioning of some frames (``rows`` of this batch)."""
        return Conditioning(self.mouth[rows], self.expressions[rows], self.latent[rows])

    @staticmethod
    def cat(parts: list[Conditioning]) -> Conditioning:
        """Batches one after another: [B1 + B2 + ...]."""
        return Conditioning(torch.cat([c.mouth for c in parts]), torch.cat([c.expressions for c in parts]),
                            torch.cat([c.latent for c in parts]))
