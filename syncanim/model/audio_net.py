"""The audio encoder: per-frame speech features -> one conditioning vector per video frame.

Each frame's features (``[P, F]``: P vectors per frame from the audio backend) go through a small
network to ``dim`` numbers; a window of ``W`` neighbouring frames is then blended with learned
attention weights (as AD-NeRF / ER-NeRF smooth their audio), so the mouth moves smoothly and can
anticipate or lag the sound by a frame or two.
"""

from __future__ import annotations

import torch
from torch import nn


class FrameAudioNet(nn.Module):
    """[..., P, F] -> [..., dim]."""

    def __init__(self, per_frame: int, feat_dim: int, dim: int = 32, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(per_frame * feat_dim, hidden), nn.LeakyReLU(0.02),
            nn.Linear(hidden, hidden // 2), nn.LeakyReLU(0.02),
            nn.Linear(hidden // 2, dim),
        )

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(feats.flatten(-2))


class WindowAttention(nn.Module):
    """Blend a window of per-frame vectors. [B, W, D] -> [B, D] (weights: softmax over W)."""

    def __init__(self, dim: int, window: int) -> None:
        super().__init__()
        self.window = window
        self.score = nn.Sequential(
            nn.Conv1d(dim, 16, 3, padding=1), nn.LeakyReLU(0.02),
            nn.Conv1d(16, 8, 3, padding=1), nn.LeakyReLU(0.02),
            nn.Conv1d(8, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.score(x.transpose(1, 2)).squeeze(1), dim=-1)  # [B, W]
        return (w[..., None] * x).sum(1)


def window_indices(frames: torch.Tensor, window: int, num_frames: int) -> torch.Tensor:
    """Indices of the ``window`` frames centred on each frame, clamped at the ends. [B] -> [B, W] long."""
    offsets = torch.arange(window, device=frames.device) - window // 2
    return (frames[:, None] + offsets).clamp(0, num_frames - 1)


class AudioEncoder(nn.Module):
    """features: [T, P, F] for a whole clip, frames: [B] -> conditioning [B, dim]."""

    def __init__(self, per_frame: int, feat_dim: int, dim: int = 32, window: int = 8) -> None:
        super().__init__()
        self.frame_net = FrameAudioNet(per_frame, feat_dim, dim)
        self.attention = WindowAttention(dim, window)
        self.window = window
        self.dim = dim

    def forward(self, features: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        idx = window_indices(frames, self.window, features.shape[0])  # [B, W]
        per_frame = self.frame_net(features[idx])  # [B, W, dim]
        return self.attention(per_frame)
