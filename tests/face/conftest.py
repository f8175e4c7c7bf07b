"""Shared fixtures of the face tests."""

from __future__ import annotations

import os

import numpy as np
import pytest

from syncanim.face import headpose as hp


@pytest.fixture(scope="session")
def face() -> tuple[np.ndarray, np.ndarray]:
    """A canonical face shape ``[478, 3]`` (metres) and its rigid landmark indices."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    mp = pytest.importorskip("mediapipe")
    from skimage.data import astronaut

    img = astronaut()
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, refine_landmarks=True, max_num_faces=1) as fm:
        result = fm.process(img)
    assert result.multi_face_landmarks, "MediaPipe found no face in the astronaut photo"
    h, w = img.shape[:2]
    pts = np.array([[p.x * w, p.y * h, p.z * w] for p in result.multi_face_landmarks[0].landmark])
    rigid = hp.rigid_landmarks(_canonical(pts, hp.rigid_candidates()))
    return _canonical(pts, rigid), rigid


def _canonical(shape: np.ndarray, rigid: np.ndarray) -> np.ndarray:
    a, q, c = hp.canonical_transform(shape, rigid)
    return a * (shape - c) @ q.T
