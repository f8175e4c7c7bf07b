"""Mouth opening, pose-free mouth alignment and the mouth code."""

import numpy as np
import pytest

from syncanim.face.mouth import ANCHORS, INNER_LIPS, MOUTH_POINTS, MouthBasis, aligned_mouth, mouth_opening


def _rotation(rng) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.linalg.det(q))


def _faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n frames of one random face whose jaw opens by ``amount`` (returned), seen under random
    similarity transforms (rotation, scale, shift), as FaceMesh would report it."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((478, 3))
    base[33], base[263] = (-1.0, 0, 0), (1.0, 0, 0)  # eye corners 2 apart
    base[13], base[14] = (0, -1.5, 0.2), (0, -1.55, 0.2)  # inner lips, the lower one below
    lower = np.array(sorted(set(MOUTH_POINTS) - {13}))  # point 13 (upper inner lip) stays with the skull
    amount = rng.uniform(0, 0.3, n)
    out = np.empty((n, 478, 3))
    for i in range(n):
        face = base.copy()
        face[lower, 1] -= amount[i]  # the jaw drops
        r, s, t = _rotation(rng), rng.uniform(50, 200), rng.uniform(-100, 100, 3)
        out[i] = s * face @ r.T + t
    return out, amount


def test_opening_is_the_lip_gap_over_the_eye_distance():
    pts, amount = _faces(20)
    gap0 = np.linalg.norm(_faces(1)[0][0, INNER_LIPS[0]] - _faces(1)[0][0, INNER_LIPS[1]])  # any pose
    assert np.all(np.isfinite(mouth_opening(pts)))
    # the opening grows with the jaw drop and does not see pose or scale
    assert np.corrcoef(mouth_opening(pts), amount)[0, 1] > 0.95
    assert gap0 > 0
    pts[3] = np.nan
    assert np.isnan(mouth_opening(pts)[3])
    with pytest.raises(ValueError):
        mouth_opening(np.zeros((2, 10, 3)))


def test_alignment_removes_pose_and_scale():
    pts, amount = _faces(30)
    mouth, ref = aligned_mouth(pts)
    assert mouth.shape == (30, len(MOUTH_POINTS), 3) and ref.shape == (len(ANCHORS), 3)
    # what remains is the jaw motion alone: one direction, proportional to the drop (eye distance 2 -> 1)
    d = mouth - mouth.mean(0)
    flat = d.reshape(30, -1)
    s = np.linalg.svd(flat, compute_uv=False)
    assert s[1] < 1e-6 * s[0] + 1e-9
    jaw = MOUTH_POINTS.index(152)
    travel = np.linalg.norm(mouth[np.argmax(amount), jaw] - mouth[np.argmin(amount), jaw])
    np.testing.assert_allclose(travel, 0.5 * np.ptp(amount), rtol=1e-6)


def test_basis_codes_round_trip_and_measure_the_opening():
    pts, amount = _faces(60, seed=1)
    basis = MouthBasis.fit(pts, max_components=4)
    assert basis.size == 1  # the synthetic mouth has one degree of freedom
    codes = basis.encode(pts)
    assert codes.shape == (60, 1) and codes.dtype == np.float32
    np.testing.assert_allclose(codes.std(), 1.0, rtol=1e-4)  # unit spread per component
    np.testing.assert_allclose(basis.opening(codes), mouth_opening(pts), atol=1e-5)
    mouth, _ = aligned_mouth(pts, basis.reference)
    np.testing.assert_allclose(basis.decode(codes), mouth, atol=1e-5)
    pts[5] = np.nan
    assert np.isnan(basis.encode(pts)[5]).all()
    with pytest.raises(ValueError, match="two frames"):
        MouthBasis.fit(pts[4:6])


def test_shown_opening_reads_crossed_lips_as_closed():
    """A code past the closed mouth moves the lower lip above the upper: its distance reads as an opening, the
    picture of it as closed."""
    pts, amount = _faces(60, seed=2)
    basis = MouthBasis.fit(pts, max_components=4)
    codes = basis.encode(pts)
    np.testing.assert_allclose(basis.opening(codes, shown=True), basis.opening(codes), atol=1e-12)  # real mouths
    closed = basis.encode(pts[[int(np.argmin(amount))]])[0, 0]  # the least open mouth's code
    step = closed - basis.encode(pts[[int(np.argmax(amount))]])[0, 0]  # towards closing
    crossed = np.array([[closed + 2 * step]], np.float32)  # as far past closed as the widest mouth is open
    assert basis.opening(crossed)[0] > 0.05  # the folded distance
    assert basis.opening(crossed, shown=True)[0] == 0.0


def test_opening_direction_is_the_slope_of_the_opening():
    """The opening's change per unit of each component, at the average mouth, as finite differences find it."""
    pts, _ = _faces(40, seed=3)
    rng = np.random.default_rng(3)
    pts[:, list(MOUTH_POINTS)] += rng.normal(0, 0.5, (40, len(MOUTH_POINTS), 3))  # more shapes than one: C > 1
    basis = MouthBasis.fit(pts, max_components=4, variance=0.999)
    assert basis.size > 1
    d = basis.opening_direction()
    eps = 1e-4
    fd = [(basis.opening(eps * np.eye(basis.size)[[k]]) - basis.opening(-eps * np.eye(basis.size)[[k]]))[0] / (2 * eps)
          for k in range(basis.size)]
    np.testing.assert_allclose(d, fd, rtol=1e-3, atol=1e-6)
