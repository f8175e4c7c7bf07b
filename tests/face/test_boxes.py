import numpy as np

from syncanim.face.boxes import face_box, face_boxes


def test_face_box_grows_the_landmark_box_and_stays_in_the_frame():
    pts = np.array([[20.0, 30.0, 0.0], [60.0, 50.0, 0.0], [40.0, 40.0, 5.0]])
    assert face_box(pts, (128, 128), 0.1) == (16, 28, 64, 52)  # 4 px and 2 px of margin, floor / ceil
    assert face_box(pts, (45, 128), 0.5) == (0, 20, 80, 45)  # clipped to 45 rows, 128 columns
    assert face_box(pts + 200, (128, 128)) is None  # outside the frame
    pts[1, 0] = np.nan
    assert face_box(pts, (128, 128)) is None
    assert face_boxes([pts[[0, 2]], pts], (128, 128), 0.0) == [(20, 30, 40, 40), None]
