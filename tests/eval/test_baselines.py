"""Retrieval and static baselines (syncanim/eval/baselines.py)."""

from __future__ import annotations

import numpy as np

from syncanim.eval.baselines import baseline_indices, retrieval_indices, static_index
from syncanim.geometry import euler_to_matrix


def test_retrieval_finds_the_nearest_feature_window():
    rng = np.random.default_rng(0)
    train = rng.standard_normal((50, 4, 8)).astype(np.float32)
    query = train[[7, 3, 41]] + 0.01 * rng.standard_normal((3, 4, 8)).astype(np.float32)
    assert retrieval_indices(train, query, chunk=2).tolist() == [7, 3, 41]
    q = rng.standard_normal((20, 4, 8))
    brute = np.argmin(((q.reshape(20, 1, -1) - train.reshape(1, 50, -1)) ** 2).sum(-1), 1)
    assert (retrieval_indices(train, q) == brute).all()


def test_static_frame_is_the_median_pose():
    angles = np.zeros((9, 3))
    angles[:, 1] = np.radians([-10, -6, -3, -1, 0.2, 2, 4, 8, 12])  # yaw sweep; median at index 4
    rot = euler_to_matrix(angles)
    trans = np.zeros((9, 3))
    trans[:, 2] = 0.5
    assert static_index(rot, trans) == 4


def test_baseline_indices_only_pick_training_frames():
    rng = np.random.default_rng(1)
    feats = rng.standard_normal((30, 2, 3))
    rot = np.tile(np.eye(3), (30, 1, 1))
    trans = rng.standard_normal((30, 3))
    picks = baseline_indices(feats, rot, trans, 20, list(range(20, 30)))
    assert picks["retrieval"].shape == picks["static"].shape == (10,)
    assert (picks["retrieval"] < 20).all() and (picks["static"] < 20).all()
    assert len(set(picks["static"].tolist())) == 1
