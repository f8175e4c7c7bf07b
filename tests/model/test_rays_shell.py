import numpy as np
import pytest
import torch

from syncanim.geometry import euler_to_matrix
from syncanim.model.rays import head_box, pixel_rays, project_box, to_unit_box
from syncanim.model.shell import depth_prior, shell_samples, surface_depth


def _face(seed=0):
    """A plausible canonical face: an ellipsoid cap of 478 points (metres), eye corners 0.09 apart."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(-0.07, 0.07, 478)
    v = rng.uniform(-0.10, 0.08, 478)
    z = 0.05 * ((u / 0.08) ** 2 + (v / 0.11) ** 2)
    p = np.stack([u, v, z], 1)
    p[234], p[454] = (-0.075, 0.0, 0.045), (0.075, 0.0, 0.045)
    p[10], p[152] = (0.0, -0.10, 0.04), (0.0, 0.08, 0.027)
    return p.astype(np.float32)


def test_a_point_projects_onto_its_own_ray():
    rng = np.random.default_rng(1)
    rot = euler_to_matrix(np.radians(rng.uniform(-20, 20, (4, 3)))).astype(np.float32)
    trans = np.array([[0.01, -0.02, 0.6]] * 4, np.float32) + rng.normal(0, 0.01, (4, 3)).astype(np.float32)
    f, cx, cy = 900.0, 256.0, 256.0
    point = np.array([0.02, -0.03, 0.01], np.float32)
    cam = point @ rot.transpose(0, 2, 1) + trans  # [4, 3]
    uv = np.stack([f * cam[:, 0] / cam[:, 2] + cx, f * cam[:, 1] / cam[:, 2] + cy], 1)
    o, d = pixel_rays(torch.from_numpy(rot), torch.from_numpy(trans), f, cx, cy, torch.from_numpy(uv)[:, None, :])
    o, d = o[:, 0].numpy(), d[:, 0].numpy()
    t = ((point - o) * d).sum(1)
    closest = o + t[:, None] * d
    np.testing.assert_allclose(closest, np.broadcast_to(point, closest.shape), atol=1e-5)
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-6)


def test_head_box_holds_the_face_with_room_for_hair():
    p = _face()
    lo, hi = head_box(p)
    assert (p >= lo).all() and (p <= hi).all()
    assert lo[1] < p[:, 1].min() - 0.05  # room above the forehead
    unit = to_unit_box(torch.from_numpy(p), torch.from_numpy(lo), torch.from_numpy(hi))
    assert unit.abs().max() <= 1.0


def test_depth_prior_follows_the_face_and_curves_away_outside():
    p = _face()
    lo, hi = head_box(p)
    prior = depth_prior(p, lo, hi, res=64)
    assert prior.shape == (64, 64) and np.isfinite(prior).all()
    centre = prior[int(64 * (0 - lo[1]) / (hi[1] - lo[1])), 32]
    assert abs(centre - 0.0) < 0.01  # the face's front at the centre
    assert prior[:, 0].mean() > centre + 0.02  # the sides recede
    assert prior.max() <= hi[2] + 1e-6


def test_rays_meet_the_prior_surface_and_the_shell_brackets_it():
    p = _face()
    lo, hi = head_box(p)
    prior = torch.from_numpy(depth_prior(p, lo, hi, res=64))
    o = torch.tensor([[0.0, 0.0, -0.6], [0.02, -0.02, -0.6], [0.5, 0.5, -0.6]])
    d = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    t, hit = surface_depth(o, d, prior, torch.from_numpy(lo), torch.from_numpy(hi))
    assert hit.tolist() == [True, True, False]
    assert t[0].item() == pytest.approx(0.6, abs=0.01)
    ts, deltas = shell_samples(t[:2], 8, 0.03, 0.03)
    assert ts.shape == (2, 8) and torch.allclose(deltas, torch.full_like(deltas, 0.0075))
    assert (ts[:, 0] < t[:2]).all() and (ts[:, -1] > t[:2]).all()
    g = torch.Generator().manual_seed(0)
    tj, _ = shell_samples(t[:2], 8, 0.03, 0.03, g)
    assert ((tj - ts).abs() <= 0.0075 / 2 + 1e-6).all() and not torch.equal(tj, ts)


def test_projected_box_covers_the_projected_face():
    p = _face()
    lo, hi = head_box(p)
    rot, trans = np.eye(3), np.array([0.0, 0.0, 0.6])
    x0, y0, x1, y1 = project_box(rot, trans, 900.0, 256.0, 256.0, lo, hi, 512, 512)
    cam = p @ rot.T + trans
    u, v = 900 * cam[:, 0] / cam[:, 2] + 256, 900 * cam[:, 1] / cam[:, 2] + 256
    assert x0 <= u.min() and u.max() <= x1 and y0 <= v.min() and v.max() <= y1


def test_the_speech_box_holds_lips_and_jaw_not_the_eyes_or_the_hair():
    from syncanim.face.mouth import JAW, LIPS
    from syncanim.model.rays import outside_box, speech_box

    p = _face()
    p[list(LIPS)] = p[list(LIPS)] * [0.3, 0.2, 1.0] + [0.0, 0.05, 0.0]  # the mouth low in the face
    p[list(JAW)] = p[list(JAW)] * [1.0, 0.2, 1.0] + [0.0, 0.06, 0.0]
    p[33], p[263] = (-0.045, -0.02, 0.02), (0.045, -0.02, 0.02)  # eye corners
    lo, hi = head_box(p)
    box = torch.from_numpy(speech_box(p, lo, hi))
    assert box.shape == (2, 3) and float(box[0, 2]) == -1.0 and float(box[1, 2]) == 1.0  # the whole depth
    unit = to_unit_box(torch.from_numpy(p).float(), torch.from_numpy(lo), torch.from_numpy(hi))
    out = outside_box(unit, box)
    assert float(out[list(LIPS)].max()) == 0.0 and float(out[list(JAW)].max()) == 0.0
    assert float(out[33]) == 1.0 and float(out[263]) == 1.0 and float(out[10]) == 1.0  # eyes, forehead
    hair = torch.tensor([[0.0, -0.9, 0.0], [0.5, -0.6, 0.3]])  # high in the head box
    assert outside_box(hair, box).tolist() == [1.0, 1.0]


def test_the_expression_box_holds_eyes_and_brows_not_the_mouth_or_the_chin():
    from syncanim.face.mouth import LIPS
    from syncanim.model.rays import EYES_AND_BROWS, expression_box, outside_box

    p = _face()
    eyes = list(EYES_AND_BROWS)
    p[eyes] = p[eyes] * [1.0, 0.2, 1.0] + [0.0, -0.03, 0.0]  # eyes and brows in a band high in the face
    p[list(LIPS)] = p[list(LIPS)] * [0.3, 0.2, 1.0] + [0.0, 0.05, 0.0]  # the mouth low in it
    p[152], p[10] = (0.0, 0.09, 0.0), (0.0, -0.09, 0.0)  # chin, forehead
    lo, hi = head_box(p)
    box = torch.from_numpy(expression_box(p, lo, hi))
    assert float(box[0, 2]) == -1.0 and float(box[1, 2]) == 1.0  # the whole depth
    out = outside_box(to_unit_box(torch.from_numpy(p).float(), torch.from_numpy(lo), torch.from_numpy(hi)), box)
    assert not out[eyes].any()
    assert out[list(LIPS)].all() and bool(out[152])
