"""The landmark-ba head tracker on synthetic videos with known poses and focal length.

The face is real: MediaPipe FaceMesh's 478 landmarks on scikit-image's astronaut photo (x, y in pixels,
z = MediaPipe depth in the same units), moved into the canonical frame and scaled to metres. Frames are
rendered from it with a pinhole camera under smooth head motion, with the mouth opening and closing
(a non-rigid motion the tracker must ignore), 0.5 px noise on x, y and a MediaPipe-like weak-perspective
z channel (image scale times camera depth relative to a point behind the face, plus noise).

Ambiguities: the tracker's canonical frame is a convention computed from its own shape estimate, so the
estimated poses may differ from the truth by one fixed rotation; the tests measure that rotation (it must be
small, since the same convention is applied to the true shape) and the per-frame errors after removing it.
Depth and focal scale together (image size alone fixes only their ratio), so translations are compared
after dividing by the focal ratio.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from syncanim import geometry as g
from syncanim.errors import DataError
from syncanim.face import headpose as hp

SIZE = (512, 512)


def render(shape, n=150, focal=1200.0, eye_px=80.0, amp_deg=20.0, noise=0.5, seed=0):
    """Synthetic landmarks of ``shape`` under known motion.

    Returns ``landmarks [n, 478, 3] float32, rotation [n, 3, 3], translation [n, 3]``.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    angles = np.zeros((n, 3))
    for j in range(3):  # each of pitch, yaw, roll: a sum of three slow sinusoids
        for _ in range(3):
            angles[:, j] += np.sin(2 * np.pi * rng.uniform(0.002, 0.012) * t + rng.uniform(0, 2 * np.pi))
        angles[:, j] *= math.radians(amp_deg) / np.abs(angles[:, j]).max()
    angles[:, 2] *= 0.5
    rot = g.euler_to_matrix(angles)
    dist = focal * hp.EYE_CORNER_DISTANCE / eye_px
    trans = np.stack([0.02 * np.sin(t / 40), 0.015 * np.cos(t / 55), dist * (1 + 0.05 * np.sin(t / 70))], -1)
    # the mouth and jaw open and close: points below the nose move down, more towards the chin
    below = np.clip(shape[:, 1] - shape[hp.SUBNASALE, 1], 0, None) / np.ptp(shape[:, 1])
    moving = np.repeat(shape[None], n, 0)
    moving[:, :, 1] += 0.012 * (0.5 + 0.5 * np.sin(t / 3.1))[:, None] * below[None]
    cam = np.einsum("nij,nkj->nki", rot, moving) + trans[:, None]
    uv = g.project(cam, focal, SIZE[0] / 2, SIZE[1] / 2) + rng.normal(0, noise, (n, 478, 2))
    scale = focal / trans[:, 2]
    # MediaPipe-like z: image scale times depth relative to a point 8 cm behind the face, plus noise
    z = scale[:, None] * (cam[..., 2] - trans[:, None, 2] - 0.08) + rng.normal(0, 1.0, (n, 478))
    return np.concatenate([uv, z[..., None]], -1).astype(np.float32), rot, trans


def frame_rotation_offset(true_rot: np.ndarray, est_rot: np.ndarray) -> np.ndarray:
    """The fixed rotation Q best aligning ``true_rot @ Q`` with ``est_rot`` (chordal mean), ``[3, 3]``."""
    return g.project_to_rotation(np.sum(np.swapaxes(true_rot, 1, 2) @ est_rot, 0))


@pytest.mark.parametrize("focal", [900.0, 1500.0])
def test_recovers_known_poses_and_focal(face, focal):
    shape, rigid = face
    lm, rot, trans = render(shape, focal=focal)
    track = hp.LandmarkBATracker(hp.LandmarkBAConfig()).fit(lm, np.ones(len(lm), bool), SIZE)

    assert track.rotation.shape == (150, 3, 3) and track.translation.shape == (150, 3)
    assert track.cx == 256.0 and track.cy == 256.0
    assert abs(track.focal / focal - 1) < 0.10
    assert not any("focal" in n for n in track.notes)  # a clip that moves determines its focal: no warning

    q = frame_rotation_offset(rot, track.rotation)
    assert math.degrees(g.rotation_angle(q)) < 2.0  # the same canonical convention on both shapes
    err = np.degrees(g.rotation_angle(rot @ q, track.rotation))
    assert err.mean() < 1.0 and err.max() < 2.0
    # relative rotations are free of the canonical-frame convention
    rel_err = np.degrees(g.rotation_angle(rot[1:] @ rot[0].T, track.rotation[1:] @ track.rotation[0].T))
    assert rel_err.max() < 2.0

    # depth scales with the focal; the image position of the face does not
    ratio = track.focal / focal
    np.testing.assert_allclose(track.translation[:, 2] / ratio, trans[:, 2], rtol=0.03)
    np.testing.assert_allclose(track.translation[:, :2] / track.translation[:, 2:],
                               trans[:, :2] / trans[:, 2:], atol=0.003)

    # canonical frame conventions and a shape close to the truth on the rigid part
    canon = track.canonical.astype(np.float64)
    assert track.canonical.dtype == np.float32 and canon.shape == (478, 3)
    assert np.linalg.norm(canon[263] - canon[33]) == pytest.approx(0.09, rel=1e-5)
    # origin at the centroid of the tracker's rigid set (which may differ from ``rigid`` by a few points)
    np.testing.assert_allclose(canon[rigid].mean(0), 0.0, atol=1e-3)
    assert np.linalg.norm(canon[rigid] - shape[rigid], axis=1).mean() < 0.002

    assert track.reprojection_error_px < 1.0  # 0.5 px noise per axis: mean distance about 0.63 px
    assert track.reprojection_error_all_px > track.reprojection_error_px  # the mouth moves
    assert track.per_frame_error_px.shape == (150,) and track.per_frame_error_px.dtype == np.float32
    assert np.isclose(track.per_frame_error_px.mean(), track.reprojection_error_px)


def test_invalid_frames_are_excluded_and_still_get_poses(face):
    shape, _ = face
    lm, rot, _ = render(shape, n=160, seed=1)
    valid = np.ones(160, bool)
    bad = np.arange(20, 160, 10)  # 14 frames: badly placed landmarks
    gone = np.array([55, 56, 57, 101])  # 4 frames: no landmarks at all
    valid[bad] = valid[gone] = False
    lm = lm.copy()
    lm[bad, :, :2] += np.random.default_rng(2).normal(0, 6.0, (len(bad), 478, 2)).astype(np.float32)
    lm[gone] = np.nan

    track = hp.LandmarkBATracker(hp.LandmarkBAConfig()).fit(lm, valid, SIZE)
    assert np.isfinite(track.rotation).all() and np.isfinite(track.translation).all()
    np.testing.assert_allclose(track.rotation @ np.swapaxes(track.rotation, 1, 2),
                               np.broadcast_to(np.eye(3), (160, 3, 3)), atol=1e-9)
    q = frame_rotation_offset(rot[valid], track.rotation[valid])
    err = np.degrees(g.rotation_angle(rot @ q, track.rotation))
    assert err[valid].max() < 2.0
    assert err[gone].max() < 2.0  # interpolated from the neighbours
    assert err[bad].max() < 3.0  # their own noisy fit, pulled towards the neighbours by the smoothing
    assert track.reprojection_error_px < 1.0  # averaged over valid frames only
    assert np.isnan(track.per_frame_error_px[gone]).all()
    assert (track.per_frame_error_px[bad] > 2.0).all()


def test_known_focal_is_kept(face):
    shape, _ = face
    lm, rot, _ = render(shape, n=60, seed=3)
    calls = []
    cfg = hp.LandmarkBAConfig(focal=1200.0, rotation_smoothing=0.0, translation_smoothing=0.0)
    track = hp.LandmarkBATracker(cfg).fit(lm, np.ones(60, bool), SIZE, progress=lambda *a: calls.append(a))
    assert track.focal == 1200.0
    q = frame_rotation_offset(rot, track.rotation)
    assert np.degrees(g.rotation_angle(rot @ q, track.rotation)).max() < 2.0
    assert calls[0][:2] == ("head pose", 0) and calls[-1][1] == calls[-1][2]


def _valid(n: int) -> np.ndarray:
    return np.ones(n, bool)


@pytest.mark.parametrize(
    ("landmarks", "valid", "size", "match"),
    [
        (np.zeros((0, 478, 3)), _valid(0), SIZE, "no frames"),
        (np.zeros((20, 468, 3)), _valid(20), SIZE, r"\[N, 478, 3\], got shape \(20, 468, 3\)"),
        (np.zeros((20, 478, 2)), _valid(20), SIZE, r"got shape \(20, 478, 2\)"),
        (np.zeros((20, 478, 3)), _valid(19), SIZE, r"valid \[20\]"),
        (np.zeros((20, 478, 3)), np.arange(20) < 5, SIZE, "at least 10 frames with a detected face, got 5"),
        (np.full((20, 478, 3), np.nan), _valid(20), SIZE, "valid frame 0 are not finite"),
        (np.zeros((20, 478, 3)), _valid(20), (512, 0), "image_size must be positive"),
        (np.zeros((20, 478, 3)), _valid(20), "512", r"image_size must be \(W, H\)"),
    ],
)
def test_bad_input_raises_data_error(landmarks, valid, size, match):
    with pytest.raises(DataError, match=match) as info:
        hp.LandmarkBATracker(hp.LandmarkBAConfig()).fit(landmarks, valid, size)
    assert "\n" not in str(info.value)


def test_config_is_validated():
    with pytest.raises(ValidationError):
        hp.LandmarkBAConfig(focal_range=(4.0, 2.0))
    with pytest.raises(ValidationError):
        hp.LandmarkBAConfig(unknown=1)
    with pytest.raises(ValidationError):
        hp.LandmarkBAConfig(focal=-5.0)


def test_rigid_landmarks_leave_out_the_moving_parts(face):
    shape, rigid = face
    regions, _ = hp._mesh_topology()
    for name in ("lips", "eyes", "brows", "oval", "irises"):
        assert not set(rigid.tolist()) & regions[name], name
    assert 100 <= len(rigid) <= 250
    assert (shape[rigid, 1] <= shape[hp.SUBNASALE, 1] + 1e-9).all()  # nothing below the nose
    assert {1, 4, 6, 168} <= set(rigid.tolist())  # nose tip and bridge


def test_a_still_head_leaves_the_focal_undetermined_and_says_so(face):
    shape, _ = face
    lm, _, _ = render(shape, n=25, focal=1200.0, amp_deg=0.3)  # one second of a head that barely turns
    track = hp.LandmarkBATracker(hp.LandmarkBAConfig()).fit(lm, np.ones(len(lm), bool), SIZE)
    assert any("focal length is poorly determined" in n for n in track.notes)
