import numpy as np

from syncanim.geometry import euler_to_matrix, rotation_angle
from syncanim.stream.replay import blend_poses, loop_length, replay_plan, static_plan


def _track(n=100):
    t = np.arange(n)
    angles = np.stack([0.1 * np.sin(t / 9), 0.15 * np.sin(t / 13 + 1), 0.05 * np.cos(t / 7)], 1)
    return euler_to_matrix(angles).astype(np.float32), np.stack([0.01 * np.sin(t / 11), 0 * t, 0.6 + 0 * t], 1).astype(np.float32)


def test_plan_covers_any_length_and_loops_without_jumps():
    rot, trans = _track()
    plan = replay_plan(350, rot, trans, join=8)
    assert len(plan.a) == 350 and plan.a.max() < 100 and (plan.w >= 0).all() and (plan.w <= 1).all()
    r, t = blend_poses(rot, trans, plan)
    steps = rotation_angle(r[1:].transpose(0, 2, 1) @ r[:-1])
    natural = rotation_angle(rot[1:].transpose(0, 2, 1) @ rot[:-1])
    assert steps.max() < 3 * natural.max()  # no jump at the joins
    assert np.abs(np.diff(t, axis=0)).max() < 3 * np.abs(np.diff(trans, axis=0)).max() + 1e-6


def test_short_output_just_plays_forward():
    rot, trans = _track()
    plan = replay_plan(30, rot, trans, join=8)
    assert plan.a.tolist() == list(range(30)) and (plan.w == 0).all()


def test_loop_length_returns_near_the_start_pose():
    rot, trans = _track(200)
    n = loop_length(rot, trans, 8)
    assert 100 <= n <= 200
    d = rotation_angle(rot[0].T @ rot[n - 1])
    assert d <= np.sort(rotation_angle(rot[0].T[None] @ rot[100:]))[5] + 1e-9


def test_static_plan_holds_the_first_frame():
    p = static_plan(5)
    assert p.a.tolist() == [0] * 5 and (p.w == 0).all()


def test_track_expressions_alone_are_those_of_its_poses():
    from syncanim.model.folder import Replay
    from syncanim.stream.poses import ReplayTrack

    rot, trans = _track()
    expr = np.random.default_rng(0).random((100, 4)).astype(np.float32)
    track = ReplayTrack(Replay(rot, trans, expr, np.zeros((100, 3, 2), np.float32), 100), static=False, join=8)
    idx = np.arange(90, 260)  # past the first loop's join: blended frames
    _, _, want = track.poses(idx)
    assert np.array_equal(track.expressions(idx), want)
    assert not np.array_equal(want, expr[idx % 100])  # the joins blend: not a plain lookup
