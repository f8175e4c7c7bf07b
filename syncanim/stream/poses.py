"""Where each frame of a stream takes its pose, expressions and backdrop from when they are not driven by
the speech: the training clip replayed (looping with smooth joins) or its first frame held, for a stream
of any length (the plan grows as the stream does; a plan's first frames do not depend on its length)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..media.video import iter_frames
from ..model.folder import Replay
from ..motion.syncer import EXPRESSIONS as MOTION_EXPRESSIONS
from .replay import ReplayPlan, blend_poses, replay_plan, static_plan


class ReplayTrack:
    """The replayed (``static``: held) poses and expressions of output frames, planned ahead in doubling spans."""

    def __init__(self, replay: Replay, static: bool, join: int, horizon: int = 1024) -> None:
        self.replay, self.static, self.join = replay, static, join
        self.plan = self._plan(max(1, horizon))

    def _plan(self, n: int) -> ReplayPlan:
        r = self.replay
        return static_plan(n) if self.static else replay_plan(n, r.rotation, r.translation, self.join)

    def covering(self, stop: int) -> ReplayPlan:
        """The plan of at least frames ``0 .. stop - 1``."""
        if stop > len(self.plan.a):
            self.plan = self._plan(max(stop, 2 * len(self.plan.a)))
        return self.plan

    def _plan_of(self, idx: np.ndarray) -> ReplayPlan:
        full = self.covering(int(idx.max()) + 1)
        return ReplayPlan(full.a[idx], full.b[idx], full.w[idx])

    def poses(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Frames ``idx [B]`` -> rotation [B, 3, 3], translation [B, 3], expressions [B, E] float32."""
        plan = self._plan_of(idx)
        rot, trans = blend_poses(self.replay.rotation, self.replay.translation, plan)
        return rot, trans, self._expressions(plan)

    def expressions(self, idx: np.ndarray) -> np.ndarray:
        """Frames ``idx [B]`` -> expressions [B, E] float32 alone (for streams whose pose comes from elsewhere)."""
        return self._expressions(self._plan_of(idx))

    def _expressions(self, plan: ReplayPlan) -> np.ndarray:
        e = self.replay.expressions
        return ((1 - plan.w)[:, None] * e[plan.a] + plan.w[:, None] * e[plan.b]).astype(np.float32)

    def outline(self, k: int) -> np.ndarray:
        """The face polygon [K, 2] (pixels) of frame ``k``'s replayed frame (``--portrait``)."""
        p = self.covering(k + 1)
        o = self.replay.face_outline
        return (1 - p.w[k]) * o[p.a[k]] + p.w[k] * o[p.b[k]]


class PlanFrames:
    """The images of a replay plan from an asset video, decoded forward once per pass."""

    def __init__(self, path: Path, fps: float, plan: ReplayPlan) -> None:
        self.path, self.fps, self.plan = path, fps, plan
        join = int(plan.b[plan.w > 0].max()) + 1 if (plan.w > 0).any() else 0
        self.head = {k: img for k, img in iter_frames(path, fps, 0, join)} if join else {}

    def __iter__(self) -> Iterator[np.ndarray]:
        it: Iterator[tuple[int, np.ndarray]] | None = None
        expect = -1
        for a, b, w in zip(self.plan.a.tolist(), self.plan.b.tolist(), self.plan.w.tolist(), strict=False):
            if it is None or a != expect:
                it = iter_frames(self.path, self.fps, a, None)
            k, img = next(it)
            expect = a + 1
            if w > 0:
                img = ((1 - w) * img.astype(np.float32) + w * self.head[b].astype(np.float32)).round().astype(np.uint8)
            yield img


def track_frames(track: ReplayTrack, path: Path, fps: float, span: int = 1024) -> Iterator[np.ndarray]:
    """The backdrop images of a track's frames ``0, 1, 2, ...`` from the asset video ``path``, without end."""
    start = 0
    while True:
        full = track.covering(start + span)
        sl = slice(start, start + span)
        yield from PlanFrames(path, fps, ReplayPlan(full.a[sl], full.b[sl], full.w[sl]))
        start += span


def expressions_in(values: np.ndarray, order: list[str], fallback: np.ndarray) -> np.ndarray:
    """The syncer's expressions ``values: [T, 3]`` (:data:`syncanim.motion.syncer.EXPRESSIONS`) in the model's
    ``order``; a coefficient the syncer does not drive keeps its column of ``fallback: [T, E]``."""
    out = np.array(fallback, np.float32, copy=True)
    for j, name in enumerate(order):
        if name in MOTION_EXPRESSIONS:
            out[:, j] = values[:, MOTION_EXPRESSIONS.index(name)]
    return out
