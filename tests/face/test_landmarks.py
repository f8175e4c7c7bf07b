"""FaceMesh landmarks: frames without a face filled over time (``fill_gaps``), MediaPipe lists read (``landmark_array``)."""

from __future__ import annotations

import numpy as np
import pytest

from syncanim.face.landmarks import fill_gaps

K = 5  # landmarks per frame in these fixtures (the function does not care how many)


def track(n: int, missing: list[int] | range) -> np.ndarray:
    """``[n, K, 3]`` float64 landmarks moving linearly with the frame index, NaN rows at ``missing``."""
    base = np.arange(K * 3, dtype=np.float64).reshape(K, 3)
    pts = base[None] + 10.0 * np.arange(n, dtype=np.float64)[:, None, None]  # [n, K, 3]
    pts[list(missing)] = np.nan
    return pts


def expected_linear(n: int) -> np.ndarray:
    return track(n, []).astype(np.float32)


def test_nothing_missing_is_unchanged():
    pts = track(6, [])
    out, interp = fill_gaps(pts, max_gap=3)
    np.testing.assert_array_equal(out, pts.astype(np.float32))
    assert out.dtype == np.float32 and out.shape == pts.shape
    assert interp.dtype == bool and not interp.any()


def test_short_gap_is_interpolated_linearly():
    pts = track(10, [3, 4, 5])
    out, interp = fill_gaps(pts, max_gap=3)
    np.testing.assert_allclose(out, expected_linear(10), rtol=0, atol=1e-4)
    assert interp.tolist() == [i in (3, 4, 5) for i in range(10)]


def test_interpolation_between_unequal_frames():
    pts = np.full((4, 2, 3), np.nan)
    pts[0], pts[3] = 0.0, 3.0
    out, _ = fill_gaps(pts, max_gap=2)
    np.testing.assert_allclose(out[:, 0, 0], [0.0, 1.0, 2.0, 3.0], atol=1e-6)


def test_gap_of_exactly_max_gap_is_interpolated():
    out, interp = fill_gaps(track(8, [2, 3, 4]), max_gap=3)
    assert interp[2:5].all()
    np.testing.assert_allclose(out, expected_linear(8), atol=1e-4)


def test_long_gap_holds_the_nearest_found_frame():
    pts = track(10, [2, 3, 4, 5])  # found at 1 and 6; gap of 4 > max_gap
    out, interp = fill_gaps(pts, max_gap=3)
    assert not interp.any()
    for i, src in [(2, 1), (3, 1), (4, 6), (5, 6)]:
        np.testing.assert_array_equal(out[i], pts[src].astype(np.float32), err_msg=f"frame {i}")
    np.testing.assert_array_equal(out[[0, 1, 6, 7, 8, 9]], pts[[0, 1, 6, 7, 8, 9]].astype(np.float32))


def test_long_gap_tie_takes_the_earlier_frame():
    pts = track(5, [1, 2, 3])  # frame 2 is as far from 0 as from 4
    out, _ = fill_gaps(pts, max_gap=0)
    np.testing.assert_array_equal(out[2], pts[0].astype(np.float32))


def test_max_gap_zero_interpolates_nothing():
    pts = track(3, [1])
    out, interp = fill_gaps(pts, max_gap=0)
    assert not interp.any()
    np.testing.assert_array_equal(out[1], pts[0].astype(np.float32))


@pytest.mark.parametrize("max_gap", [0, 2, 100])
def test_ends_hold_the_nearest_found_frame(max_gap):
    pts = track(8, [0, 1, 6, 7])  # found only at 2..5
    out, interp = fill_gaps(pts, max_gap=max_gap)
    assert not interp.any()  # nothing to interpolate towards at the ends, however large max_gap is
    np.testing.assert_array_equal(out[0], pts[2].astype(np.float32))
    np.testing.assert_array_equal(out[1], pts[2].astype(np.float32))
    np.testing.assert_array_equal(out[6], pts[5].astype(np.float32))
    np.testing.assert_array_equal(out[7], pts[5].astype(np.float32))


def test_a_single_found_frame_fills_everything():
    pts = track(5, [0, 1, 3, 4])
    out, interp = fill_gaps(pts, max_gap=10)
    np.testing.assert_array_equal(out, np.broadcast_to(pts[2].astype(np.float32), out.shape))
    assert not interp.any()


def test_mixed_short_and_long_gaps_and_the_mask():
    pts = track(20, [0, 3, 4, 8, 9, 10, 11, 12, 19])
    out, interp = fill_gaps(pts, max_gap=2)
    assert np.flatnonzero(interp).tolist() == [3, 4]
    assert not np.isnan(out).any()
    np.testing.assert_allclose(out[3:5], expected_linear(20)[3:5], atol=1e-4)
    np.testing.assert_array_equal(out[8:10], np.repeat(pts[7:8], 2, axis=0).astype(np.float32))
    np.testing.assert_array_equal(out[11:13], np.repeat(pts[13:14], 2, axis=0).astype(np.float32))
    np.testing.assert_array_equal(out[19], pts[18].astype(np.float32))


def test_a_partly_nan_row_counts_as_missing():
    pts = track(5, [])
    pts[2, 1, 0] = np.nan  # one coordinate of one landmark lost
    out, interp = fill_gaps(pts, max_gap=1)
    assert interp.tolist() == [False, False, True, False, False]
    np.testing.assert_allclose(out[2], expected_linear(5)[2], atol=1e-4)


def test_input_is_not_modified():
    pts = track(6, [2, 3])
    before = pts.copy()
    fill_gaps(pts, max_gap=5)
    np.testing.assert_array_equal(pts, before)


@pytest.mark.parametrize("n", [1, 7])
def test_no_face_anywhere_raises(n):
    with pytest.raises(ValueError, match="no frame has a face"):
        fill_gaps(np.full((n, K, 3), np.nan), max_gap=3)


def test_landmark_array_reads_the_serialized_list_exactly():
    from mediapipe.framework.formats import landmark_pb2

    from syncanim.face.landmarks import landmark_array

    rng = np.random.default_rng(3)
    pts = rng.normal(size=(478, 3)).astype(np.float32)
    msg = landmark_pb2.NormalizedLandmarkList()
    for x, y, z in pts:
        msg.landmark.add(x=float(x), y=float(y), z=float(z))
    np.testing.assert_array_equal(landmark_array(msg), pts)
    # a point with an extra field takes the general path and still reads right
    msg.landmark[5].visibility = 0.5
    np.testing.assert_array_equal(landmark_array(msg), pts)
