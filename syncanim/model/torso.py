"""The torso: the neck, shoulders and everything below the head, rendered for any head pose.

A 2D field over the image (as ER-NeRF and SyncAnimation render the torso): for a pixel ``(x, y)``
(in [0, 1]) and the head pose of the frame (its **pose code**: the rotation vector about the clip's mean
rotation and the translation, each over its spread on the clip), a small MLP moves the pixel by a
learned offset (the body follows the head: the neck bends, the shoulders shift), multiresolution
dense feature planes are read at the moved point, and a second MLP gives colour and opacity. The torso
is composited over the subject's background plate, and the head is then rendered over that image, so
a frame needs nothing of the training frames.

Its training target is what the head is trained over (:func:`syncanim.data.dataset.torso_background`:
the frame with the head replaced by the plate, the neck's colour stretched up under the chin), so
the joint between head and neck is the one the head learned.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import TorsoTrainConfig
from ..device import HostCopies, to_device
from ..geometry import matrix_to_axis_angle, project_to_rotation
from ..kernels.backend import resolve_backend
from ..kernels.torso import PackedTorso, pack_torso, torso_frames

log = logging.getLogger(__name__)

POSE_DIM = 6  # rotation vector (3) and translation (3)


@dataclass(frozen=True)
class TorsoArch:
    """What model.json keeps: the field's shape and the image size."""

    image_size: int
    levels: int = 6
    base_res: int = 16
    max_res: int = 256
    features: int = 4
    hidden: int = 64
    frequencies: int = 4
    max_offset: float = 0.08

    @staticmethod
    def of(config: TorsoTrainConfig, image_size: int) -> TorsoArch:
        """The shape ``config`` asks for at ``image_size`` (plane resolutions scale with the image, from 512 px)."""
        top = max(config.base_res, int(round(config.max_res * image_size / 512)))
        return TorsoArch(image_size, config.levels, config.base_res, top, config.features, config.hidden,
                         config.frequencies, config.max_offset)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def plane_resolutions(levels: int, base: int, top: int) -> list[int]:
    """Geometric resolutions from ``base`` to ``top`` (one level: ``base``)."""
    if levels == 1:
        return [base]
    g = (top / base) ** (1.0 / (levels - 1))
    return [int(round(base * g ** i)) for i in range(levels)]


def position_encoding(xy: torch.Tensor, frequencies: int) -> torch.Tensor:
    """``[..., 2]`` in [0, 1] -> ``[..., 2 + 4 * frequencies]``: the point and sin/cos of ``2^k pi`` times it."""
    if frequencies == 0:
        return xy
    k = (2.0 ** torch.arange(frequencies, device=xy.device, dtype=xy.dtype)) * torch.pi  # [K]
    a = xy[..., None] * k  # [..., 2, K]
    return torch.cat([xy, torch.sin(a).flatten(-2), torch.cos(a).flatten(-2)], -1)


def pose_code(rotation: np.ndarray, translation: np.ndarray, mean_rotation: np.ndarray, mean: np.ndarray,
              scale: np.ndarray) -> np.ndarray:
    """Pose codes ``[B, 6]`` float32 of head poses ``rotation [B, 3, 3]``, ``translation [B, 3]`` (module doc)."""
    rel = matrix_to_axis_angle(np.asarray(mean_rotation, np.float64).T[None] @ np.asarray(rotation, np.float64))
    raw = np.concatenate([rel, np.asarray(translation, np.float64)], 1)
    return ((raw - mean) / scale).astype(np.float32)


class TorsoField(nn.Module):
    """The field (module doc). Buffers: ``plate [H, W, 3] uint8`` (the background), ``mean_rotation [3, 3]``,
    ``pose_mean [6]`` and ``pose_scale [6]`` (the pose code's normalisation)."""

    def __init__(self, arch: TorsoArch) -> None:
        super().__init__()
        self.arch = arch
        s = arch.image_size
        self.register_buffer("plate", torch.zeros(s, s, 3, dtype=torch.uint8))
        self.register_buffer("mean_rotation", torch.eye(3))
        self.register_buffer("pose_mean", torch.zeros(POSE_DIM))
        self.register_buffer("pose_scale", torch.ones(POSE_DIM))
        self._host = HostCopies()  # the pose normalisation, read back once per change
        self._packed: tuple[tuple, PackedTorso] | None = None  # the fused kernel's weights, by parameter versions
        self.backend = "auto"  # of render (:mod:`syncanim.kernels.backend`)
        self.fused_error: str | None = None  # why the fused kernel could not run here (then render runs the reference)
        gen = torch.Generator().manual_seed(0)
        self.planes = nn.ParameterList(
            nn.Parameter(1e-2 * torch.randn(1, arch.features, r, r, generator=gen))
            for r in plane_resolutions(arch.levels, arch.base_res, arch.max_res))
        pe = 2 + 4 * arch.frequencies
        self.offset = nn.Sequential(nn.Linear(pe + POSE_DIM, arch.hidden), nn.ReLU(), nn.Linear(arch.hidden, arch.hidden),
                                    nn.ReLU(), nn.Linear(arch.hidden, 2))
        nn.init.zeros_(self.offset[-1].weight)
        nn.init.zeros_(self.offset[-1].bias)
        self.colour = nn.Sequential(nn.Linear(arch.levels * arch.features + POSE_DIM, arch.hidden), nn.ReLU(),
                                    nn.Linear(arch.hidden, arch.hidden), nn.ReLU(), nn.Linear(arch.hidden, 4))

    def set_normalisation(self, rotation: np.ndarray, translation: np.ndarray) -> None:
        """The pose code's normalisation from a clip's poses ``[N, 3, 3]``, ``[N, 3]``."""
        mean_rot = project_to_rotation(np.asarray(rotation, np.float64).mean(0))
        raw = np.concatenate([matrix_to_axis_angle(mean_rot.T[None] @ np.asarray(rotation, np.float64)),
                              np.asarray(translation, np.float64)], 1)
        with torch.no_grad():
            self.mean_rotation.copy_(torch.as_tensor(mean_rot, dtype=torch.float32))
            self.pose_mean.copy_(torch.as_tensor(raw.mean(0), dtype=torch.float32))
            self.pose_scale.copy_(torch.as_tensor(np.maximum(raw.std(0), 1e-6), dtype=torch.float32))

    def codes(self, rotation: np.ndarray, translation: np.ndarray) -> torch.Tensor:
        """Pose codes ``[B, 6]`` on the field's device of head poses ``[B, 3, 3]``, ``[B, 3]``."""
        c = pose_code(rotation, translation, *self._host.of(self.mean_rotation, self.pose_mean, self.pose_scale))
        return to_device(c, self.pose_mean.device)

    def forward(self, xy: torch.Tensor, code: torch.Tensor,
                shift: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Points ``xy: [B, P, 2]`` in [0, 1] (x right, y down) of frames with pose codes ``code: [B, 6]``
        -> (colour ``[B, P, 3]``, opacity ``[B, P, 1]``), both in [0, 1]. ``shift``: per-frame additions
        ``([B, hidden], [B, hidden])`` to the first hidden layer of the offset and of the colour MLP (what a
        scene code adds in training, :class:`syncanim.train.torso.SceneCodes`); None: none."""
        b, p, _ = xy.shape
        c = code[:, None, :].expand(b, p, POSE_DIM)
        h = self.offset[0](torch.cat([position_encoding(xy, self.arch.frequencies), c], -1))
        if shift is not None:
            h = h + shift[0][:, None, :]
        moved = xy + self.arch.max_offset * torch.tanh(self.offset[1:](h))
        grid = (moved * 2 - 1)[:, :, None, :]  # [B, P, 1, 2] in grid_sample's [-1, 1]
        feats = [F.grid_sample(plane.expand(b, -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                               align_corners=False)[..., 0].transpose(1, 2) for plane in self.planes]  # [B, P, F] each
        h = self.colour[0](torch.cat([*feats, c], -1))
        if shift is not None:
            h = h + shift[1][:, None, :]
        out = self.colour[1:](h)
        return torch.sigmoid(out[..., :3]), torch.sigmoid(out[..., 3:])

    def composite(self, xy: torch.Tensor, code: torch.Tensor, plate: torch.Tensor,
                  shift: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """The torso over ``plate: [B, P, 3]`` (float [0, 1]) at points ``xy [B, P, 2]`` -> ``[B, P, 3]``
        (``shift`` as in :meth:`forward`)."""
        rgb, alpha = self(xy, code, shift)
        return alpha * rgb + (1 - alpha) * plate

    def packed(self) -> PackedTorso:
        """The weights as the fused kernel reads them (packed again after any change to them)."""
        key = tuple((t.data_ptr(), t._version, t.device) for t in self.parameters())
        if self._packed is None or self._packed[0] != key:
            self._packed = (key, pack_torso(list(self.planes), [self.offset[0], self.offset[2], self.offset[4]],
                                            [self.colour[0], self.colour[2], self.colour[4]], POSE_DIM))
        return self._packed[1]

    @torch.no_grad()
    def render(self, code: torch.Tensor, chunk: int = 1 << 16, size: int | None = None,
               under: torch.Tensor | None = None, backend: str | None = None) -> torch.Tensor:
        """Whole frames of pose codes ``code: [B, 6]`` -> images ``[B, S, S, 3]`` float in [0, 1] (torso over the
        plate), ``S = size`` or the training size (the plate resampled bilinearly to another size). ``under``
        ``[B, S, S, 3]`` float in [0, 1] replaces the plate (scoring over held-out frames' own backgrounds).
        ``backend`` (default: the field's ``backend``): ``ref`` (the module's own forward, ``chunk`` pixels at a
        time), ``triton`` (one fused launch, :mod:`syncanim.kernels.torso`) or ``auto`` (triton on CUDA, until the
        kernel fails to compile or launch here: then a warning, :attr:`fused_error`, and the reference)."""
        s = size or self.arch.image_size
        dev = self.pose_mean.device
        if under is not None:
            plate = under.to(dev).float()
        else:
            plate = self.plate.float() / 255  # [H, W, 3]
            if s != self.arch.image_size:
                plate = F.interpolate(plate.permute(2, 0, 1)[None], size=(s, s), mode="bilinear", align_corners=False,
                                      antialias=True)[0].permute(1, 2, 0)
        backend = backend or self.backend
        if self.fused_error is None and resolve_backend("torso_render", backend, dev, ("ref", "triton"),
                                                        ("triton", "ref")) == "triton":
            a = self.arch
            try:
                return torso_frames(self.packed(), code, plate, s, a.frequencies, a.features, a.max_offset)
            except torch.OutOfMemoryError:
                raise
            except Exception as e:  # a kernel that does not compile or launch on this GPU / Triton
                if backend == "triton":  # asked for by name: say so
                    raise
                self.fused_error = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                log.warning("the fused torso kernel cannot run here (%s); rendering the torso per operation",
                            self.fused_error)
        ys, xs = torch.meshgrid(torch.arange(s, device=dev), torch.arange(s, device=dev), indexing="ij")
        xy = (torch.stack([xs, ys], -1).reshape(1, -1, 2).float() + 0.5) / s  # [1, S*S, 2]
        plate = plate.reshape(len(code), -1, 3) if under is not None else plate.reshape(1, -1, 3).expand(len(code), -1, -1)
        rows = max(1, chunk // max(1, len(code)))
        out = [self.composite(xy[:, i:i + rows].expand(len(code), -1, -1), code, plate[:, i:i + rows])
               for i in range(0, s * s, rows)]
        return torch.cat(out, 1).reshape(len(code), s, s, 3)
