"""The mouth backstop: what a ray through an open mouth ends on when the head lets it through."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from syncanim.bench import synthetic as syn
from syncanim.model.backstop import (
    DEFAULT_INSIDE,
    INNER_CONTOUR,
    backstop_ellipsoid,
    mouth_inside_colour,
    ray_hits_ellipsoid,
)
from syncanim.model.camera import Camera
from syncanim.model.conditioning import FrameBatch
from syncanim.model.head import NerfHead, NerfHeadConfig

SMALL = NerfHeadConfig(levels=4, log2_table=12, max_res=64, samples=8, hidden=16, audio_dim=8, geo_dim=4,
                       occupancy_res=16, prior_res=32)


def test_a_ray_hits_the_ellipsoid_only_in_front_of_it_and_within_its_axes():
    ellipsoid = torch.tensor([[0.0, 0.0, 1.0], [0.1, 0.2, 0.3]])
    origins = torch.tensor([[0.0, 0.0, 0.0], [0.09, 0.0, 0.0], [0.11, 0.0, 0.0], [0.0, 0.19, 0.0],
                            [0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 2.0]])
    dirs = torch.tensor([[0.0, 0.0, 1.0]] * 4 + [[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    hits = ray_hits_ellipsoid(origins, dirs, ellipsoid).tolist()
    # straight at it; just inside its x half-axis; just outside; inside its longer y half-axis; turned away;
    # starting inside it; past it
    assert hits == [True, True, False, True, False, True, False]


def test_the_ellipsoid_sits_behind_the_lips_and_scales_with_the_mouth():
    canonical = np.zeros((478, 3), np.float32)
    canonical[61], canonical[291] = (-0.025, 0.03, 0.0), (0.025, 0.03, 0.0)  # mouth corners: 5 cm apart
    for i, p in zip((13, 14, 78, 308), ((0, 0.028, 0), (0, 0.032, 0), (-0.02, 0.03, 0), (0.02, 0.03, 0)), strict=True):
        canonical[i] = p
    centre, axes = backstop_ellipsoid(canonical)
    np.testing.assert_allclose(centre, [0.0, 0.03 + 0.15 * 0.05, 0.35 * 0.05], atol=1e-7)
    np.testing.assert_allclose(axes, [0.45 * 0.05, 0.40 * 0.05, 0.20 * 0.05], atol=1e-7)
    assert centre[2] - axes[2] > 0  # its front is behind the lips (z grows away from the camera)
    np.testing.assert_allclose(backstop_ellipsoid(2 * canonical), 2 * np.stack([centre, axes]), rtol=1e-6)


def _mouth_frames(n: int, open_rows: int):
    """``n`` 64 px frames whose inner lips (a 20 x ``open_rows`` px box) enclose dark red over white teeth."""
    frames = np.full((n, 64, 64, 3), 200, np.uint8)
    lm = np.zeros((n, 478, 3), np.float32)
    ring = np.array([[22 + 20 * np.cos(a) / 2 + 10, 30 + open_rows * np.sin(a) / 2]
                     for a in np.linspace(0, 2 * np.pi, len(INNER_CONTOUR), endpoint=False)])
    lm[:, list(INNER_CONTOUR), :2] = ring
    frames[:, 30 - open_rows // 2:30, 22:42] = (250, 250, 250)  # teeth above the middle
    frames[:, 30:30 + open_rows // 2 + 1, 22:42] = (80, 20, 30)  # tongue and throat below
    return frames, lm


def test_the_inside_colour_is_the_dark_half_of_the_open_mouth_and_a_default_without_one():
    frames, lm = _mouth_frames(8, 12)
    colour = mouth_inside_colour(frames, lm, np.linspace(0.1, 0.2, 8))
    np.testing.assert_allclose(colour * 255, [80, 20, 30], atol=1)
    lm[:] = np.nan
    np.testing.assert_allclose(mouth_inside_colour(frames, lm, np.full(8, np.nan)), DEFAULT_INSIDE)


@pytest.fixture(scope="module")
def scene():
    model, canonical = syn.synthetic_model(SMALL, 4, 80)
    cam, dist = syn.synthetic_camera(64, canonical)
    rot, trans = syn.synthetic_poses(2, dist)
    camera = Camera.from_numpy(rot, trans, cam.focal, cam.cx, cam.cy, 64, "cpu")
    cond = model.condition(FrameBatch(torch.zeros(2, 3), codes=torch.zeros(2, model.code_dim)))
    return model, camera, cond


def _see_through(model, monkeypatch):
    """The head lets every ray through: what a frame shows is what its rays end on."""
    monkeypatch.setattr(model, "render_rays", lambda o, d, f, cond, bg, **kw: {"color": bg, "opacity": bg[:, 0] * 0})


def test_frames_show_the_backstop_where_the_head_lets_rays_through_it_and_the_background_elsewhere(scene, monkeypatch):
    model, camera, cond = scene
    _see_through(model, monkeypatch)
    background = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    images = model.render_frames(camera, cond, background).images
    colour = model.mouth_backstop[2]
    inside = (images == colour).all(-1)  # [2, 64, 64]
    assert 3 < int(inside[0].sum()) < 64 * 64 // 4  # a patch, not the whole head
    torch.testing.assert_close(images[~inside], background[~inside])
    # the patch is where the rays meet the ellipsoid
    ys, xs = torch.nonzero(inside[0], as_tuple=True)
    pixels = (torch.stack([xs, ys], -1).float() + 0.5).expand(2, -1, -1)  # [2, R, 2]: the same pixels in both frames
    o, d = camera.rays(pixels)
    assert ray_hits_ellipsoid(o[0], d[0], model.mouth_backstop[:2]).all()


def test_a_model_saved_before_the_backstop_draws_its_background(scene, monkeypatch):
    model, camera, cond = scene
    state = {k: v for k, v in model.state_dict().items() if k != "mouth_backstop"}
    fresh = NerfHead(model.config, 4, 80, 1, (model.config.mouth.components, model.mouth_mean.numel() // 3))
    fresh.load_state_dict(state)
    assert not fresh._backstop_on and torch.equal(fresh.mouth_backstop, torch.zeros(3, 3))
    _see_through(fresh, monkeypatch)
    background = torch.rand(2, 64, 64, 3)
    torch.testing.assert_close(fresh.render_frames(camera, cond, background).images, background)
    kept = NerfHead(model.config, 4, 80, 1, (model.config.mouth.components, model.mouth_mean.numel() // 3))
    kept.load_state_dict(model.state_dict())  # one saved with it keeps it
    assert kept._backstop_on and torch.equal(kept.mouth_backstop, model.mouth_backstop)
