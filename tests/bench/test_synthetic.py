"""The synthetic subject: a face-like landmark cloud the head box and depth prior accept, a camera that
frames it as prep does, and a random model that renders over the background where the head is."""

from __future__ import annotations

import numpy as np
import torch

from syncanim.bench import synthetic as syn
from syncanim.model.camera import Camera
from syncanim.model.conditioning import Conditioning
from syncanim.model.head import NerfHeadConfig
from syncanim.model.rays import head_box
from syncanim.model.shell import depth_prior

SMALL = NerfHeadConfig(levels=4, log2_table=12, max_res=64, samples=8, hidden=16, audio_dim=8, geo_dim=4,
                       occupancy_res=16, prior_res=32)


def test_canonical_face_has_the_landmarks_the_box_reads():
    p = syn.synthetic_canonical()
    assert p.shape == (478, 3) and p.dtype == np.float32 and np.isfinite(p).all()
    assert p[syn.FOREHEAD, 1] == p[:, 1].min() and p[syn.CHIN, 1] == p[:, 1].max()  # y down
    assert p[syn.EDGE_LEFT, 0] == p[:, 0].min() and p[syn.EDGE_RIGHT, 0] == p[:, 0].max()
    width = np.linalg.norm(p[234] - p[454])
    height = np.linalg.norm(p[10] - p[152])
    assert 0.12 < width < 0.18 and 0.16 < height < 0.24  # metres, an adult face
    nose = p[:, 2].argmin()  # the point nearest the camera is in the middle of the face
    assert abs(p[nose, 0] - p[:, 0].mean()) < 0.02
    lo, hi = head_box(p)
    assert (hi > lo).all()
    prior = depth_prior(p, lo, hi, 32)
    assert prior.shape == (32, 32) and np.isfinite(prior).all()
    assert not np.array_equal(syn.synthetic_canonical(1), p)


def test_camera_frames_the_face_at_a_third_of_the_image():
    p = syn.synthetic_canonical()
    cam, dist = syn.synthetic_camera(256, p)
    rot, trans = syn.synthetic_poses(50, dist)
    assert rot.shape == (50, 3, 3) and trans.shape == (50, 3) and rot.dtype == np.float32
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape), atol=1e-5)
    assert np.allclose(trans[:, 2], dist, atol=0.01)
    x = p[[10, 152]] @ rot[0].T + trans[0]
    v = cam.focal * x[:, 1] / x[:, 2] + cam.cy
    assert abs(abs(v[1] - v[0]) - 256 / 3) < 256 * 0.05
    outline = syn.face_outline(p, rot[0], trans[0], cam)
    assert outline.shape == (36, 2) and (outline > 0).all() and (outline < 256).all()


def test_clip_material():
    wave = syn.synthetic_speech(2.0)
    assert wave.sample_rate == 16000 and len(wave.samples) == 32000 and wave.rms() > 0.01
    bg = syn.synthetic_background(64)
    assert bg.shape == (64, 64, 3) and bg.dtype == np.uint8 and bg.std() > 5
    assert not np.array_equal(syn.synthetic_background(64, 1), bg)
    ex = syn.synthetic_expressions(30, 3)
    assert ex.shape == (30, 3) and (ex >= 0).all() and (ex <= 1).all()


def test_random_model_renders_over_the_background_where_the_head_is():
    model, canonical = syn.synthetic_model(SMALL, audio_per_frame=4, audio_dim=80)
    assert 0 < float(model.occupied.float().mean()) < 1  # the refresh emptied cells outside the shell
    cam, dist = syn.synthetic_camera(96, canonical)
    rot, trans = syn.synthetic_poses(2, dist)
    camera = Camera.from_numpy(rot, trans, cam.focal, cam.cx, cam.cy, 96, "cpu")
    rects = model.head_rects(camera)
    assert ((rects[:, 2] - rects[:, 0]) > 10).all() and ((rects[:, 3] - rects[:, 1]) > 10).all()
    bg = torch.from_numpy(np.stack([syn.synthetic_background(96)] * 2)).float() / 255
    cond = Conditioning(torch.randn(2, SMALL.audio_dim), torch.rand(2, 3), model.latent_for(None, 2))
    out = model.render_frames(camera, cond, bg)
    assert out.images.shape == (2, 96, 96, 3) and out.opacity.max() > 0.05
    assert out.opacity[0, : rects[0, 1]].max() == 0  # nothing above the head's rectangle
    again, _ = syn.synthetic_model(SMALL, 4, 80)
    for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the seed fixes the weights
