"""The avatar of one stream: speech features in, finished frames out, in order.

Per frame ``k`` (all on the run's device):

1. Mouth: the model's mouth predictor over the features of frames ``k - past .. k + future``; frames
   past the newest one known read the newest (as at the end of a clip). ``lookahead`` frames after
   ``k`` must be known before ``k`` is drawn: the predictor's own ``future`` for ``render`` (every frame
   sees its whole window), fewer for ``live`` (lower latency).
2. Motion: head pose, brows and blinks from the model's motion syncer run causally
   (:class:`~syncanim.motion.syncer.MotionStream`, its own ``future`` frames behind), or the training
   clip replayed or held (:class:`~syncanim.stream.poses.ReplayTrack`).
3. Drawing, per call of up to ``frames_per_call`` frames: the torso for the frames' head poses over the
   background plate, or the replayed background frames, and the head over it
   (:mod:`syncanim.stream.draw`) -> ``[H, W, 3] uint8`` on the host.

Frame ``k`` therefore comes out once the features of frame ``k + lag`` have been pushed
(:attr:`AvatarStream.lag`), or at :meth:`AvatarStream.flush`. A frame the caller does not want (``keep``)
is not drawn, but the stream's state moves past it as for any other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..model.base import HeadModel
from ..model.camera import Camera
from ..model.conditioning import FrameBatch
from ..model.folder import ModelInfo, ModelLayout, Replay, load_model, load_replay, load_torso
from ..model.torso import TorsoField
from ..motion.store import load_motion
from ..motion.syncer import Motion, MotionSyncer
from .draw import render_batch_uint8, render_person
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

    @property
    def layout(self) -> ModelLayout:
        return ModelLayout(self.root)


def load_avatar(root: str | Path, device: torch.device, *, syncer: bool = True, torso: bool = True) -> Avatar:
    """The model in ``root`` on ``device``; its motion syncer and torso unless turned off (or absent)."""
    model, info = load_model(root, device)
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


@dataclass
class Frame:
    """Frame ``index`` of a stream: ``image [H, W, 3] uint8`` (None: not drawn, ``keep`` said so), what it was
    drawn over without a torso (``backdrop``), and the milliseconds of the stages it waited for: ``motion``
    (the push that completed it), ``conditioning`` and ``render`` (the call that drew it, with its other frames)."""

    index: int
    image: np.ndarray | None
    backdrop: np.ndarray | None = None
    ms: dict[str, float] = field(default_factory=dict)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class AvatarStream:
    """One stream of one :class:`Avatar` (module doc). Not thread-safe: one caller pushes."""

    def __init__(self, avatar: Avatar, settings: StreamSettings) -> None:
        a, s = avatar, settings
        if s.pose not in ("audio", "replay", "static"):
            raise ConfigError(f"pose must be audio, replay or static, got {s.pose!r}")
        self.a, self.s = a, s
        pred = a.model.predictor
        self.past = pred.past
        self.mouth_lag = pred.future if s.lookahead is None else max(0, min(s.lookahead, pred.future))
        self.motion = a.syncer.stream(s.seed) if a.syncer is not None and s.pose in ("audio", "static") else None
        self.lag = max(self.mouth_lag, a.syncer.arch.future if self.motion is not None else 0)
        self.track = ReplayTrack(a.replay, s.pose == "static", s.loop_join)
        self.torso = None if s.portrait else a.torso
        source = a.layout.frames_video if s.portrait else a.layout.backgrounds_video
        self.backdrops: Iterator[np.ndarray] | None = \
            track_frames(self.track, source, a.info.fps) if self.torso is None else None
        self.ring: torch.Tensor | None = None  # features of frames [ring0, known)
        self.ring0 = 0
        self.known = 0  # frames whose features have been pushed
        self.done = 0  # frames given out
        self.moved: list[Motion] = []  # motion of frames [done, done + moved frames)
        self.moved_n = 0

    @property
    def size(self) -> int:
        return self.a.info.image_size

    def push(self, block: FeatureBlock, keep: Callable[[int], bool] | None = None) -> list[Frame]:
        """The features of the next frames (``block.first`` must be the next frame) -> the frames now complete."""
        if len(block) == 0:
            return []
        if block.first != self.known:
            raise ValueError(f"AvatarStream.push: expected frame {self.known} next, got {block.first}")
        t0 = time.perf_counter()
        f = torch.from_numpy(np.ascontiguousarray(block.features, np.float32)).to(self.a.device)  # [n, P, F]
        self.ring = f if self.ring is None else torch.cat([self.ring, f])
        self.known += len(block)
        if self.motion is not None:
            self._add_motion(self.motion.push(f, block.rms))
        ms = {"motion": (time.perf_counter() - t0) * 1e3}
        stop = self.known - self.mouth_lag
        if self.motion is not None:
            stop = min(stop, self.done + self.moved_n)
        return self._draw(stop, keep, ms)

    def flush(self, keep: Callable[[int], bool] | None = None) -> list[Frame]:
        """The end of the speech: the frames still held back for their look-ahead."""
        if self.motion is not None:
            self._add_motion(self.motion.flush())
        return self._draw(self.known, keep, {})

    def _add_motion(self, m: Motion) -> None:
        if len(m):
            self.moved.append(m)
            self.moved_n += len(m)

    def _take_motion(self, n: int) -> Motion:
        m = Motion.concat(self.moved)
        self.moved = [Motion(m.rotation[n:], m.translation[n:], m.expressions[n:])] if len(m) > n else []
        self.moved_n = len(m) - n
        return Motion(m.rotation[:n], m.translation[:n], m.expressions[:n])

    def _draw(self, stop: int, keep: Callable[[int], bool] | None, ms: dict[str, float]) -> list[Frame]:
        out: list[Frame] = []
        while self.done < stop:
            k0, k1 = self.done, min(stop, self.done + self.s.frames_per_call)
            out.extend(self._call(np.arange(k0, k1), keep, ms))
            self.done = k1
        self._trim()
        return out

    def _call(self, idx: np.ndarray, keep: Callable[[int], bool] | None, ms: dict[str, float]) -> list[Frame]:
        a, info = self.a, self.a.info
        t0 = time.perf_counter()
        rot, trans, expr = self.track.poses(idx)
        if self.motion is not None:
            m = self._take_motion(len(idx))
            expr = expressions_in(m.expressions, info.expressions, expr)
            if self.s.pose == "audio":
                rot, trans = m.rotation, m.translation
        backdrops = [next(self.backdrops) for _ in idx] if self.backdrops is not None else [None] * len(idx)
        wanted = np.array([keep is None or bool(keep(int(k))) for k in idx])
        frames = [Frame(int(k), None, backdrops[j], dict(ms)) for j, k in enumerate(idx)]
        if not wanted.any():
            return frames
        sel = idx[wanted]
        assert self.ring is not None
        lo = max(0, int(sel[0]) - self.past)  # the window's first frame (clamped at the clip's start)
        feats = self.ring[lo - self.ring0:self.known - self.ring0]  # [W, P, F]: through the newest frame
        with torch.no_grad():
            cond = a.model.condition(FrameBatch(torch.from_numpy(np.ascontiguousarray(expr[wanted])).to(a.device),
                                                features=feats, frames=torch.from_numpy(sel - lo).to(a.device)))
        _sync(a.device)
        t1 = time.perf_counter()
        camera = Camera.from_numpy(rot[wanted], trans[wanted], info.focal, info.cx, info.cy, info.image_size, a.device)
        if self.torso is not None:
            images = render_person(a.model, self.torso, camera, cond, precision=self.s.precision,
                                   chunk=self.s.chunk_rays)
        else:
            images = render_batch_uint8(a.model, camera, cond, np.stack([b for b, w in zip(backdrops, wanted, strict=True)
                                                                         if w]),
                                        precision=self.s.precision, chunk=self.s.chunk_rays)
        t2 = time.perf_counter()
        for j, i in enumerate(np.flatnonzero(wanted)):
            frames[i].image = images[j]
            frames[i].ms.update(conditioning=(t1 - t0) * 1e3, render=(t2 - t1) * 1e3)
        return frames

    def _trim(self) -> None:
        """Drop features no frame to come reads (those before ``done - past``)."""
        if self.ring is None:
            return
        cut = max(0, self.done - self.past) - self.ring0
        if cut > 0:
            self.ring = self.ring[cut:]
            self.ring0 += cut
