"""A head model's training step: its loss terms, and the rays it renders for them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from syncanim.bench import synthetic as syn
from syncanim.model.batch import RayBatch
from syncanim.model.camera import Camera
from syncanim.model.conditioning import FrameBatch
from syncanim.model.head import NerfHeadConfig
from syncanim.model.losses import LossWeights, photometric

SMALL = NerfHeadConfig(levels=4, log2_table=12, max_res=64, samples=8, hidden=16, audio_dim=8, geo_dim=4,
                       occupancy_res=16, prior_res=32)


def _batch(model, canonical, patch: int) -> RayBatch:
    cam, dist = syn.synthetic_camera(96, canonical)
    rot, trans = syn.synthetic_poses(2, dist)
    g = torch.Generator().manual_seed(1)
    r = patch * patch if patch else 50
    pixels = 30 + 36 * torch.rand(2, r, 2, generator=g)  # around the face
    inputs = FrameBatch(torch.rand(2, 3, generator=g), codes=torch.randn(2, model.code_dim, generator=g),
                        latent_frames=torch.tensor([0, 0]))
    return RayBatch(Camera.from_numpy(rot, trans, cam.focal, cam.cx, cam.cy, 96, "cpu"), inputs, pixels,
                    torch.rand(2, r, 3, generator=g), torch.rand(2, r, 3, generator=g), patch)


@pytest.fixture(scope="module")
def head():
    return syn.synthetic_model(SMALL, 4, 80)


def test_the_step_is_the_photometric_error_of_the_rendered_rays_plus_the_gate_pulls(head):
    model, canonical = head
    batch = _batch(model, canonical, 0)
    weights = LossWeights(audio_gate=0.5, expr_gate=0.25, perceptual=1.0)
    losses = model.train_step(batch, weights, perceptual=lambda a, b: torch.ones(()), generator=None)
    assert set(losses) == {"rgb", "audio_gate", "expr_gate"}  # no patches: no perceptual term
    o, d = batch.camera.rays(batch.pixels)
    out = model.render_rays(o.reshape(-1, 3), d.reshape(-1, 3), torch.arange(2).repeat_interleave(50),
                            model.condition(batch.inputs), batch.background.reshape(-1, 3))
    torch.testing.assert_close(losses["rgb"], photometric(out["color"], batch.target.reshape(-1, 3)))
    torch.testing.assert_close(losses["audio_gate"], 0.5 * out["audio_gate"])
    torch.testing.assert_close(losses["expr_gate"], 0.25 * out["expr_gate"])
    sum(losses.values()).backward()
    assert model.field.tables.grad is not None and model.code_embed.weight.grad is not None


def test_patches_add_the_weighted_perceptual_term(head):
    model, canonical = head
    batch = _batch(model, canonical, 6)
    seen = []

    def perceptual(pred, target):
        seen.append((pred.shape, target.shape))
        return torch.full((), 2.0)

    losses = model.train_step(batch, LossWeights(0.0, 0.0, 0.1), perceptual, generator=torch.Generator().manual_seed(0))
    assert seen == [((2, 3, 6, 6), (2, 3, 6, 6))] and float(losses["perceptual"]) == pytest.approx(0.2)
    assert "perceptual" not in model.train_step(batch, LossWeights(0.0, 0.0, 0.0), perceptual)


def test_batch_shapes_are_checked(head):
    model, canonical = head
    batch = _batch(model, canonical, 0)
    with pytest.raises(AssertionError, match="patch 7 for R=50"):
        RayBatch(batch.camera, batch.inputs, batch.pixels, batch.target, batch.background, 7)
    with pytest.raises(AssertionError, match="either codes or features"):
        FrameBatch(torch.rand(2, 3))


def test_the_distortion_term_reads_the_rendered_weights(head):
    from syncanim.model.losses import distortion

    model, canonical = head
    batch = _batch(model, canonical, 0)
    losses = model.train_step(batch, LossWeights(0.0, 0.0, 0.0, distortion=0.5), generator=None)
    o, d = batch.camera.rays(batch.pixels)
    out = model.render_rays(o.reshape(-1, 3), d.reshape(-1, 3), torch.arange(2).repeat_interleave(50),
                            model.condition(batch.inputs), batch.background.reshape(-1, 3))
    span = model.config.shell_front + model.config.shell_back
    want = 0.5 * distortion(out["weights"], out["t"], out["deltas"], span)
    assert float(want) > 0
    torch.testing.assert_close(losses["distortion"], want)
    assert "distortion" not in model.train_step(batch, LossWeights(0.0, 0.0, 0.0), generator=None)


def test_a_camera_from_host_poses_gives_them_back_without_the_device():
    rot = np.repeat(np.eye(3, dtype=np.float32)[None], 2, 0)
    trans = np.array([[0, 0, 1], [0.1, 0, 1]], np.float32)
    cam = Camera.from_numpy(rot, trans, 100.0, 32.0, 32.0, 64, "cpu")
    assert cam.poses_numpy()[1] is cam.host[1] and np.array_equal(cam.poses_numpy()[1], trans)
    plain = Camera(cam.rotation, cam.translation, 100.0, 32.0, 32.0, 64)  # poses read back from the tensors
    assert plain.host is None and np.array_equal(plain.poses_numpy()[0], rot)
