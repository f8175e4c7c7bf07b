"""Aligning native feature sequences to video frames (syncanim/audio/framing.py)."""

from __future__ import annotations

import numpy as np
import pytest

from syncanim.audio.framing import (
    align_to_frames,
    interpolate_rows,
    native_positions,
    native_span,
    num_frames_for,
    substep_times,
)


@pytest.mark.parametrize(
    ("duration", "fps", "expected"),
    [(2.0, 25, 50), (2.0, 30, 60), (2.001, 25, 51), (1 / 3, 30, 10), (0.0, 25, 0), (0.01, 25, 1), (60.0, 29.97, 1799)],
)
def test_num_frames_is_ceil_of_duration_times_fps(duration, fps, expected):
    assert num_frames_for(duration, fps) == expected


def test_substep_times_are_centres_of_equal_slices():
    t = substep_times(3, 5, fps=25, per_frame=4)
    assert t.shape == (8,)
    expected = [(k + (i + 0.5) / 4) / 25 for k in (3, 4) for i in range(4)]
    np.testing.assert_allclose(t, expected, rtol=0, atol=1e-12)
    # every sub-step of frame k lies inside [k / fps, (k + 1) / fps)
    k = np.repeat([3, 4], 4)
    assert np.all((t >= k / 25) & (t < (k + 1) / 25))


def test_positions_snap_to_native_rows_when_rates_match():
    # 25 fps x 4 sub-steps = 100 Hz, rows centred at (j + 0.5) * 10 ms: sub-step m is row m exactly,
    # even far into a long clip where float error would otherwise give 1e-10 blends.
    t = substep_times(89_990, 90_000, fps=25, per_frame=4)
    pos = native_positions(t, rate=100.0, offset_s=0.005)
    np.testing.assert_array_equal(pos, np.arange(89_990 * 4, 90_000 * 4, dtype=np.float64))


def test_interpolate_rows_is_linear_and_clamps_at_edges():
    seq = np.array([[0.0, 10.0], [1.0, 20.0], [3.0, 40.0]], np.float32)  # [T=3, F=2]
    out = interpolate_rows(seq, np.array([-2.0, 0.0, 0.25, 1.5, 2.0, 7.0]))
    expected = [[0, 10], [0, 10], [0.25, 12.5], [2.0, 30.0], [3, 40], [3, 40]]
    np.testing.assert_allclose(out, expected, atol=1e-6)
    assert out.dtype == np.float32


def test_interpolate_rows_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\[T, F\]"):
        interpolate_rows(np.zeros(5, np.float32), np.zeros(2))
    with pytest.raises(ValueError, match="no rows"):
        interpolate_rows(np.zeros((0, 3), np.float32), np.zeros(2))


@pytest.mark.parametrize(("fps", "per_frame", "rate", "offset"), [(25, 2, 50.0, 0.0125), (30, 4, 100.0, 0.005), (29.97, 3, 50.0, 0.0)])
def test_align_reproduces_a_linear_function_of_time(fps, per_frame, rate, offset):
    # Row j holds its own centre time; interpolation of a linear function is exact, so every output
    # vector must equal the time of its sub-step. A wrong offset, rate or ordering shows up here.
    rows = 400
    seq = np.stack([offset + np.arange(rows) / rate, -2.0 * (offset + np.arange(rows) / rate)], 1)  # [T, 2]
    n = 30
    out = align_to_frames(seq, rate, fps, per_frame, 5, 5 + n, offset_s=offset)
    assert out.shape == (n, per_frame, 2)
    t = substep_times(5, 5 + n, fps, per_frame).reshape(n, per_frame)
    np.testing.assert_allclose(out[..., 0], t, atol=1e-9)
    np.testing.assert_allclose(out[..., 1], -2.0 * t, atol=1e-9)


def test_align_uses_edge_rows_beyond_the_sequence():
    seq = np.arange(10, dtype=np.float32)[:, None]  # rows at 0, 0.02, ... 0.18 s (50 Hz)
    out = align_to_frames(seq, 50.0, 25, 2, 0, 10)  # frames cover 0 .. 0.4 s
    # sub-step m is at (m + 0.5) * 0.02 s, i.e. halfway between rows m and m + 1
    np.testing.assert_allclose(out[:, :, 0].reshape(-1)[:9], np.arange(9) + 0.5, atol=1e-6)
    assert np.all(out[5:, :, 0] == 9.0)  # t >= 0.2 s is past the last row: edge value


def test_native_span_covers_what_interpolation_reads():
    rate, offset, fps, per_frame = 50.0, 0.0125, 30, 2
    seq = np.random.default_rng(0).standard_normal((500, 3))
    start, stop = 40, 70
    j0, j1 = native_span(start, stop, fps, per_frame, rate, offset)
    assert 0 <= j0 < j1 <= 500
    full = align_to_frames(seq, rate, fps, per_frame, start, stop, offset_s=offset)
    # the same frames from only rows [j0, j1): offset moves to row j0's time
    part = align_to_frames(seq[j0:j1], rate, fps, per_frame, start, stop, offset_s=offset + j0 / rate)
    np.testing.assert_allclose(part, full, atol=1e-12)
    # one row fewer on either side changes the result (the span is tight)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(
            align_to_frames(seq[j0 + 1:j1], rate, fps, per_frame, start, stop, offset_s=offset + (j0 + 1) / rate),
            full, atol=1e-12)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(
            align_to_frames(seq[j0:j1 - 1], rate, fps, per_frame, start, stop, offset_s=offset + j0 / rate),
            full, atol=1e-12)


def test_empty_frame_range():
    assert native_span(5, 5, 25, 4, 100.0) == (0, 0)
    out = align_to_frames(np.zeros((4, 3), np.float32), 100.0, 25, 4, 5, 5)
    assert out.shape == (0, 4, 3)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="fps"):
        num_frames_for(1.0, 0)
    with pytest.raises(ValueError, match="per_frame"):
        substep_times(0, 3, 25, 0)
    with pytest.raises(ValueError, match="rate"):
        native_positions(np.zeros(3), rate=0)
