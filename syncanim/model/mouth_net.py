"""The mouth predictor: speech features -> the subject's mouth code, frame by frame.

For frame ``t`` it reads the features of frames ``t - past .. t + future`` (indices clamped at the
ends of the clip): each frame's ``[P, F]`` features are normalised with the training statistics,
dropped out and projected to ``hidden`` channels, then ``layers`` residual convolutions without
padding consume the window (each layer a part of the past and a part of the future), and a linear
layer gives the ``C`` numbers of the mouth code (:class:`syncanim.face.mouth.MouthBasis`), scaled by a
per-component ``gain`` calibrated on held-out frames, then mixed by ``mix [C, C]`` (the identity unless the
fit damps the shape across the mouth opening: :mod:`syncanim.train.mouth`).

The window is bounded, so the predictor runs on a stream: frame ``t`` is known ``future`` frames
after its audio, plus the audio encoder's own look-ahead.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def split_span(total: int, parts: int) -> list[int]:
    """``total`` frames shared by ``parts`` layers as evenly as possible, the larger shares first."""
    base, rem = divmod(total, parts)
    return [base + (1 if i < rem else 0) for i in range(parts)]


def window_indices(frames: torch.Tensor, past: int, future: int, num_frames: int) -> torch.Tensor:
    """Indices of frames ``t - past .. t + future`` for each ``t`` in ``frames: [B] long``, clamped to
    the clip -> ``[B, past + future + 1] long``."""
    offsets = torch.arange(-past, future + 1, device=frames.device)
    return (frames[:, None] + offsets).clamp(0, num_frames - 1)


class MouthPredictor(nn.Module):
    """features ``[T, P, F]`` of a clip and frames ``[B]`` -> mouth codes ``[B, C]``."""

    def __init__(self, per_frame: int, feat_dim: int, code_dim: int, hidden: int = 64, layers: int = 2,
                 past: int = 8, future: int = 8, dropout: float = 0.5, input_dropout: float = 0.5) -> None:
        super().__init__()
        if layers < 1 or past < 0 or future < 0 or past + future < layers:
            raise ValueError(f"MouthPredictor: need layers >= 1 and past + future >= layers, got layers={layers}, "
                             f"past={past}, future={future}")
        self.past, self.future, self.code_dim = past, future, code_dim
        fin = per_frame * feat_dim
        self.register_buffer("feat_mean", torch.zeros(fin))
        self.register_buffer("feat_std", torch.ones(fin))
        self.register_buffer("gain", torch.ones(code_dim))
        self.register_buffer("mix", torch.eye(code_dim))
        self.inp = nn.Sequential(nn.Dropout(input_dropout), nn.Linear(fin, hidden))
        spans = split_span(past + future, layers)
        fut = split_span(future, layers)
        self.cuts = [(s - f, f) for s, f in zip(spans, fut, strict=True)]  # (past, future) consumed per layer
        self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, s + 1) for s in spans)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, code_dim)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        # weights saved before ``mix`` existed: the identity, which is what they computed
        state_dict.setdefault(prefix + "mix", torch.eye(self.code_dim))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def window(self) -> int:
        return self.past + self.future + 1

    def forward_runs(self, x: torch.Tensor) -> torch.Tensor:
        """Codes along runs of consecutive frames: x ``[B, S, P, F]`` -> ``[B, S - past - future, C]``,
        output ``i`` being the frame at position ``past + i`` of the run."""
        return self.readout(self.hidden_runs(x))

    def hidden_runs(self, x: torch.Tensor) -> torch.Tensor:
        """What the speech-reading layers make of runs (all but the output layer): x ``[B, S, P, F]`` ->
        ``[B, S - past - future, hidden]``."""
        if x.ndim != 4 or x.shape[1] < self.window:
            raise ValueError(f"MouthPredictor: runs must be [B, S >= {self.window}, P, F], got {tuple(x.shape)}")
        z = (x.flatten(2).float() - self.feat_mean) / self.feat_std  # [B, S, P*F]
        h = self.inp(z).transpose(1, 2)  # [B, H, S]
        for conv, (b, f) in zip(self.convs, self.cuts, strict=True):
            h = h[:, :, b:h.shape[2] - f] + self.drop(F.gelu(conv(h)))
        return h.transpose(1, 2)

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """Codes from :meth:`hidden_runs`: ``[..., hidden]`` -> ``[..., C]`` (gain and mix applied)."""
        return (self.out(h) * self.gain) @ self.mix.T

    def windows(self, features: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """The features each frame's code reads: features ``[T, P, F]`` of the clip, frames ``[B] long`` ->
        ``[B, W, P, F]`` (clamped at the clip's ends); ``forward_runs`` of them gives the codes ``[B, 1, C]``."""
        return features[window_indices(frames, self.past, self.future, features.shape[0])]

    def forward(self, features: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """features: ``[T, P, F]`` of the clip; frames: ``[B] long`` -> codes ``[B, C]``."""
        return self.forward_runs(self.windows(features, frames))[:, 0]

    def run_features(self, features: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
        """The features that the codes of frames ``start .. start + length - 1`` read, for each of
        ``starts: [B] long`` (clamped at the ends of the clip): ``[T, P, F]`` -> ``[B, length + W - 1, P, F]``."""
        offsets = torch.arange(-self.past, length + self.future, device=starts.device)
        return features[(starts[:, None] + offsets).clamp(0, features.shape[0] - 1)]

    def run_codes(self, features: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
        """Codes of the frames ``start .. start + length - 1`` for each of ``starts: [B] long`` (windows
        clamped at the ends of the clip, as :meth:`forward` does) -> ``[B, length, C]``."""
        return self.forward_runs(self.run_features(features, starts, length))

    @torch.no_grad()
    def predict(self, features: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
        """Codes of every frame of a clip: ``[T, P, F]`` -> ``[T, C]`` (eval mode, in chunks of frames)."""
        was = self.training
        self.eval()
        t = features.shape[0]
        out = [self.run_codes(features, torch.tensor([s], device=features.device), min(chunk, t - s))[0]
               for s in range(0, t, chunk)]
        self.train(was)
        return torch.cat(out) if out else features.new_zeros(0, self.code_dim)
