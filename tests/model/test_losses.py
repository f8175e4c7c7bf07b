"""The distortion term: the spread of a ray's weights along it."""

from __future__ import annotations

import pytest
import torch

from syncanim.model.losses import distortion


def _brute(w, t, d, span):
    m, dd = t / span, d / span
    pairs = (w[:, :, None] * w[:, None, :] * (m[:, :, None] - m[:, None, :]).abs()).sum((1, 2))
    return (pairs + (w * w * dd).sum(-1) / 3).mean()


def test_matches_the_pairwise_definition():
    g = torch.Generator().manual_seed(0)
    w = torch.rand(5, 12, generator=g) / 6
    t = torch.sort(torch.rand(5, 12, generator=g) * 0.06, -1).values
    d = torch.full_like(t, 0.005)
    torch.testing.assert_close(distortion(w, t, d, 0.06), _brute(w, t, d, 0.06))


def test_a_surface_scores_low_and_a_spread_ray_high():
    s = 64
    t = (torch.arange(s) + 0.5)[None] / s  # [1, S] over a span of 1
    d = torch.full_like(t, 1 / s)
    surface = torch.zeros(1, s)
    surface[0, 20] = 1.0
    spread = torch.full((1, s), 1 / s)
    assert float(distortion(surface, t, d, 1.0)) == pytest.approx(1 / (3 * s))
    assert float(distortion(spread, t, d, 1.0)) == pytest.approx(1 / 3, abs=0.01)
    # the span makes it unit-free
    assert float(distortion(spread, 0.06 * t, 0.06 * d, 0.06)) == pytest.approx(float(distortion(spread, t, d, 1.0)))


def test_its_gradient_gathers_the_weight():
    s = 16
    t = (torch.arange(s) + 0.5)[None] / s
    d = torch.full_like(t, 1 / s)
    w = torch.full((1, s), 1 / s, requires_grad=True)
    distortion(w, t, d, 1.0).backward()
    # moving weight from the ends to the middle lowers it: the ends' gradient is the larger
    assert float(w.grad[0, 0]) > float(w.grad[0, s // 2])
