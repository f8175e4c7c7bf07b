"""Label maps of the geometric segmenter and the background plate's fill, on drawn people."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from syncanim.data.labels import BACKGROUND, FACE, HEAD, NECK, TORSO
from syncanim.face.landmarks import FACE_OVAL, NUM_LANDMARKS
from syncanim.prep.background import merge_plates, smooth_fill
from syncanim.prep.masks import GeometricSegConfig, split_person

SKIN, HAIR, SHIRT, WALL = (205, 150, 125), (60, 40, 30), (40, 60, 140), (30, 120, 220)


def face_points(centre: tuple[float, float], half_w: float, half_h: float, roll_deg: float = 0.0) -> np.ndarray:
    """Landmarks [478, 3] whose face outline is an ellipse (forehead at the top, chin at the bottom), the
    other points at its centre, the whole rolled by ``roll_deg`` about the centre."""
    cx, cy = centre
    pts = np.zeros((NUM_LANDMARKS, 3), np.float32)
    pts[:, 0], pts[:, 1] = cx, cy
    r = np.radians(roll_deg)
    for k, idx in enumerate(FACE_OVAL):
        a = 2 * np.pi * k / len(FACE_OVAL)  # clockwise from the top
        dx, dy = half_w * np.sin(a), -half_h * np.cos(a)
        pts[idx, 0] = cx + dx * np.cos(r) - dy * np.sin(r)
        pts[idx, 1] = cy + dx * np.sin(r) + dy * np.cos(r)
    return pts


def drawn_person(size: int = 256, hair_top: int = 30, roll_deg: float = 0.0):
    """A person on a wall: hair, a skin face (ellipse), a skin neck, a shirt with a collar below it.

    Returns (rgb [S, S, 3] uint8, person [S, S] bool, landmarks [478, 3], where the neck skin is [S, S] bool,
    where the hair is [S, S] bool)."""
    cx, cy, hw, hh = size / 2, size * 0.36, size * 0.14, size * 0.19
    img = np.zeros((size, size, 3), np.uint8)
    img[:] = WALL
    hair = np.zeros((size, size), np.uint8)
    cv2.ellipse(hair, (int(cx), int(cy - hh * 0.35)), (int(hw * 1.25), int(cy - hh * 0.35 - hair_top)), roll_deg, 0, 360,
                1, -1)
    neck = np.zeros((size, size), np.uint8)
    top = int(cy + hh * 0.6)
    collar = int(cy + hh * 1.65)
    cv2.rectangle(neck, (int(cx - hw * 0.6), top), (int(cx + hw * 0.6), collar), 1, -1)
    shirt = np.zeros((size, size), np.uint8)
    cv2.ellipse(shirt, (int(cx), size), (int(size * 0.45), size - collar), 0, 180, 360, 1, -1)
    face = np.zeros((size, size), np.uint8)
    pts = face_points((cx, cy), hw, hh, roll_deg)
    cv2.fillPoly(face, [np.round(pts[list(FACE_OVAL), :2]).astype(np.int32)], 1)
    img[hair > 0] = HAIR
    img[neck > 0] = SKIN
    img[shirt > 0] = SHIRT
    img[face > 0] = SKIN
    person = (hair | neck | shirt | face) > 0
    return img, person, pts, (neck > 0) & (face == 0) & (shirt == 0), (hair > 0) & (face == 0)


def test_hair_however_tall_is_head() -> None:
    img, person, pts, _, hair = drawn_person(hair_top=8)
    labels = split_person(img, person, pts, None, GeometricSegConfig())
    jaw = max(pts[172, 1], pts[397, 1])
    above = hair.copy()
    above[int(jaw):] = False  # hair hanging below the jaw goes with the body
    assert above.sum() > 2000 and (labels[above] == HEAD).mean() > 0.99
    face = np.zeros(person.shape, np.uint8)
    cv2.fillPoly(face, [np.round(pts[list(FACE_OVAL), :2]).astype(np.int32)], 1)
    assert (labels[face > 0] == FACE).all()


@pytest.mark.parametrize("roll", [0.0, 12.0])
def test_neck_is_the_skin_between_head_and_collar(roll: float) -> None:
    img, person, pts, skin, _ = drawn_person(roll_deg=roll)
    labels = split_person(img, person, pts, None, GeometricSegConfig())
    below_head = skin & (labels != FACE) & (labels != HEAD)
    assert (labels[below_head] == NECK).mean() > 0.9
    shirt = np.all(img == SHIRT, -1)
    assert (labels[shirt] == TORSO).mean() > 0.99  # the collar and shirt under the neck stay torso
    assert (labels[~person] == BACKGROUND).all()


def test_shoulder_line_bounds_the_neck() -> None:
    img, person, pts, skin, _ = drawn_person()
    rows = np.flatnonzero(skin.any(1))
    cut = float(rows[0] + rows[-1]) / 2  # a shoulder line through the middle of the neck
    labels = split_person(img, person, pts, np.array([[40.0, cut], [216.0, cut]]), GeometricSegConfig())
    assert not (labels[int(cut) + 1:] == NECK).any()
    assert (labels[:int(cut)][skin[:int(cut)]] == NECK).mean() > 0.5


def test_no_neck_where_nothing_is_skin() -> None:
    img, person, pts, skin, _ = drawn_person()
    img[skin] = SHIRT  # a turtleneck
    labels = split_person(img, person, pts, None, GeometricSegConfig())
    assert not (labels == NECK).any()
    assert (labels[skin] == TORSO).mean() > 0.9


def test_without_landmarks_the_person_is_torso() -> None:
    img, person, _, _, _ = drawn_person()
    labels = split_person(img, person, None, None, GeometricSegConfig())
    assert set(np.unique(labels[person])) == {TORSO} and (labels[~person] == BACKGROUND).all()


def test_smooth_fill_keeps_known_pixels_and_blends_between_edges() -> None:
    img = np.zeros((64, 96, 3), np.float32)
    img[:, :48], img[:, 48:] = 100, 200
    known = np.ones((64, 96), bool)
    known[16:48, 24:72] = False
    out = smooth_fill(img, known)
    assert np.array_equal(out[known], img[known])
    row = out[32, 24:72, 0]
    assert row.min() >= 100 and row.max() <= 200
    assert np.all(np.diff(row) >= -1e-3)  # no streaks: a monotone blend from one side to the other
    assert row[-1] - row[0] > 40


def test_plate_fill_modes() -> None:
    mean = np.full((32, 32, 3), 50, np.float32)
    mean[8:24, 8:24] = np.nan
    for fill in ("smooth", "telea"):
        plate, unseen = merge_plates([mean], 3, fill)
        assert unseen.sum() == 256 and np.abs(plate.astype(int) - 50).max() <= (1 if fill == "smooth" else 4)
