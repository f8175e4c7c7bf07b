"""Which training frame each output frame replays, looping with smooth joins (pure functions).

The replayed frames run forward; the loop length is chosen where the head pose comes back closest
to the start, and the last ``join`` frames of every pass are blended into the first ``join`` frames
(poses interpolated, backgrounds cross-faded), so the loop has no visible jump.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..geometry import matrix_to_quaternion, quaternion_to_matrix


@dataclass(frozen=True)
class ReplayPlan:
    """For output frame k: show training frame ``a[k]``, blended towards ``b[k]`` with weight ``w[k]``."""

    a: np.ndarray  # [T] int
    b: np.ndarray  # [T] int
    w: np.ndarray  # [T] float in [0, 1]


def loop_length(rotation: np.ndarray, translation: np.ndarray, join: int) -> int:
    """Frames per pass: in the second half of the clip, the frame whose pose is nearest frame 0's."""
    n = len(rotation)
    if n <= 2 * join + 2:
        return n
    lo = max(2 * join + 1, n // 2)
    ang = np.array([np.arccos(np.clip((np.trace(rotation[0].T @ rotation[k]) - 1) / 2, -1, 1)) for k in range(lo, n)])
    scale = np.linalg.norm(translation[:, :2].std(0)) + 1e-9
    dist = ang / (np.ptp(ang) + 1e-9) + np.linalg.norm(translation[lo:] - translation[0], axis=1) / scale
    return int(lo + np.argmin(dist) + 1)


def replay_plan(num_out: int, rotation: np.ndarray, translation: np.ndarray, join: int) -> ReplayPlan:
    """The replay of N training poses over ``num_out`` output frames. rotation: [N, 3, 3], translation: [N, 3]."""
    n = len(rotation)
    join = max(0, min(join, n // 4))
    length = loop_length(rotation, translation, join)
    a = np.empty(num_out, np.int64)
    b = np.empty(num_out, np.int64)
    w = np.zeros(num_out, np.float64)
    pos = 0  # position within the current pass
    for k in range(num_out):
        a[k] = pos
        tail = pos - (length - join)
        if join and tail >= 0:
            b[k] = tail
            w[k] = (tail + 1) / (join + 1)
        else:
            b[k] = pos
        pos += 1
        if pos >= length:
            pos = join  # frames 0 .. join-1 were shown blended into the tail
    return ReplayPlan(a, b, w)


def blend_poses(rotation: np.ndarray, translation: np.ndarray, plan: ReplayPlan) -> tuple[np.ndarray, np.ndarray]:
    """Poses of the output frames: [T, 3, 3], [T, 3] (rotations interpolated along the shorter arc)."""
    qa, qb = matrix_to_quaternion(rotation[plan.a]), matrix_to_quaternion(rotation[plan.b])
    qb = np.where((qa * qb).sum(-1, keepdims=True) < 0, -qb, qb)
    q = (1 - plan.w)[:, None] * qa + plan.w[:, None] * qb
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    t = (1 - plan.w)[:, None] * translation[plan.a] + plan.w[:, None] * translation[plan.b]
    return quaternion_to_matrix(q).astype(np.float32), t.astype(np.float32)


def static_plan(num_out: int) -> ReplayPlan:
    """Every output frame shows training frame 0."""
    z = np.zeros(num_out, np.int64)
    return ReplayPlan(z, z, np.zeros(num_out))
