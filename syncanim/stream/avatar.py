"""The avatar of one stream: speech features in, finished frames out, in order.

Per frame ``k`` (all on the run's device):

1. Mouth: the model's mouth predictor over the features of frames ``k - past .. k + future``; frames
   past the newest one known read the newest (as at the end of a clip). ``lookahead`` frames after
   ``k`` must be known before ``k`` is drawn: the predictor's own ``future`` for ``render`` (every frame
   sees its whole window), fewer for ``live`` (lower latency).
2. Motion: head pose, brows and blinks from the model's motion syncer run causally
   (:class:`~syncanim.motion.syncer.MotionStream`, its own ``future`` frames behind), or the training
   clip replayed or held (:class:`~syncanim.stream.poses.ReplayTrack`). With a ``lookahead`` shorter
   than the syncer's ``future``, frame ``k`` takes the motion of frame ``k - shift`` (``shift`` = the
   difference), its head pose carried on at its last velocity for ``shift`` frames: the motion is
   low-passed at a few hertz, so one or two frames (40-80 ms) of extrapolation are invisible, and blinks
   and brows come ``shift`` frames late.
3. Drawing, per call of up to ``frames_per_call`` frames: the torso for the frames' head poses over the
   background plate, or the replayed background frames, and the head over it
   (:mod:`syncanim.stream.draw`) -> ``[H, W, 3] uint8`` on the host.

Frame ``k`` therefore comes out once the features of frame ``k + lag`` have been pushed
(:attr:`AvatarStream.lag`), or at :meth:`AvatarStream.flush`. Steps 1-2 (:meth:`AvatarStream.prepare`) and
step 3 (:meth:`AvatarStream.draw`) may run on two threads, one call's drawing beside the next call's
preparation. A frame the caller does not want (``keep``) is not drawn, but the stream's state moves
past it as for any other. Several streams of one avatar prepare together (:func:`prepare_calls`: one mouth
predictor call, one motion-net run and one conditioning call for all their frames) and draw together
(:func:`draw_calls`; :func:`launch_calls` queues the drawing on the device and returns, so that the host can
prepare the next calls, on another CUDA stream, while the device draws).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..device import to_device
from ..errors import ConfigError
from ..geometry import axis_angle_to_matrix, matrix_to_axis_angle
from ..model.base import HeadModel
from ..model.camera import Camera
from ..model.conditioning import Conditioning, FrameBatch
from ..model.folder import ModelInfo, ModelLayout, Replay, load_model, load_replay, load_torso
from ..model.torso import TorsoField
from ..motion.mouth_level import apply_levels, stream_level
from ..motion.mouth_support import MouthSupport, apply_supports, mouth_support
from ..motion.store import load_motion
from ..motion.syncer import Motion, MotionSyncer, push_streams
from .draw import render_batch_uint8, render_person
from .graphs import PendingDraw, StaticDraw
from .poses import ReplayTrack, expressions_in, track_frames
from .speech import FeatureBlock

log = logging.getLogger(__name__)


@dataclass
class Avatar:
    """A trained model with what a stream of it needs, loaded on one device."""

    root: Path
    model: HeadModel
    info: ModelInfo
    replay: Replay
    syncer: MotionSyncer | None
    torso: TorsoField | None
    device: torch.device
    drawers: dict[tuple, StaticDraw] = field(default_factory=dict, repr=False)  # by (precision, torso used)
    supports: dict[float, MouthSupport | None] = field(default_factory=dict, repr=False)  # by share

    @property
    def layout(self) -> ModelLayout:
        return ModelLayout(self.root)

    def mouth_support(self, share: float) -> MouthSupport | None:
        """The model's :class:`~syncanim.motion.mouth_support.MouthSupport` for ``share`` (None: off, or a model
        trained without it); one per value, shared by every stream of the avatar."""
        if share not in self.supports:
            self.supports[share] = mouth_support(self.info.mouth, share, self.device)
        return self.supports[share]

    def static_draw(self, precision: str, torso: bool) -> StaticDraw:
        """The avatar's static-shape drawer (CUDA graphs on CUDA) for ``precision``, over its torso or not;
        one per kind, shared by every stream of the avatar."""
        key = (precision, torso)
        if key not in self.drawers:
            i = self.info
            clip = Camera.from_numpy(self.replay.rotation, self.replay.translation, i.focal, i.cx, i.cy, i.image_size,
                                     self.device)
            with torch.no_grad():  # the rendering's occupied cells
                rects = self.model.head_rects(clip)
            self.drawers[key] = StaticDraw(self.model, self.torso if torso else None, (i.focal, i.cx, i.cy),
                                           i.image_size, precision, rects,
                                           capture=self.device.type == "cuda")
        return self.drawers[key]


def load_avatar(root: str | Path, device: torch.device, *, syncer: bool = True, torso: bool = True,
                render_settings: dict[str, Any] | None = None) -> Avatar:
    """The model in ``root`` on ``device`` (``render_settings`` over its own: :func:`~syncanim.model.folder.load_model`);
    its motion syncer and torso unless turned off (or absent)."""
    model, info = load_model(root, device, render_settings=render_settings)
    layout = ModelLayout(root)
    replay = load_replay(layout)
    return Avatar(Path(root), model, info, replay, load_motion(layout, info, device) if syncer else None,
                  load_torso(layout, info, device) if torso else None, device)


@dataclass(frozen=True)
class StreamSettings:
    """How a stream draws its frames (from ``[render]`` or ``[live]``)."""

    pose: str = "audio"  # audio | replay | static (see RenderConfig.pose)
    seed: int = 0
    loop_join: int = 12
    frames_per_call: int = 4
    chunk_rays: int = 1 << 16
    precision: str = "fp32"  # resolved
    lookahead: int | None = None  # mouth look-ahead in frames; None: the predictor's own
    portrait: bool = False  # draw over the original frames (replayed), for a paste afterwards
    static: bool = False  # draw with static shapes (syncanim.stream.graphs), replayed from CUDA graphs on CUDA
    mouth_level: float = 1.6  # the most the mouth's level is raised to the subject's own (syncanim.motion.mouth_level); 1: off
    mouth_support: float = 0.1  # how common a drawn mouth shape must be (syncanim.motion.mouth_support); 0: off


@dataclass
class Frame:
    """Frame ``index`` of a stream: ``image [H, W, 3] uint8`` (None: not drawn, ``keep`` said so), what it was
    drawn over without a torso (``backdrop``), and the milliseconds of the stages it waited for: ``motion``
    (the push that completed it), ``conditioning`` and ``render`` (the call that drew it, with its other frames)."""

    index: int
    image: np.ndarray | None
    backdrop: np.ndarray | None = None
    ms: dict[str, float] = field(default_factory=dict)


@dataclass
class Call:
    """What one call draws: frames ``idx [B]``, their head poses (rotation [B, 3, 3], translation [B, 3]),
    their conditioning (on the device), what they are drawn over without a torso, the stages' ms so far."""

    idx: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    cond: Conditioning
    backdrops: list[np.ndarray | None]
    ms: dict[str, float]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def carry_on(prev: Motion, last: Motion, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Head poses ``frames`` frames after ``last`` (one frame each), moving on at the velocity from ``prev`` to
    ``last``: rotation [B, 3, 3], translation [B, 3] (pure)."""
    step = matrix_to_axis_angle(np.swapaxes(prev.rotation, -1, -2) @ last.rotation)  # [B, 3]
    rot = last.rotation @ axis_angle_to_matrix(frames * step)
    return rot.astype(np.float32), (last.translation + frames * (last.translation - prev.translation)).astype(np.float32)


class AvatarStream:
    """One stream of one :class:`Avatar` (module doc). One thread prepares, one (the same or another) draws."""

    def __init__(self, avatar: Avatar, settings: StreamSettings, backdrops: Iterator[np.ndarray] | None = None) -> None:
        """``backdrops``: what frames without a torso are drawn over, frame after frame (default: the replayed
        training frames' backgrounds, or their original frames for ``portrait``)."""
        a, s = avatar, settings
        if s.pose not in ("audio", "replay", "static"):
            raise ConfigError(f"pose must be audio, replay or static, got {s.pose!r}")
        self.a, self.s = a, s
        pred = a.model.predictor
        self.past = pred.past
        self.mouth_lag = pred.future if s.lookahead is None else max(0, min(s.lookahead, pred.future))
        self.motion = a.syncer.stream(s.seed) if a.syncer is not None and s.pose in ("audio", "static") else None
        future = a.syncer.arch.future if self.motion is not None else 0
        self.shift = max(0, future - self.mouth_lag)  # frames the motion is carried on (module doc, step 2)
        self.lag = self.mouth_lag if self.motion is None else max(self.mouth_lag, future - self.shift)
        self.track = ReplayTrack(a.replay, s.pose == "static", s.loop_join)
        self.torso = None if s.portrait else a.torso
        source = a.layout.frames_video if s.portrait else a.layout.backgrounds_video
        self.backdrops: Iterator[np.ndarray] | None = None
        if self.torso is None:
            self.backdrops = backdrops if backdrops is not None else track_frames(self.track, source, a.info.fps)
        self.ring: torch.Tensor | None = None  # features of frames [ring0, known)
        self.loud = np.zeros(0)  # their loudness
        self.level = stream_level(a.info.mouth, a.info.fps, s.mouth_level)
        self.support = a.mouth_support(s.mouth_support)
        self.ring0 = 0
        self.known = 0  # frames whose features have been pushed
        self.done = 0  # frames prepared
        self.moved: Motion | None = None  # the syncer's motion of frames [moved0, moved0 + len)
        self.moved0 = 0

    def push(self, block: FeatureBlock, keep: Callable[[int], bool] | None = None) -> list[Frame]:
        """The features of the next frames (``block.first`` must be the next frame) -> the frames now complete."""
        return [f for c in self.prepare(block) for f in self.draw(c, keep)]

    def flush(self, keep: Callable[[int], bool] | None = None) -> list[Frame]:
        """The end of the speech: the frames still held back for their look-ahead."""
        return [f for c in self.finish() for f in self.draw(c, keep)]

    def prepare(self, block: FeatureBlock) -> list[Call]:
        """Steps 1-2 for the frames ``block`` completes: their calls, ready to draw, in order."""
        return prepare_calls([(self, block)])[0]

    def finish(self) -> list[Call]:
        """The end of the speech: the calls of the frames still held back for their look-ahead."""
        if self.motion is not None:
            self._add_motion(self.motion.flush())
        return _conditioned([self._plan(self.known, {})])[0]

    def _take(self, block: FeatureBlock, f: torch.Tensor | None = None) -> torch.Tensor | None:
        """Take in the features of the next frames (``f``: them on the device already) -> them on the device
        [n, P, F] (None: there were none)."""
        if len(block) == 0:
            return None
        if block.first != self.known:
            raise ValueError(f"AvatarStream.push: expected frame {self.known} next, got {block.first}")
        if f is None:
            f = to_device(np.asarray(block.features, np.float32), self.a.device)  # [n, P, F]
        self.ring = f if self.ring is None else torch.cat([self.ring, f])
        self.loud = np.concatenate([self.loud, np.asarray(block.rms, np.float64).reshape(-1)])
        self.known += len(block)
        return f

    def _stop(self) -> int:
        """The frame the calls may now reach (exclusive): the mouth's look-ahead and the motion known."""
        stop = self.known - self.mouth_lag
        if self.motion is not None:
            stop = min(stop, self.moved0 + (len(self.moved) if self.moved is not None else 0) + self.shift)
        return stop

    def _add_motion(self, m: Motion) -> None:
        if len(m):
            self.moved = m if self.moved is None else Motion.concat([self.moved, m])

    def _motion_of(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The syncer's rotation [B, 3, 3], translation [B, 3] and expressions [B, 3] of frames ``idx``."""
        m, j = self.moved, idx - self.shift
        if m is None or len(m) == 0:  # the very first frames of a shifted stream: the syncer's rest pose
            rest = self.a.syncer.to_motion(np.zeros((len(idx), 7)), np.zeros((len(idx), 2)))  # type: ignore[union-attr]
            return rest.rotation, rest.translation, rest.expressions
        r = np.clip(j - self.moved0, 0, len(m) - 1)  # rows of the frames the motion comes from
        rot, trans, expr = m.rotation[r], m.translation[r], m.expressions[r]
        if self.shift and len(m) > 1:
            prev = Motion(m.rotation[np.maximum(r - 1, 0)], m.translation[np.maximum(r - 1, 0)], expr)
            rot, trans = carry_on(prev, Motion(rot, trans, expr), self.shift)
        return rot, trans, expr

    def _plan(self, stop: int, ms: dict[str, float]) -> list[_Planned]:
        """The calls of the frames up to ``stop`` (exclusive), all but their codes and conditioning."""
        out: list[_Planned] = []
        while self.done < stop:
            k0, k1 = self.done, min(stop, self.done + self.s.frames_per_call)
            out.append(self._plan_call(np.arange(k0, k1), ms))
            self.done = k1
        self._trim()
        return out

    def _plan_call(self, idx: np.ndarray, ms: dict[str, float]) -> _Planned:
        a, info = self.a, self.a.info
        t0 = time.perf_counter()
        if self.motion is not None and self.s.pose == "audio":  # the pose from the speech: the track's expressions only
            rot, trans, mexpr = self._motion_of(idx)
            expr = expressions_in(mexpr, info.expressions, self.track.expressions(idx))
        else:
            rot, trans, expr = self.track.poses(idx)
            if self.motion is not None:
                expr = expressions_in(self._motion_of(idx)[2], info.expressions, expr)
        backdrops = [next(self.backdrops) for _ in idx] if self.backdrops is not None else [None] * len(idx)
        assert self.ring is not None
        lo = max(0, int(idx[0]) - self.past)  # the window's first frame (clamped at the clip's start)
        feats = self.ring[lo - self.ring0:self.known - self.ring0]  # [W, P, F]: through the newest frame
        # idx is consecutive: its rows in feats made on the device (no copy from the host to wait for)
        rows = torch.arange(int(idx[0]) - lo, int(idx[-1]) + 1 - lo, device=a.device)
        windows = a.model.predictor.windows(feats, rows)  # [B, W, P, F]
        return _Planned(self, idx, rot, trans, backdrops, {**ms, "conditioning": (time.perf_counter() - t0) * 1e3},
                        np.ascontiguousarray(expr, np.float32), windows, self.loud[idx - self.ring0])

    def draw(self, call: Call, keep: Callable[[int], bool] | None = None) -> list[Frame]:
        """Step 3: the frames of ``call`` (those ``keep`` wants drawn; all without it)."""
        return draw_calls([(self, call)], [keep])[0]

    def _trim(self) -> None:
        """Drop features no frame to come reads (those before ``done - past``), and motion no frame to come takes
        (keeping one before, for the velocity)."""
        if self.ring is not None:
            cut = max(0, self.done - self.past) - self.ring0
            if cut > 0:
                self.ring = self.ring[cut:]
                self.loud = self.loud[cut:]
                self.ring0 += cut
        if self.moved is not None:
            cut = self.done - self.shift - 1 - self.moved0
            if cut > 0 and cut < len(self.moved):
                m = self.moved
                self.moved = Motion(m.rotation[cut:], m.translation[cut:], m.expressions[cut:])
                self.moved0 += cut


@dataclass(frozen=True)
class _Planned:
    """A :class:`Call` of ``stream`` but for its conditioning (its fields of the same names), with what the
    conditioning is made of: its frames' expressions [B, E], the features their codes read [B, W, P, F] and
    their loudness [B]."""

    stream: AvatarStream
    idx: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    backdrops: list[np.ndarray | None]
    ms: dict[str, float]
    expressions: np.ndarray
    windows: torch.Tensor
    loud: np.ndarray


def _conditioned(plans: list[list[_Planned]]) -> list[list[Call]]:
    """The calls of several streams' plans (of one avatar) with their codes and conditioning, from one mouth
    predictor call and one conditioning call for all their frames; each stream's mouth level in between."""
    flat = [p for ps in plans for p in ps]
    if not flat:
        return [[] for _ in plans]
    t0 = time.perf_counter()
    a = flat[0].stream.a
    with torch.no_grad():
        codes = a.model.predictor.forward_runs(torch.cat([p.windows for p in flat]))[:, 0]  # [sum B, C]
        # in stream order: each stream's level follows its frames in turn
        codes = apply_levels([(p.stream.level, len(p.idx), p.loud) for p in flat], codes)
        codes = apply_supports([(p.stream.support, len(p.idx)) for p in flat], codes)
        expr = to_device(np.concatenate([p.expressions for p in flat]), a.device)
        cond = a.model.condition(FrameBatch(expr, codes=codes))
    ms = (time.perf_counter() - t0) * 1e3
    calls, row = [], 0
    for p in flat:
        b = len(p.idx)
        calls.append(Call(p.idx, p.rotation, p.translation, cond[row:row + b], p.backdrops,
                          {**p.ms, "conditioning": p.ms["conditioning"] + ms}))
        row += b
    each = iter(calls)
    return [[next(each) for _ in ps] for ps in plans]


def prepare_calls(blocks: list[tuple[AvatarStream, FeatureBlock]]) -> list[list[Call]]:
    """Steps 1-2 for several streams of one avatar at once, each with the features of its next frames: the calls
    each can now draw, in order (as :meth:`AvatarStream.prepare` of each), with one motion-net run
    (:func:`~syncanim.motion.syncer.push_streams`), one mouth predictor call and one conditioning call for all
    their frames. Their ``motion`` and ``conditioning`` ms are the joint calls'."""
    if any(st.a is not blocks[0][0].a for st, _ in blocks):
        raise ValueError("prepare_calls: the streams must share one avatar")
    t0 = time.perf_counter()
    sizes = [len(block) for _, block in blocks]
    host = [np.asarray(block.features, np.float32) for _, block in blocks if len(block)]
    # every stream's features in one copy to the device
    on_device = iter(to_device(np.concatenate(host), blocks[0][0].a.device).split([n for n in sizes if n])
                     if host else ())
    fed = [st._take(block, next(on_device) if n else None) for (st, block), n in zip(blocks, sizes, strict=True)]
    moving = [(st, f, block.rms) for (st, block), f in zip(blocks, fed, strict=True)
              if f is not None and st.motion is not None]
    for (st, _, _), m in zip(moving, push_streams([(st.motion, f, r) for st, f, r in moving]), strict=True):
        st._add_motion(m)
    ms = {"motion": (time.perf_counter() - t0) * 1e3}
    return _conditioned([st._plan(st.done if f is None else st._stop(), ms)
                         for (st, _), f in zip(blocks, fed, strict=True)])


def draw_calls(calls: list[tuple[AvatarStream, Call]],
               keeps: list[Callable[[int], bool] | None] | None = None) -> list[list[Frame]]:
    """Step 3 for calls of several streams of one avatar at once: one render call for all their frames (the
    frames of many viewers' streams share the GPU's work) -> the frames of each call, in order.

    ``keeps``: per call, which of its frames to draw (None: all). The streams must share the avatar and draw
    alike (all with the torso, or all over backdrops); their frames' ``render`` ms is the joint call's.
    """
    return launch_calls(calls, keeps).frames()


class PendingCalls:
    """Calls whose frames :func:`launch_calls` queued on the device: :meth:`frames` waits for them."""

    def __init__(self, frames: list[list[Frame]], wanted: list[np.ndarray], drawn: PendingDraw | np.ndarray | None,
                 start: float) -> None:
        self._frames, self._wanted, self._drawn, self._start = frames, wanted, drawn, start
        #: the CUDA event recorded once the frames are on the host (None: drawn without one, on the host already)
        self.landed: torch.cuda.Event | None = drawn.done if isinstance(drawn, PendingDraw) else None
        self._done = drawn is None

    def frames(self) -> list[list[Frame]]:
        """The frames of each call, in order (their ``render`` ms: from the launch to now)."""
        if self._done:
            return self._frames
        images = self._drawn.frames() if isinstance(self._drawn, PendingDraw) else self._drawn
        ms = (time.perf_counter() - self._start) * 1e3
        row = 0
        for out, w in zip(self._frames, self._wanted, strict=True):
            for i in np.flatnonzero(w):
                out[i].image = images[row]
                out[i].ms["render"] = ms
                row += 1
        self._done, self._drawn = True, None
        return self._frames


def launch_calls(calls: list[tuple[AvatarStream, Call]],
                 keeps: list[Callable[[int], bool] | None] | None = None) -> PendingCalls:
    """:func:`draw_calls` without waiting where the streams draw with static shapes (:meth:`StaticDraw.launch`):
    the render call is queued on the device and the host is free (e.g. to prepare the next calls on another CUDA
    stream) until :meth:`PendingCalls.frames`. Otherwise the frames are drawn here."""
    if not calls:
        return PendingCalls([], [], None, 0.0)
    first = calls[0][0]
    a, s = first.a, first.s
    for st, _ in calls:
        if st.a is not a or (st.torso is None) != (first.torso is None) or st.s.precision != s.precision:
            raise ValueError("draw_calls: the streams must share one avatar, its torso use and precision")
    keeps = keeps or [None] * len(calls)
    frames, wanted = [], []
    for (_, call), keep in zip(calls, keeps, strict=True):
        wanted.append(np.array([keep is None or bool(keep(int(k))) for k in call.idx], bool))
        frames.append([Frame(int(k), None, call.backdrops[j], dict(call.ms)) for j, k in enumerate(call.idx)])
    if not any(w.any() for w in wanted):
        return PendingCalls(frames, wanted, None, 0.0)
    info = a.info
    t1 = time.perf_counter()
    picked = [(call, w) for (_, call), w in zip(calls, wanted, strict=True) if w.any()]
    camera = Camera.from_numpy(np.concatenate([c.rotation[w] for c, w in picked]),
                               np.concatenate([c.translation[w] for c, w in picked]), info.focal, info.cx, info.cy,
                               info.image_size, a.device)
    cond = Conditioning.cat([c.cond if w.all() else c.cond[to_device(np.flatnonzero(w), a.device)]
                             for c, w in picked])
    under = None
    if first.torso is None:
        under = np.stack([b for c, w in picked for b, keep in zip(c.backdrops, w, strict=True) if keep])
    if s.static:
        drawn = a.static_draw(s.precision, first.torso is not None).launch(camera, cond, under)
    elif first.torso is not None:
        drawn = render_person(a.model, first.torso, camera, cond, precision=s.precision, chunk=s.chunk_rays)
    else:
        drawn = render_batch_uint8(a.model, camera, cond, under, precision=s.precision, chunk=s.chunk_rays)
    return PendingCalls(frames, wanted, drawn, t1)
