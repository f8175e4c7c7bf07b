"""Optical flow of landmarks and the poses fitted to landmarks and flow together."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from syncanim import geometry as g
from syncanim.errors import DataError
from syncanim.face import headpose as hp
from syncanim.face.pose_flow import _banded, landmark_flow, refine_poses

FOCAL, C = 1000.0, 256.0
SIZE = (512, 512)


def texture(size: int = 512, seed: int = 0) -> np.ndarray:
    """A smooth random texture ``[size, size, 3]`` uint8 (Lucas-Kanade needs gradients everywhere)."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, (size, size)).astype(np.float32)
    gray = cv2.GaussianBlur(noise, (0, 0), 2.0)
    gray = cv2.normalize(gray, None, 0, 255, cv2.NORM_MINMAX)
    return np.repeat(gray[..., None], 3, -1).astype(np.uint8)


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` moved by (dx, dy) px, exactly (a phase shift of its spectrum; the texture wraps around)."""
    h, w = image.shape[:2]
    ky, kx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    phase = np.exp(-2j * np.pi * (kx * dx + ky * dy))
    out = np.fft.ifft2(np.fft.fft2(image.astype(np.float64), axes=(0, 1)) * phase[..., None], axes=(0, 1)).real
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def test_flow_follows_a_subpixel_shift():
    img = texture()
    frames = [img, shifted(img, 1.3, -0.7), shifted(img, 2.1, 0.4)]
    rng = np.random.default_rng(1)
    pts = np.repeat(rng.uniform(100, 400, (1, 30, 2)), 3, 0)
    pts[1] += [1.3, -0.7]  # the landmarks of frame 1 sit where the image moved
    pts[1, 5] = np.nan  # a frame without this landmark
    flow = landmark_flow(frames, pts)
    assert flow.shape == (3, 30, 2) and np.isnan(flow[0]).all()
    ok = np.isfinite(flow[1:, :, 0])
    assert ok[0].mean() > 0.9
    np.testing.assert_allclose(flow[1][ok[0]], np.broadcast_to([1.3, -0.7], flow[1][ok[0]].shape), atol=0.05)
    assert np.isnan(flow[2, 5]).all()  # no start point
    fine = ok[1]
    assert fine.mean() > 0.9
    np.testing.assert_allclose(flow[2][fine], np.broadcast_to([0.8, 1.1], flow[2][fine].shape), atol=0.05)


def test_flow_leaves_out_points_it_cannot_follow():
    img = texture()
    rng = np.random.default_rng(2)
    pts = np.repeat(rng.uniform(100, 400, (1, 20, 2)), 2, 0)
    assert np.isfinite(landmark_flow([img, shifted(img, 0.5, 0.5)], pts)[1]).all()
    frames = [img, texture(seed=5)]  # an unrelated picture: the flow does not come back to its start
    assert np.isnan(landmark_flow(frames, pts)[1]).mean() > 0.5


def test_flow_keeps_the_order_of_many_frames_on_threads():
    img = texture()
    shifts = np.cumsum(np.random.default_rng(4).uniform(-1.5, 1.5, (12, 2)), 0)  # where frame k sits
    frames = [shifted(img, *sh) for sh in shifts]
    base = np.random.default_rng(5).uniform(120, 380, (20, 2))
    pts = base[None] + shifts[:, None]
    flow = landmark_flow(iter(frames), pts, workers=3)
    for k in range(1, 12):
        ok = np.isfinite(flow[k, :, 0])
        assert ok.mean() > 0.9
        np.testing.assert_allclose(flow[k][ok], np.broadcast_to(shifts[k] - shifts[k - 1], flow[k][ok].shape),
                                   atol=0.05)


def test_flow_refuses_missing_or_mismatched_frames():
    img = texture(256)
    pts = np.full((3, 4, 2), 100.0)
    with pytest.raises(DataError, match="2 frames for 3"):
        landmark_flow([img, img], pts)
    with pytest.raises(DataError, match="256x256"):
        landmark_flow([img, img, img], pts, size=(512, 512))


def test_banded_layout_solves_like_the_dense_matrix():
    rng = np.random.default_rng(0)
    n, b = 5, 3
    a = rng.normal(size=(n * b, n * b))
    dense = np.zeros_like(a)
    for i in range(n):  # block-tridiagonal SPD: keep the near blocks of a @ a.T, strengthen the diagonal
        for j in range(max(0, i - 1), min(n, i + 2)):
            dense[i * b:(i + 1) * b, j * b:(j + 1) * b] = (a @ a.T)[i * b:(i + 1) * b, j * b:(j + 1) * b]
    dense += n * b * np.eye(n * b)
    diag = np.stack([dense[i * b:(i + 1) * b, i * b:(i + 1) * b] for i in range(n)])
    upper = np.stack([dense[i * b:(i + 1) * b, (i + 1) * b:(i + 2) * b] for i in range(n - 1)])
    from scipy.linalg import solveh_banded

    rhs = rng.normal(size=n * b)
    np.testing.assert_allclose(solveh_banded(_banded(diag, upper), rhs), np.linalg.solve(dense, rhs), rtol=1e-8)


def motion(n: int = 80, seed: int = 0):
    """True poses of a head turning and moving smoothly, and rigid points of a face-sized shape."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    angles = np.stack([0.15 * np.sin(t / 9), 0.25 * np.sin(t / 13 + 1), 0.05 * np.sin(t / 7)], -1)
    rot = g.euler_to_matrix(angles)
    trans = np.stack([0.01 * np.sin(t / 11), 0.01 * np.cos(t / 17), np.full(n, 0.6)], -1)
    shape = rng.normal(0, [0.04, 0.05, 0.02], (40, 3))
    return rot, trans, shape


def project(rot, trans, shape):
    return g.project(np.einsum("nij,kj->nki", rot, shape) + trans[:, None], FOCAL, C, C)


def test_flow_removes_landmark_jitter():
    rot, trans, shape = motion()
    rng = np.random.default_rng(3)
    truth = project(rot, trans, shape)  # [N, K, 2]
    obs = truth + rng.normal(0, 1.0, truth.shape)  # MediaPipe-like jitter
    flow = np.full_like(truth, np.nan)
    flow[1:] = truth[1:] - truth[:-1] + rng.normal(0, 0.05, truth[1:].shape)  # the image moves precisely
    start_r = g.axis_angle_to_matrix(rng.normal(0, 0.01, (len(rot), 3))) @ rot
    start_t = trans + rng.normal(0, 0.002, trans.shape)
    alone_r, alone_t = refine_poses(start_r, start_t, shape, obs, np.full_like(flow, np.nan), FOCAL, C, C)
    r, t = refine_poses(start_r, start_t, shape, obs, flow, FOCAL, C, C)

    def error(rr, tt):  # mean reprojection error against the true motion, px
        return float(np.linalg.norm(project(rr, tt, shape) - truth, axis=-1).mean())

    assert error(alone_r, alone_t) > 0.12  # frame by frame: the landmark noise shows
    assert error(r, t) < 0.4 * error(alone_r, alone_t)
    # the motion between frames follows the flow, not the landmarks
    moved = np.diff(project(r, t, shape), axis=0) - np.diff(truth, axis=0)
    assert float(np.linalg.norm(moved, axis=-1).mean()) < 0.1


def test_frames_without_landmarks_rest_on_the_flow():
    rot, trans, shape = motion(40)
    truth = project(rot, trans, shape)
    obs = truth.copy()
    obs[15:25] = np.nan  # no face found in these frames
    flow = np.full_like(truth, np.nan)
    flow[1:] = truth[1:] - truth[:-1]
    start_r = np.repeat(rot[14:15], 40, 0)  # held at the last frame seen, as interpolation might
    start_t = np.repeat(trans[14:15], 40, 0)
    start_r[:15], start_t[:15] = rot[:15], trans[:15]
    start_r[25:], start_t[25:] = rot[25:], trans[25:]
    r, t = refine_poses(start_r, start_t, shape, obs, flow, FOCAL, C, C, iterations=6)
    err = np.linalg.norm(project(r, t, shape) - truth, axis=-1).mean(1)
    assert err.max() < 0.05


def test_chunks_do_not_change_the_fit():
    rot, trans, shape = motion(30)
    rng = np.random.default_rng(6)
    truth = project(rot, trans, shape)
    obs = truth + rng.normal(0, 1.0, truth.shape)
    flow = np.full_like(truth, np.nan)
    flow[1:] = truth[1:] - truth[:-1] + rng.normal(0, 0.05, truth[1:].shape)
    whole = refine_poses(rot, trans, shape, obs, flow, FOCAL, C, C)
    for chunk in (1, 7):
        parts = refine_poses(rot, trans, shape, obs, flow, FOCAL, C, C, chunk=chunk)
        np.testing.assert_allclose(parts[0], whole[0], atol=1e-9)
        np.testing.assert_allclose(parts[1], whole[1], atol=1e-9)


def test_frames_with_neither_landmarks_nor_flow_stay_put():
    rot, trans, shape = motion(40)
    truth = project(rot, trans, shape)
    rng = np.random.default_rng(7)
    obs = truth + rng.normal(0, 1.0, truth.shape)
    obs[15:25] = np.nan  # a cutaway without a face, its frames linked to each other by flow but not to the others
    flow = np.full_like(truth, np.nan)
    flow[1:] = truth[1:] - truth[:-1] + rng.normal(0, 0.05, truth[1:].shape)
    flow[15] = flow[25] = np.nan
    start_r = g.axis_angle_to_matrix(rng.normal(0, 0.01, (len(rot), 3))) @ rot
    r, t = refine_poses(start_r, trans, shape, obs, flow, FOCAL, C, C, iterations=8)
    assert np.degrees(g.rotation_angle(r[15:25], rot[15:25])).max() < 1.0
    assert np.abs(t[15:25] - trans[15:25]).max() < 0.0005  # without the hold the run drifts (3 mm in 8 iterations)


def test_tracker_uses_the_frames_to_hold_a_still_head(face):
    """A still head with jittery landmarks over identical frames: the flow says nothing moved."""
    shape, _ = face
    n = 40
    rot = np.repeat(g.euler_to_matrix(np.array([[0.1, 0.2, 0.0]])), n, 0)
    trans = np.repeat([[0.0, 0.0, 1200.0 * hp.EYE_CORNER_DISTANCE / 80.0]], n, 0)
    rng = np.random.default_rng(0)
    cam = np.einsum("nij,kj->nki", rot, shape) + trans[:, None]
    uv = g.project(cam, 1200.0, SIZE[0] / 2, SIZE[1] / 2)
    uv = uv + rng.normal(0, 0.7, uv.shape)
    z = (1200.0 / trans[:, None, 2]) * (cam[..., 2] - trans[:, None, 2])
    lm = np.concatenate([uv, z[..., None]], -1).astype(np.float32)
    img = texture()
    tracker = hp.LandmarkBATracker(hp.LandmarkBAConfig(focal=1200.0))
    smoothed = tracker.fit(lm, np.ones(n, bool), SIZE)
    held = tracker.fit(lm, np.ones(n, bool), SIZE, frames=lambda: (img for _ in range(n)))

    def spread(track):  # frame-to-frame rotation, degrees
        return float(np.degrees(g.rotation_angle(track.rotation[1:], track.rotation[:-1])).mean())

    assert spread(held) < 0.3 * spread(smoothed)
    assert abs(held.reprojection_error_px - smoothed.reprojection_error_px) < 0.3

