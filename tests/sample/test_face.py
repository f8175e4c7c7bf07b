import numpy as np
import pytest

from syncanim.sample.face import (
    ASTRONAUT,
    FacePose,
    animate_face,
    blink_eye,
    eye_lid_map,
    head_box,
    mouth_field,
    move_head,
    open_mouth,
    similarity_warp,
)
from syncanim.sample.generate import astronaut


@pytest.fixture(scope="module")
def photo():
    img, geom = astronaut(512)
    assert geom is ASTRONAUT
    return img


def _luma(img):
    return img.astype(np.float64).mean(axis=2)


def _mouth_gap_box():
    """Rows and columns just below the middle of the split curve, where the cavity opens."""
    m = ASTRONAUT.mouth
    cx = int(round(m.center_x))
    top = int(round(0.5 * (m.left[1] + m.right[1]) + m.depth))
    return slice(top + 1, top + 8), slice(cx - 8, cx + 9)


def _eye_box(eye):
    (ox, oy), (ix, iy) = eye.outer, eye.inner
    x0, x1 = int(min(ox, ix)), int(max(ox, ix)) + 1
    y0, y1 = int(min(oy, iy) - eye.lid_height), int(max(oy, iy) + eye.lower_depth) + 1
    return slice(y0, y1), slice(x0, x1)


def test_rest_pose_is_the_photo(photo):
    np.testing.assert_array_equal(open_mouth(photo, ASTRONAUT.mouth, 0.0), photo)
    np.testing.assert_array_equal(animate_face(photo, ASTRONAUT, FacePose()), photo)


def test_tiny_opening_barely_changes_the_photo(photo):
    out = open_mouth(photo, ASTRONAUT.mouth, 0.05)
    assert np.abs(out.astype(int) - photo).max() <= 12  # a twentieth of a pixel of motion
    assert np.abs(out.astype(int) - photo).mean() < 0.01


def test_open_mouth_darkens_the_mouth_and_nothing_else(photo):
    rows, cols = _mouth_gap_box()
    out = open_mouth(photo, ASTRONAUT.mouth, ASTRONAUT.max_opening_px)
    assert _luma(out[rows, cols]).mean() < 0.4 * _luma(photo[rows, cols]).mean()
    # the eyes, the forehead and everything above the mouth corners stay as they were
    top = int(min(ASTRONAUT.mouth.left[1], ASTRONAUT.mouth.right[1])) - 3
    np.testing.assert_array_equal(out[:top], photo[:top])
    np.testing.assert_array_equal(out[260:], photo[260:])


def test_mouth_opening_grows_with_the_amount(photo):
    rows, cols = _mouth_gap_box()
    dark = [_luma(open_mouth(photo, ASTRONAUT.mouth, a * ASTRONAUT.max_opening_px)[rows, cols]).mean()
            for a in (0.0, 0.3, 0.6, 1.0)]
    assert all(a > b for a, b in zip(dark, dark[1:], strict=False)), dark


def test_jaw_field_is_a_fold_free_drop_below_the_split(photo):
    m, drop_px = ASTRONAUT.mouth, ASTRONAUT.max_opening_px
    ys, xs = np.mgrid[100:260, 150:300].astype(np.float32)
    drop, split = mouth_field(xs, ys, m, drop_px)
    assert drop.min() >= 0 and drop.max() == pytest.approx(drop_px, rel=0.05)
    assert np.all(drop[ys < split - 0.5] == 0)  # the upper lip and teeth stay
    src_y = ys - drop
    step = np.diff(src_y, axis=0)  # source rows must keep their order down each column
    below = ys[:-1] >= split[:-1] + 0.5  # both rows fully below the split (the split is the one intended tear)
    assert step[below].min() > 0.05
    # the chin follows part of the way; the neck far below does not move
    cx = int(round(m.center_x)) - 150
    assert 0.3 * drop_px < drop[int(m.chin_y) - 100, cx] < 0.8 * drop_px
    assert drop[-1].max() == 0


def test_blink_zero_is_the_photo_and_one_closes_the_eye(photo):
    for eye in (ASTRONAUT.left_eye, ASTRONAUT.right_eye):
        np.testing.assert_array_equal(blink_eye(photo, eye, 0.0), photo)
        closed = blink_eye(photo, eye, 1.0)
        rows, cols = _eye_box(eye)
        diff = np.abs(closed.astype(int) - photo)
        assert diff[rows, cols].mean() > 10
        # lid skin covers the dark iris: the eye gets brighter
        assert _luma(closed[rows, cols]).mean() > _luma(photo[rows, cols]).mean() + 10
        outside = diff.copy()
        outside[rows.start - int(eye.skin_height) - 2:rows.stop + 2, cols.start - 2:cols.stop + 2] = 0
        assert outside.max() == 0


def test_lid_map_is_identity_when_open_and_monotone_when_closing():
    eye = ASTRONAUT.left_eye
    ys, xs = np.mgrid[85:110, 190:218].astype(np.float32)
    np.testing.assert_allclose(eye_lid_map(xs, ys, eye, 0.0), ys, atol=1e-4)
    src = eye_lid_map(xs, ys, eye, 1.0)
    assert np.all(src <= ys + 1e-4)  # skin from above is pulled down, never the other way


def test_similarity_warp_identity_and_shift(photo):
    np.testing.assert_array_equal(similarity_warp(photo, 0.0, (0.0, 0.0), (200.0, 300.0)), photo)
    shifted = similarity_warp(photo, 0.0, (3.0, 0.0), (256.0, 256.0))
    np.testing.assert_array_equal(shifted[:, 3:], photo[:, :-3])
    turned = similarity_warp(photo, 3.0, (0.0, 0.0), (256.0, 256.0))
    assert np.abs(turned.astype(int) - photo).mean() > 5


def test_head_motion_moves_the_face_and_keeps_the_background(photo):
    np.testing.assert_array_equal(move_head(photo, ASTRONAUT, 0.0, (0.0, 0.0)), photo)
    out = move_head(photo, ASTRONAUT, 0.0, (4.0, 0.0))
    # the face region is translated by exactly 4 px inside the head ellipse
    np.testing.assert_array_equal(out[90:150, 204:244], photo[90:150, 200:240])
    x0, y0, x1, y1 = head_box(photo.shape[:2], ASTRONAUT)
    keep = np.ones(photo.shape[:2], bool)
    keep[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[keep], photo[keep])


def test_geometry_scales_with_the_photo():
    half = ASTRONAUT.scaled(0.5)
    assert half.mouth.left == (ASTRONAUT.mouth.left[0] / 2, ASTRONAUT.mouth.left[1] / 2)
    assert half.max_opening_px == ASTRONAUT.max_opening_px / 2
    assert half.right_eye.skin_height == ASTRONAUT.right_eye.skin_height / 2
    img, geom = astronaut(256)
    assert img.shape == (256, 256, 3) and geom == half


def test_rejects_non_rgb_uint8(photo):
    with pytest.raises(ValueError, match="uint8"):
        open_mouth(photo.astype(np.float32), ASTRONAUT.mouth, 1.0)
