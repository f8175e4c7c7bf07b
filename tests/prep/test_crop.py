"""Square framing of the subject (syncanim/prep/crop.py)."""

from __future__ import annotations

import numpy as np
import pytest

from syncanim.prep.crop import CropBox, apply_crop, center_box, full_frame_box, subject_box


def boxes(*rows) -> np.ndarray:
    return np.array(rows, dtype=np.float64)  # [M, 4] (x0, y0, x1, y1)


def gradient(h: int, w: int) -> np.ndarray:
    """An image where every pixel is identifiable: R = column, G = row, B = 7."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx % 256, yy % 256, np.full_like(xx, 7)], axis=-1).astype(np.uint8)  # [H, W, 3]


def inside(box: CropBox, w: int, h: int) -> bool:
    return box.x0 >= 0 and box.y0 >= 0 and box.x0 + box.side <= w and box.y0 + box.side <= h


# --- simple boxes --------------------------------------------------------------------------


def test_full_frame_box_holds_the_whole_frame():
    assert full_frame_box(640, 480) == CropBox(0, -80, 640)
    assert full_frame_box(480, 640) == CropBox(-80, 0, 640)
    assert full_frame_box(256, 256) == CropBox(0, 0, 256)


def test_center_box_is_the_largest_centred_square():
    assert center_box(640, 480) == CropBox(80, 0, 480)
    assert center_box(480, 640) == CropBox(0, 80, 480)
    assert CropBox(1, 2, 3).as_list() == [1, 2, 3]


# --- subject_box ---------------------------------------------------------------------------


def test_subject_box_centres_on_the_face():
    face = (300.0, 150.0, 340.0, 200.0)  # 40 x 50, centre (320, 175)
    b = subject_box(boxes(face), 640, 480, scale=3.0)
    assert b.side == 150  # scale x face height
    assert abs((b.x0 + b.side / 2) - 320) <= 1  # horizontally centred on the face
    # the whole face is in the square, with more room below it (neck, shoulders) than above
    assert b.x0 <= face[0] and b.x0 + b.side >= face[2]
    assert b.y0 <= face[1] and b.y0 + b.side >= face[3]
    assert (b.y0 + b.side - face[3]) > (face[1] - b.y0)
    assert inside(b, 640, 480)


def test_subject_box_uses_the_median_face():
    steady = [(300.0, 150.0, 340.0, 200.0)] * 5
    outlier = (10.0, 10.0, 200.0, 400.0)  # one bad detection far away and huge
    assert subject_box(boxes(*steady, outlier), 640, 480, 3.0) == subject_box(boxes(*steady), 640, 480, 3.0)


def test_subject_box_follows_the_scale():
    face = boxes((300.0, 150.0, 340.0, 200.0))
    assert subject_box(face, 640, 480, 2.0).side == 100
    assert subject_box(face, 640, 480, 4.0).side == 200


@pytest.mark.parametrize(
    "face",
    [(0.0, 0.0, 40.0, 50.0), (600.0, 0.0, 640.0, 50.0), (0.0, 430.0, 40.0, 480.0), (600.0, 430.0, 640.0, 480.0),
     (-20.0, -20.0, 20.0, 30.0)],
    ids=["top-left", "top-right", "bottom-left", "bottom-right", "partly-outside"],
)
def test_subject_box_is_clamped_inside_the_frame(face):
    b = subject_box(boxes(face), 640, 480, 3.0)
    assert b.side == 150
    assert inside(b, 640, 480), b


def test_subject_box_never_exceeds_the_long_side():
    b = subject_box(boxes((200.0, 100.0, 440.0, 400.0)), 640, 480, 8.0)  # 8 x 300 px would be 2400
    assert b.side == 640
    assert b.x0 == 0  # as wide as the frame: fits exactly
    assert b.y0 <= 0 and b.y0 + b.side >= 480  # taller than the frame: covers all of it


def test_subject_box_square_taller_than_the_frame_with_a_centred_face():
    b = subject_box(boxes((130.0, 40.0, 190.0, 120.0)), 320, 180, 3.0)
    assert b.side == 240 and b.side > 180
    assert b.x0 >= 0 and b.x0 + b.side <= 320
    assert b.y0 <= 0 and b.y0 + b.side >= 180
    out = apply_crop(gradient(180, 320), b, 96)
    assert out.shape == (96, 96, 3)


@pytest.mark.parametrize(
    ("face", "w", "h"),
    [((70.0, 50.0, 100.0, 90.0), 100, 200),  # portrait, face at the right edge: side 120 > width 100
     ((130.0, 100.0, 190.0, 170.0), 320, 180)],  # landscape, face low: side 210 > height 180
    ids=["wider-than-frame", "taller-than-frame"],
)
def test_subject_box_larger_than_the_frame_keeps_the_whole_frame(face, w, h):
    b = subject_box(boxes(face), w, h, 3.0)
    if b.side > w:
        assert b.x0 <= 0 and b.x0 + b.side >= w, b
    if b.side > h:
        assert b.y0 <= 0 and b.y0 + b.side >= h, b


def test_subject_box_has_a_minimum_side():
    b = subject_box(boxes((100.0, 100.0, 101.0, 101.0)), 640, 480, 3.0)  # a 1-pixel "face"
    assert b.side == 16


@pytest.mark.parametrize("shape", [(0, 4), (4,), (3, 5)])
def test_subject_box_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match="face_boxes"):
        subject_box(np.zeros(shape), 640, 480, 3.0)


# --- apply_crop ----------------------------------------------------------------------------


def test_apply_crop_is_identity_for_the_whole_square_frame():
    img = gradient(64, 64)
    out = apply_crop(img, CropBox(0, 0, 64), 64)
    np.testing.assert_array_equal(out, img)
    assert out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]


def test_apply_crop_cuts_the_window():
    img = gradient(100, 120)
    out = apply_crop(img, CropBox(30, 20, 50), 50)
    np.testing.assert_array_equal(out, img[20:70, 30:80])


@pytest.mark.parametrize("size", [32, 64, 200])
def test_apply_crop_output_size(size):
    out = apply_crop(gradient(90, 160), CropBox(10, 5, 80), size)
    assert out.shape == (size, size, 3) and out.dtype == np.uint8


def test_apply_crop_resizes_content_not_just_shape():
    img = np.zeros((100, 100, 3), np.uint8)
    img[:, 50:] = 200  # right half bright
    out = apply_crop(img, CropBox(0, 0, 100), 50)
    assert out[:, :24].max() == 0 and out[:, 26:].min() == 200


def test_apply_crop_pads_outside_the_frame_with_edge_pixels():
    img = gradient(40, 60)
    box = CropBox(-10, -5, 50)  # x -10..40, y -5..45 of a 60 x 40 frame: out on the left, top and bottom
    out = apply_crop(img, box, 50)  # same size: no resampling, exact pixels
    assert out.shape == (50, 50, 3)
    np.testing.assert_array_equal(out[5:45, 10:], img[:, :40])  # the part inside the frame
    np.testing.assert_array_equal(out[5:45, :10], np.repeat(img[:, :1], 10, axis=1))  # left: column 0
    np.testing.assert_array_equal(out[:5, 10:], np.repeat(img[:1, :40], 5, axis=0))  # top: row 0
    np.testing.assert_array_equal(out[45:, 10:], np.repeat(img[-1:, :40], 5, axis=0))  # bottom: last row
    np.testing.assert_array_equal(out[:5, :10], np.broadcast_to(img[0, 0], (5, 10, 3)))  # corner
    expected = np.pad(img, ((5, 5), (10, 0), (0, 0)), mode="edge")[:50, :50]
    np.testing.assert_array_equal(out, expected)


def test_apply_crop_pads_beyond_the_right_and_bottom():
    img = gradient(40, 60)
    out = apply_crop(img, CropBox(30, 20, 40), 40)  # spans x 30..70, y 20..60 of a 60 x 40 frame
    np.testing.assert_array_equal(out[:20, :30], img[20:40, 30:60])
    np.testing.assert_array_equal(out[:20, 30:], np.repeat(img[20:40, 59:60], 10, axis=1))
    np.testing.assert_array_equal(out[20:, :30], np.repeat(img[39:40, 30:60], 20, axis=0))


def test_apply_crop_of_the_full_frame_box_pads_a_landscape_frame():
    img = gradient(48, 64)
    out = apply_crop(img, full_frame_box(64, 48), 64)
    np.testing.assert_array_equal(out[8:56], img)
    np.testing.assert_array_equal(out[:8], np.repeat(img[:1], 8, axis=0))
    np.testing.assert_array_equal(out[56:], np.repeat(img[-1:], 8, axis=0))


def test_apply_crop_does_not_modify_its_input():
    img = gradient(40, 60)
    before = img.copy()
    apply_crop(img, CropBox(-10, -10, 80), 32)
    np.testing.assert_array_equal(img, before)
