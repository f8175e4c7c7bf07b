import numpy as np
import pytest

from syncanim.data.dataset import mouth_boxes, read_array, torso_background
from syncanim.data.labels import BACKGROUND, FACE, HEAD, NECK, TORSO
from syncanim.errors import DataError


def test_torso_background_removes_the_head_and_stretches_the_neck():
    h = w = 64
    labels = np.full((h, w), BACKGROUND, np.uint8)
    labels[40:, :] = TORSO
    labels[30:40, 24:40] = NECK
    labels[8:30, 20:44] = HEAD
    labels[12:30, 24:40] = FACE
    frame = np.zeros((h, w, 3), np.uint8)
    frame[labels == NECK] = (200, 150, 120)
    frame[labels >= HEAD] = (30, 30, 30)
    frame[labels == TORSO] = (0, 0, 200)
    plate = np.full((h, w, 3), 90, np.uint8)
    out = torso_background(frame, labels, plate, stretch_px=8)
    assert (out[10, 22] == 90).all()  # hair -> plate
    assert abs(int(out[30, 32, 0]) - 200) < 20  # just above the neck: neck colour
    assert 90 < int(out[27, 32, 0]) < int(out[30, 32, 0])  # fading into the plate further up
    assert (out[15, 32] == 90).all()  # far above: plate
    assert (out[45, 5] == (0, 0, 200)).all() and (out[2, 2] == 0).all()  # torso, background untouched


def test_mouth_boxes_are_inside_the_image():
    lm = np.zeros((3, 478, 3), np.float32)
    lm[0, :, :2] = 64
    lm[1, :, :2] = 2
    lm[2, :, :2] = 126
    boxes = mouth_boxes(lm, 128, 32)
    assert boxes.tolist() == [[48, 48], [0, 0], [96, 96]]


def test_a_missing_or_broken_array_says_rerun_prep(tmp_path):
    np.save(tmp_path / "ok.npy", np.arange(3))
    assert read_array(tmp_path / "ok.npy").tolist() == [0, 1, 2]
    (tmp_path / "broken.npy").write_bytes(b"not an array")
    (tmp_path / "empty.npy").write_bytes(b"")
    for name in ("missing.npy", "broken.npy", "empty.npy"):
        with pytest.raises(DataError, match="rerun syncanim prep"):
            read_array(tmp_path / name)
