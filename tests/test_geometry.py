"""Rotations, transforms, projection, Procrustes and smoothing in syncanim.geometry.

scipy's Rotation is the independent reference for the rotation conversions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from syncanim import geometry as g

# float64 throughout; 1e-9 leaves room for the trigonometry of a few chained conversions
ATOL = 1e-9


def random_rotvecs(rng: np.random.Generator, n: int) -> np.ndarray:
    """[n, 3] rotation vectors: random axes, angles spread over [0, pi) plus tiny and near-pi ones."""
    axes = rng.normal(size=(n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = rng.uniform(0, math.pi - 1e-3, n)
    angles[:4] = [0.0, 1e-12, 1e-6, math.pi - 1e-7]
    return axes * angles[:, None]


def test_axis_angle_matches_scipy_and_round_trips():
    rv = random_rotvecs(np.random.default_rng(0), 200)
    m = g.axis_angle_to_matrix(rv)
    np.testing.assert_allclose(m, Rotation.from_rotvec(rv).as_matrix(), atol=ATOL)
    np.testing.assert_allclose(m @ np.swapaxes(m, 1, 2), np.broadcast_to(np.eye(3), m.shape), atol=ATOL)
    np.testing.assert_allclose(np.linalg.det(m), 1.0, atol=ATOL)
    back = g.matrix_to_axis_angle(m)
    # near pi the axis is well defined but the recovered vector loses ~sqrt(eps) in the angle
    np.testing.assert_allclose(back, rv, atol=1e-6)
    np.testing.assert_allclose(g.matrix_to_axis_angle(m[4:]), rv[4:], atol=ATOL)


def test_axis_angle_batch_shapes():
    rv = np.zeros((2, 5, 3))
    assert g.axis_angle_to_matrix(rv).shape == (2, 5, 3, 3)
    assert g.matrix_to_axis_angle(np.eye(3)).shape == (3,)
    with pytest.raises(ValueError, match=r"\[\.\.\., 3\]"):
        g.axis_angle_to_matrix(np.zeros((4, 2)))


def test_quaternions_match_scipy_and_round_trip():
    rng = np.random.default_rng(1)
    rv = random_rotvecs(rng, 200)
    q = g.matrix_to_quaternion(g.axis_angle_to_matrix(rv))
    assert (q[:, 0] >= 0).all()
    ref = Rotation.from_rotvec(rv).as_quat()[:, [3, 0, 1, 2]]  # scipy is scalar-last
    ref *= np.sign(ref[:, :1] + 1e-300)
    np.testing.assert_allclose(q, ref, atol=1e-8)
    np.testing.assert_allclose(g.quaternion_to_matrix(q), g.axis_angle_to_matrix(rv), atol=ATOL)
    np.testing.assert_allclose(g.axis_angle_to_quaternion(rv[4:]), q[4:], atol=ATOL)
    np.testing.assert_allclose(g.quaternion_to_axis_angle(q), rv, atol=1e-6)
    # q and -q are the same rotation
    np.testing.assert_allclose(g.quaternion_to_matrix(-q), g.quaternion_to_matrix(q), atol=ATOL)


def test_quaternion_product_composes_rotations():
    rng = np.random.default_rng(2)
    a, b = random_rotvecs(rng, 50), random_rotvecs(rng, 50)
    qa, qb = g.axis_angle_to_quaternion(a), g.axis_angle_to_quaternion(b)
    composed = g.quaternion_to_matrix(g.quaternion_multiply(qa, qb))
    np.testing.assert_allclose(composed, g.axis_angle_to_matrix(a) @ g.axis_angle_to_matrix(b), atol=ATOL)


def test_euler_order_matches_scipy_extrinsic_xyz():
    rng = np.random.default_rng(3)
    e = rng.uniform(-math.pi, math.pi, (200, 3))
    e[:, 1] = rng.uniform(-math.pi / 2 + 1e-3, math.pi / 2 - 1e-3, 200)
    m = g.euler_to_matrix(e)
    # lowercase "xyz" in scipy: extrinsic rotations about x, then y, then z = Rz @ Ry @ Rx
    np.testing.assert_allclose(m, Rotation.from_euler("xyz", e).as_matrix(), atol=ATOL)
    rx = g.axis_angle_to_matrix(np.array([e[0, 0], 0, 0]))
    ry = g.axis_angle_to_matrix(np.array([0, e[0, 1], 0]))
    rz = g.axis_angle_to_matrix(np.array([0, 0, e[0, 2]]))
    np.testing.assert_allclose(m[0], rz @ ry @ rx, atol=ATOL)
    np.testing.assert_allclose(g.matrix_to_euler(m), e, atol=1e-7)


def test_euler_gimbal_lock_reconstructs_the_matrix():
    for b in (math.pi / 2, -math.pi / 2):
        m = g.euler_to_matrix(np.array([0.3, b, -0.2]))
        e = g.matrix_to_euler(m)
        assert e[2] == 0.0
        np.testing.assert_allclose(g.euler_to_matrix(e), m, atol=1e-7)


def test_rotation_angle_and_projection_to_rotation():
    r = g.axis_angle_to_matrix(np.array([0.0, 0.0, 0.25]))
    assert g.rotation_angle(r) == pytest.approx(0.25)
    assert g.rotation_angle(r, r @ r) == pytest.approx(0.25)
    noisy = r + 1e-3 * np.random.default_rng(4).normal(size=(3, 3))
    p = g.project_to_rotation(noisy)
    np.testing.assert_allclose(p @ p.T, np.eye(3), atol=ATOL)
    assert np.linalg.det(p) == pytest.approx(1.0)
    assert g.rotation_angle(p, r) < 2e-3


def test_project_and_transform():
    pts = np.array([[0.0, 0.0, 2.0], [0.1, -0.2, 1.0], [-1.0, 0.5, 4.0]])
    uv = g.project(pts, 1000.0, 256.0, 200.0)
    np.testing.assert_allclose(uv, [[256.0, 200.0], [356.0, 0.0], [6.0, 325.0]])
    r = g.axis_angle_to_matrix(np.array([0.1, -0.4, 0.2]))
    t = np.array([0.05, -0.02, 1.5])
    cam = g.transform_points(r, t, pts)
    np.testing.assert_allclose(cam, pts @ r.T + t)
    # batched: [M, 3, 3], [M, 3] with shared points [N, 3]
    cam_b = g.transform_points(np.stack([r, np.eye(3)]), np.stack([t, np.zeros(3)]), pts)
    assert cam_b.shape == (2, 3, 3)
    np.testing.assert_allclose(cam_b[1], pts)
    assert g.project(cam_b, np.array([500.0, 1000.0]), 0.0, 0.0).shape == (2, 3, 2)


def test_invert_rigid_and_pose_matrix():
    r = g.axis_angle_to_matrix(np.array([0.3, 0.2, -0.1]))
    t = np.array([0.1, 0.2, 0.9])
    ri, ti = g.invert_rigid(r, t)
    np.testing.assert_allclose(g.pose_matrix(ri, ti) @ g.pose_matrix(r, t), np.eye(4), atol=ATOL)


def test_camera_to_world_opengl_inverts_the_pose_with_axis_flip():
    rng = np.random.default_rng(5)
    r = g.axis_angle_to_matrix(random_rotvecs(rng, 10))
    t = rng.normal(size=(10, 3))
    c2w = g.camera_to_world_opengl(r, t)
    flip = np.diag([1.0, -1.0, -1.0, 1.0])
    np.testing.assert_allclose(c2w @ flip @ g.pose_matrix(r, t), np.broadcast_to(np.eye(4), (10, 4, 4)),
                               atol=ATOL)
    # the camera centre in the model frame is -R^T t, and the camera looks along -z (OpenGL)
    np.testing.assert_allclose(c2w[:, :3, 3], -np.einsum("nji,nj->ni", r, t), atol=ATOL)
    forward_cv = np.swapaxes(r, 1, 2)[:, :, 2]  # OpenCV +z axis in the model frame
    np.testing.assert_allclose(-c2w[:, :3, 2], forward_cv, atol=ATOL)


@pytest.mark.parametrize("batch", [(), (4,)])
def test_procrustes_recovers_a_known_similarity(batch):
    rng = np.random.default_rng(6)
    src = rng.normal(size=batch + (30, 3))
    r = g.axis_angle_to_matrix(rng.uniform(-2.0, 2.0, batch + (3,)))
    s = rng.uniform(0.5, 3.0, batch)
    t = rng.normal(size=batch + (3,))
    tgt = np.asarray(s)[..., None, None] * (src @ np.swapaxes(r, -1, -2)) + t[..., None, :]
    s2, r2, t2 = g.procrustes(src, tgt)
    np.testing.assert_allclose(s2, s, atol=1e-9)
    np.testing.assert_allclose(r2, r, atol=1e-9)
    np.testing.assert_allclose(t2, t, atol=1e-9)


def test_procrustes_weights_reflection_and_no_scale():
    rng = np.random.default_rng(7)
    src = rng.normal(size=(40, 3))
    r = g.axis_angle_to_matrix(np.array([0.2, -0.5, 0.9]))
    tgt = src @ r.T + 1.0
    tgt[:5] += 50.0  # outliers with zero weight are ignored
    w = np.ones(40)
    w[:5] = 0.0
    s, r2, t = g.procrustes(src, tgt, weights=w)
    np.testing.assert_allclose([s], [1.0], atol=1e-9)
    np.testing.assert_allclose(r2, r, atol=1e-9)
    # a mirrored target still gives a proper rotation
    _, rm, _ = g.procrustes(src, src * np.array([-1.0, 1.0, 1.0]))
    assert np.linalg.det(rm) == pytest.approx(1.0)
    s_fixed, _, _ = g.procrustes(src, 3.0 * src, with_scale=False)
    assert s_fixed == 1.0
    with pytest.raises(ValueError, match="N >= 3"):
        g.procrustes(src[:2], tgt[:2])


def test_smooth_series_keeps_constants_and_trends_and_skips_zero_weight():
    t = np.arange(50, dtype=float)
    line = np.stack([2.0 * t + 1.0, -t], -1)  # [T, 2]
    np.testing.assert_allclose(g.smooth_series(line, 3.0), line, atol=1e-9)  # also at both ends
    np.testing.assert_allclose(g.smooth_series(np.full(10, 4.0), 20.0), 4.0)
    spiky = np.zeros(30)
    spiky[10] = 100.0
    w = np.ones(30)
    w[10] = 0.0
    out = g.smooth_series(spiky, 1.5, w)
    assert np.abs(out).max() < 1e-9
    np.testing.assert_array_equal(g.smooth_series(spiky, 0.0), spiky)
    noisy = np.random.default_rng(8).normal(size=500)
    assert g.smooth_series(noisy, 2.0).std() < 0.5 * noisy.std()


def test_smooth_rotations_reduces_noise_across_the_quaternion_sign_flip():
    rng = np.random.default_rng(9)
    n = 200
    # yaw sweeps through 180 degrees, where the w >= 0 quaternions jump from q to -q
    angles = np.linspace(math.radians(150), math.radians(210), n)
    truth = g.axis_angle_to_matrix(np.stack([np.zeros(n), angles, np.zeros(n)], -1))
    noise = g.axis_angle_to_matrix(rng.normal(scale=math.radians(1.0), size=(n, 3)))
    noisy = noise @ truth
    smooth = g.smooth_rotations(noisy, 3.0)
    np.testing.assert_allclose(smooth @ np.swapaxes(smooth, 1, 2), np.broadcast_to(np.eye(3), (n, 3, 3)),
                               atol=1e-9)
    before = g.rotation_angle(noisy, truth).mean()
    after = g.rotation_angle(smooth, truth).mean()
    assert after < 0.5 * before
    assert g.rotation_angle(smooth, truth).max() < math.radians(1.5)
