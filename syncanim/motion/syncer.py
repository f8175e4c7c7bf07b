"""The motion syncer: speech -> head rotation and translation, brow raises and blinks, causally.

Per frame ``t`` (all in the subject's units, :func:`motion_basis`: the motion channels, the head rotation as
a rotation vector about the clip's mean rotation (3), the translation about its mean (3) and the brow raise (1),
centred; the six pose channels turned into their principal components on the clip, each of unit spread, the brow
divided by its spread):

1. ``m[t]``: a window network (the architecture of :class:`syncanim.model.mouth_net.MouthPredictor`)
   reads the speech features of frames ``t - past .. t + future``: the motion the speech predicts.
2. ``r[t]``: an AR(2) process per channel with the dynamics of the subject's own motion
   (:func:`syncanim.motion.filters.fit_ar2`), driven by innovations that are partly (``noise_share``
   of their variance) a random stream, seeded by the stream's seed and its first frame of speech, and
   for the rest a fixed random projection of the change of the speech features from the frame
   before: the motion speech does not predict, varied by the speech itself (different speech,
   different motion), and only the random part in silence (a quieter, still living head).
3. ``z[t] = lowpass(m[t] + residual * r[t]) * gain``: a critically damped low-pass
   (:func:`syncanim.motion.filters.lowpass`) makes the motion smooth by construction; ``gain``
   (calibrated at training) gives it the subject's spread.
4. Blinks from :class:`syncanim.motion.blinks.BlinkState`, which hears whether frame ``t`` has speech
   (:class:`SpeechGate`).

Steps 1-3 run on each of the seven units on its own. In the pose's principal components, motion made unit by
unit has the clip's covariance, not only its spreads: a head that turns and shifts together, as one pivoting at the
neck does, keeps doing so (made channel by channel, the rotation and translation of new speech combined into poses
the clip never shows, and the head was drawn at poses it was not trained at).

Frame ``t`` is known once the features of frame ``t + future`` are: :class:`MotionStream` runs on a
live stream chunk by chunk and gives the frames of a whole file exactly as one call does
(:func:`generate_motion`).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..device import HostCopies
from ..geometry import axis_angle_to_matrix, matrix_to_axis_angle
from ..model.mouth_net import MouthPredictor
from .blinks import BlinkModel, BlinkState
from .filters import lowpass_alpha

#: the expression coefficients the syncer drives, in this order
EXPRESSIONS = ("blink_left", "blink_right", "brow_raise")
CHANNELS = 7  # rotation (3), translation (3), brow raise (1)


def motion_channels(mean_rotation: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                    brow: np.ndarray | None = None) -> np.ndarray:
    """Motion channels of N frames: the rotation vector of ``rotation [N, 3, 3]`` about ``mean_rotation [3, 3]``,
    ``translation [N, 3]``, and ``brow [N]`` when given -> ``[N, 7]`` (or ``[N, 6]``) float64."""
    rel = matrix_to_axis_angle(np.asarray(mean_rotation, np.float64).T[None] @ np.asarray(rotation, np.float64))
    parts = [rel, np.asarray(translation, np.float64)]
    if brow is not None:
        parts.append(np.asarray(brow, np.float64)[:, None])
    return np.concatenate(parts, 1)


def motion_basis(x: np.ndarray, pose: int = 6, floor: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """The subject's units of motion channels ``x [N, D]`` (module doc) -> ``(mean [D], basis [D, D])``: a frame's
    channels are ``mean + u @ basis``, its units ``u = (x - mean) @ inv(basis)``, which over the N frames are
    uncorrelated with unit variance in the first ``pose`` (the principal components of the standardised pose
    channels, by decreasing variance, each signed so its largest loading is positive; the variance of none below
    ``floor`` of the channels') and each later channel on its own (float64, pure)."""
    x = np.asarray(x, np.float64)
    mean = x.mean(0)
    scale = np.maximum(x.std(0), 1e-9)
    basis = np.diag(scale)
    p = min(pose, x.shape[1])
    if p > 1 and len(x) > 1:
        z = (x[:, :p] - mean[:p]) / scale[:p]
        var, vec = np.linalg.eigh(np.cov(z.T, bias=True))  # ascending
        var, vec = np.maximum(var[::-1], floor), vec[:, ::-1]
        vec *= np.sign(vec[np.abs(vec).argmax(0), np.arange(p)])
        basis[:p, :p] = (np.sqrt(var)[:, None] * vec.T) * scale[:p]  # row k: component k in channel units
    return mean, basis


@dataclass(frozen=True)
class MotionArch:
    """The syncer's shape and fixed settings (kept in model.json)."""

    per_frame: int
    feat_dim: int
    fps: float
    hidden: int = 64
    layers: int = 2
    past: int = 12
    future: int = 2
    cutoff_hz: float = 2.5
    noise_share: float = 0.3


@dataclass(frozen=True)
class Motion:
    """T frames of motion: rotation [T, 3, 3], translation [T, 3], expressions [T, 3] (:data:`EXPRESSIONS`)."""

    rotation: np.ndarray
    translation: np.ndarray
    expressions: np.ndarray

    def __len__(self) -> int:
        return len(self.rotation)

    @staticmethod
    def concat(parts: list[Motion]) -> Motion:
        return Motion(*(np.concatenate([getattr(p, k) for p in parts]) if parts else np.zeros((0, *s), np.float32)
                        for k, s in (("rotation", (3, 3)), ("translation", (3,)), ("expressions", (3,)))))


class MotionSyncer(nn.Module):
    """The fitted syncer (module doc). Buffers (all float32):

    mean_rotation [3, 3]; mean [7] / basis [7, 7]: the subject's units (:func:`motion_basis`; the rotation's mean is 0);
    ar [7, 2] / ar_noise [7]: the residual's AR(2); residual [7]: its weight; gain [7];
    projection [P*F, 7]: the speech part of the innovations, and proj_scale [7] its spread.
    """

    def __init__(self, arch: MotionArch, blinks: BlinkModel) -> None:
        super().__init__()
        self.arch, self.blinks = arch, blinks
        self.net = MouthPredictor(arch.per_frame, arch.feat_dim, CHANNELS, hidden=arch.hidden, layers=arch.layers,
                                  past=arch.past, future=arch.future)
        fin = arch.per_frame * arch.feat_dim
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("mean_rotation", torch.eye(3))
        self.register_buffer("mean", torch.zeros(CHANNELS))
        self.register_buffer("basis", torch.eye(CHANNELS))
        self.register_buffer("ar", torch.zeros(CHANNELS, 2))
        self.register_buffer("ar_noise", torch.ones(CHANNELS))
        self.register_buffer("residual", torch.ones(CHANNELS))
        self.register_buffer("gain", torch.ones(CHANNELS))
        self.register_buffer("projection", torch.randn(fin, CHANNELS, generator=gen) / fin ** 0.5)
        self.register_buffer("proj_scale", torch.ones(CHANNELS))
        self._host = HostCopies()  # the denormalisation, read back once per change

    def project(self, features: torch.Tensor) -> np.ndarray:
        """The speech innovations' source: features ``[T, P, F]`` -> ``[T, 7]`` float64 (normalised with the
        network's feature statistics, projected)."""
        return self._projected(features).double().cpu().numpy()

    def _projected(self, features: torch.Tensor) -> torch.Tensor:
        """:meth:`project` on the device: features ``[..., P, F]`` -> ``[..., 7]`` float32."""
        z = (features.flatten(-2).float() - self.net.feat_mean) / self.net.feat_std
        return z @ self.projection

    @torch.no_grad()
    def run_net(self, runs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """The net (in eval mode) over runs of consecutive frames' features ``[S, L, P, F]``, and the projection
        (:meth:`project`) of the frames it gives out (``past .. L - future - 1``) -> both ``[S, L - past - future,
        7]`` float64, read back together (one wait for the device)."""
        if self.net.training:
            self.net.eval()
        a = self.arch
        out = self.net.forward_runs(runs)  # [S, n, 7]
        n = out.shape[1]
        both = torch.cat([out.float(), self._projected(runs[:, a.past:a.past + n])], -1).double().cpu().numpy()
        return both[..., :7], both[..., 7:]

    def stream(self, seed: int = 0) -> MotionStream:
        return MotionStream(self, seed)

    def to_motion(self, z: np.ndarray, closure: np.ndarray) -> Motion:
        """Motion of ``z: [T, 7]`` in the subject's units (:func:`motion_basis`) and eye closure ``[T, 2]``."""
        mean, basis, mean_rotation = (a.astype(np.float64) for a in self._host.of(self.mean, self.basis,
                                                                                 self.mean_rotation))
        x = mean + z @ basis  # [T, 7]
        rot = mean_rotation @ axis_angle_to_matrix(x[:, :3])
        expr = np.concatenate([closure, x[:, 6:7]], 1)
        return Motion(rot.astype(np.float32), x[:, 3:6].astype(np.float32), expr.astype(np.float32))


def speech_hash(features: torch.Tensor) -> int:
    """A 32-bit number from one frame's features ``[P, F]`` (rounded to 0.01, so tiny numeric differences rarely change it)."""
    q = np.round(features.float().cpu().numpy().astype(np.float64), 2).astype(np.float16)
    return zlib.crc32(q.tobytes())


class SpeechGate:
    """Causal speech detection on per-frame loudness: speech when a frame's RMS is above ``ratio`` of the
    loud level heard so far (a peak follower that decays with a half-life of ``half_life_s``) and above
    ``floor``."""

    def __init__(self, fps: float, ratio: float = 0.1, half_life_s: float = 5.0, floor: float = 1e-3) -> None:
        self.decay = 0.5 ** (1.0 / (half_life_s * fps))
        self.ratio, self.floor, self.level = ratio, floor, 0.0

    def step(self, rms: float) -> bool:
        self.level = max(rms, self.level * self.decay)
        return rms > self.floor and rms > self.ratio * self.level


class MotionStream:
    """One stream's state: push speech features (and each frame's loudness) as they come; get the motion of
    the frames that are now known (``future`` frames behind); :meth:`flush` at the end of the speech."""

    def __init__(self, syncer: MotionSyncer, seed: int = 0) -> None:
        self.s, self.seed = syncer, seed
        a = syncer.arch
        self.rng = np.random.default_rng(seed)  # reseeded with the first frame's speech (push)
        self.blink = BlinkState(syncer.blinks, a.fps, self.rng)
        self.gate = SpeechGate(a.fps)
        self.alpha = lowpass_alpha(a.fps, a.cutoff_hz)
        self.buf: torch.Tensor | None = None  # features not yet consumed by a full window
        self.rms: list[float] = []  # loudness of frames not yet given out
        self.prev_proj: np.ndarray | None = None
        self.r1 = np.zeros(CHANNELS)
        self.r2 = np.zeros(CHANNELS)
        self.lp: tuple[np.ndarray, np.ndarray] | None = None
        self.coef = syncer.ar.cpu().numpy().astype(np.float64)
        self.noise = syncer.ar_noise.cpu().numpy().astype(np.float64)
        self.resid = syncer.residual.cpu().numpy().astype(np.float64)
        self.gain = syncer.gain.cpu().numpy().astype(np.float64)
        self.proj_scale = syncer.proj_scale.cpu().numpy().astype(np.float64)
        self.share = a.noise_share

    def push(self, features: torch.Tensor | np.ndarray, rms: np.ndarray) -> Motion:
        """features ``[n, P, F]`` and their frames' RMS ``[n]`` -> the motion of the frames now known."""
        return self._run() if self._take(features, rms) else Motion.concat([])

    def _take(self, features: torch.Tensor | np.ndarray, rms: np.ndarray) -> bool:
        """Buffer the next frames' features and loudness (False: there were none)."""
        f = torch.as_tensor(np.asarray(features) if isinstance(features, np.ndarray) else features,
                            dtype=torch.float32, device=self.s.mean.device)
        r = np.asarray(rms, np.float64).reshape(-1)
        if f.ndim != 3 or len(f) != len(r):
            raise ValueError(f"MotionStream.push: features [n, P, F] and rms [n] disagree: {tuple(f.shape)}, {r.shape}")
        if len(f) == 0:
            return False
        if self.buf is None:  # the first frame's window reaches back past the start: repeat it
            self.buf = f[:1].expand(self.s.arch.past, *f.shape[1:])
            if self.prev_proj is None:  # a new stream: its random part also depends on how the speech starts
                self.rng = np.random.default_rng([self.seed, speech_hash(f[0])])
                self.blink = BlinkState(self.s.blinks, self.s.arch.fps, self.rng)
        self.buf = torch.cat([self.buf, f])
        self.rms.extend(r.tolist())
        return True

    def _ready(self) -> int:
        """How many frames the buffered features give out now (their whole windows are there)."""
        a = self.s.arch
        return 0 if self.buf is None else len(self.buf) - (a.past + a.future + 1) + 1

    def flush(self) -> Motion:
        """The motion of the last ``future`` frames (their windows reach past the end: the last frame repeats)."""
        if self.buf is None or self.s.arch.future == 0:
            return Motion.concat([])
        self.buf = torch.cat([self.buf, self.buf[-1:].expand(self.s.arch.future, *self.buf.shape[1:])])
        out = self._run()
        self.buf = None
        return out

    @torch.no_grad()
    def _run(self, net: tuple[np.ndarray, np.ndarray] | None = None) -> Motion:
        """Give out the frames the buffer now holds whole windows for; ``net``: the net's output for them and their
        projection (``[n, 7]`` each, :meth:`MotionSyncer.run_net`), when already computed (:func:`push_streams`)."""
        n = self._ready()
        if n <= 0:
            return Motion.concat([])
        assert self.buf is not None
        if net is None:
            m, proj = (v[0] for v in self.s.run_net(self.buf[None]))  # [n, 7] each
        else:
            m, proj = net
        self.buf = self.buf[n:]
        z = np.empty((n, CHANNELS))
        closure = np.empty((n, 2))
        rms, self.rms = self.rms[:n], self.rms[n:]
        for t in range(n):
            speech_part = (proj[t] - self.prev_proj) / self.proj_scale if self.prev_proj is not None else 0.0
            self.prev_proj = proj[t]
            eps = self.rng.standard_normal(CHANNELS)
            e = np.sqrt(1 - self.share) * speech_part + np.sqrt(self.share) * eps
            r = self.coef[:, 0] * self.r1 + self.coef[:, 1] * self.r2 + self.noise * e
            self.r1, self.r2 = r, self.r1
            y = m[t] + self.resid * r
            if self.lp is None:
                self.lp = (y.copy(), y.copy())
            s1 = self.lp[0] + self.alpha * (y - self.lp[0])
            s2 = self.lp[1] + self.alpha * (s1 - self.lp[1])
            self.lp = (s1, s2)
            z[t] = s2 * self.gain
            closure[t] = self.blink.step(self.gate.step(rms[t]))
        return self.s.to_motion(z, closure)


def push_streams(items: list[tuple[MotionStream, torch.Tensor, np.ndarray]]) -> list[Motion]:
    """:meth:`MotionStream.push` of several streams of one syncer, each with its features ``[n, P, F]`` and
    loudness ``[n]``: the same motions, with one run of the net for all the streams that give out as many frames."""
    ready = []
    for st, f, r in items:
        if st.s is not items[0][0].s:
            raise ValueError("push_streams: the streams must share one syncer")
        ready.append(st._ready() if st._take(f, r) else 0)
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(ready):
        if n > 0:
            groups.setdefault(n, []).append(i)
    out = [Motion.concat([]) for _ in items]
    for ids in groups.values():
        nets, projs = items[ids[0]][0].s.run_net(torch.stack([items[i][0].buf for i in ids]))  # type: ignore[misc]
        for row, i in enumerate(ids):
            out[i] = items[i][0]._run((nets[row], projs[row]))
    return out


def generate_motion(syncer: MotionSyncer, features: torch.Tensor | np.ndarray, rms: np.ndarray,
                    seed: int = 0) -> Motion:
    """The motion of a whole clip: features ``[T, P, F]``, per-frame RMS ``[T]`` -> :class:`Motion` of T frames
    (the same frames a :class:`MotionStream` gives chunk by chunk)."""
    st = syncer.stream(seed)
    return Motion.concat([st.push(features, rms), st.flush()])
