"""A synthetic subject for benchmarks without a trained model: a face-like landmark cloud, a camera
looking at it, head poses, expressions, speech-like audio and a background image.

Everything here is a pure function of its arguments (randomness from a ``numpy`` seed). The face is
the front half of an ellipsoid with a nose bump, in the canonical head frame of
:mod:`syncanim.geometry` (x towards image right, y down, z away from the camera, units close to
metres), with the landmark indices that the head box and depth prior read placed where FaceMesh
puts them: 10 (top of the forehead), 152 (chin), 234 and 454 (the face's left and right edges in
the image). A :class:`~syncanim.model.head.NerfHead` built around it by :func:`synthetic_model` has
the same architecture, ray counts and per-sample cost as a trained model of the same config; only
its weights are random.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..audio.waveform import Waveform
from ..geometry import euler_to_matrix

log = logging.getLogger(__name__)

NUM_LANDMARKS = 478
FOREHEAD, CHIN, EDGE_LEFT, EDGE_RIGHT = 10, 152, 234, 454  # FaceMesh indices the box/prior code reads

FACE_HALF_WIDTH = 0.075  # m: cheek to cheek 0.15
FACE_HALF_HEIGHT = 0.1  # m: forehead to chin 0.2
FACE_DEPTH = 0.09  # m: nose tip to the face's outline plane
NOSE_HEIGHT = 0.025  # m: the nose bump in front of the ellipsoid
FOCAL_PER_PIXEL = 1.2  # focal length in pixels per image pixel (a ~45 degree field of view)


def synthetic_canonical(seed: int = 0) -> np.ndarray:
    """A plausible canonical face: ``[478, 3] float32`` landmarks in the canonical head frame.

    Points spread over the front half of an ellipsoid (semi-axes 0.075, 0.1, 0.09 m; the half that
    faces the camera, z < 0) with a Gaussian nose bump, jittered by ``seed``. Rows 10, 152, 234 and
    454 are the top, bottom, left and right extremes of the face outline.
    """
    rng = np.random.default_rng(seed)
    n = NUM_LANDMARKS
    # sunflower spiral over the unit disc: even coverage of the face's xy extent
    k = np.arange(n) + 0.5
    r = np.sqrt(k / n) * 0.98
    theta = k * np.pi * (3 - np.sqrt(5))
    u, v = r * np.cos(theta), r * np.sin(theta)  # [N] each, in the unit disc
    u = u + rng.normal(0, 0.005, n)
    v = v + rng.normal(0, 0.005, n)
    rho2 = np.clip(u * u + v * v, 0, 1)
    x = FACE_HALF_WIDTH * u
    y = FACE_HALF_HEIGHT * v
    z = -FACE_DEPTH * np.sqrt(1 - rho2) - NOSE_HEIGHT * np.exp(-(u * u + (v + 0.05) ** 2) / (2 * 0.12**2))
    pts = np.stack([x, y, z], -1)  # [N, 3]
    pts[FOREHEAD] = (0.0, -FACE_HALF_HEIGHT, 0.0)
    pts[CHIN] = (0.0, FACE_HALF_HEIGHT, 0.0)
    pts[EDGE_LEFT] = (-FACE_HALF_WIDTH, 0.0, 0.0)
    pts[EDGE_RIGHT] = (FACE_HALF_WIDTH, 0.0, 0.0)
    pts -= pts.mean(0, keepdims=True)  # origin near the centroid, as the canonical frame has it
    return pts.astype(np.float32)


@dataclass(frozen=True)
class SyntheticCamera:
    """Pinhole intrinsics of a ``size`` x ``size`` image (principal point at the centre)."""

    size: int
    focal: float
    cx: float
    cy: float


def synthetic_camera(size: int, canonical: np.ndarray) -> tuple[SyntheticCamera, float]:
    """A camera for ``size`` x ``size`` images and the distance (m) at which the face fills a third of
    the image height (as ``prep``'s default subject crop frames it). canonical: [478, 3]."""
    focal = FOCAL_PER_PIXEL * size
    height = float(np.linalg.norm(canonical[FOREHEAD] - canonical[CHIN]))
    distance = focal * height / (size / 3)
    return SyntheticCamera(size, focal, size / 2, size / 2), distance


def synthetic_poses(num: int, distance: float, fps: float = 25.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Head poses of a talking person facing the camera: a slow sway of a few degrees and millimetres.

    Returns rotation ``[num, 3, 3] float32`` and translation ``[num, 3] float32`` (head -> camera).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(num) / fps
    phase = rng.uniform(0, 2 * np.pi, 6)
    ang = np.deg2rad(np.stack([3 * np.sin(0.31 * 2 * np.pi * t + phase[0]),
                               4 * np.sin(0.23 * 2 * np.pi * t + phase[1]),
                               2 * np.sin(0.17 * 2 * np.pi * t + phase[2])], -1))  # [num, 3] pitch, yaw, roll
    rot = euler_to_matrix(ang)
    trans = np.stack([0.004 * np.sin(0.2 * 2 * np.pi * t + phase[3]),
                      0.003 * np.sin(0.27 * 2 * np.pi * t + phase[4]),
                      distance + 0.005 * np.sin(0.13 * 2 * np.pi * t + phase[5])], -1)  # [num, 3]
    return rot.astype(np.float32), trans.astype(np.float32)


def synthetic_expressions(num: int, dim: int, seed: int = 0) -> np.ndarray:
    """Expression coefficients ``[num, dim] float32`` in [0, 1] (random, smooth over time)."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0, 1, (num + 8, dim))
    kernel = np.ones(9) / 9
    smooth = np.stack([np.convolve(raw[:, j], kernel, mode="valid") for j in range(dim)], -1)  # [num, dim]
    return smooth.astype(np.float32)


def synthetic_speech(seconds: float, sample_rate: int = 16000, seed: int = 0) -> Waveform:
    """Speech-like audio: a voiced tone with harmonics under a 4 Hz syllable envelope, plus noise.

    Returns a mono Waveform of ``round(seconds * sample_rate)`` samples at ``sample_rate``.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * sample_rate))
    t = np.arange(n) / sample_rate
    pitch = 140 + 20 * np.sin(2 * np.pi * 0.5 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / sample_rate
    voiced = sum(np.sin(h * phase) / h for h in range(1, 6))
    env = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 2 * np.pi)), 0, None) ** 2
    x = 0.2 * env * voiced + 0.01 * rng.standard_normal(n)
    return Waveform(x.astype(np.float32), sample_rate)


def synthetic_background(size: int, seed: int = 0) -> np.ndarray:
    """A background image ``[size, size, 3] uint8``: a smooth colour gradient with mild noise."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / max(1, size - 1)
    base = np.stack([0.35 + 0.3 * xs, 0.4 + 0.2 * ys, 0.55 - 0.2 * xs * ys], -1)  # [H, W, 3]
    img = base + rng.normal(0, 0.02, base.shape)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def face_outline(canonical: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                 camera: SyntheticCamera, points: int = 36) -> np.ndarray:
    """The projected face polygon in pixels: ``[points, 2] float32``, the rim of the synthetic face
    (the ellipse through landmarks 10, 454, 152 and 234).

    canonical: [478, 3]; rotation: [3, 3]; translation: [3].
    """
    centre = 0.25 * (canonical[FOREHEAD] + canonical[CHIN] + canonical[EDGE_LEFT] + canonical[EDGE_RIGHT])
    half_w = 0.5 * float(np.linalg.norm(canonical[EDGE_RIGHT] - canonical[EDGE_LEFT]))
    half_h = 0.5 * float(np.linalg.norm(canonical[CHIN] - canonical[FOREHEAD]))
    a = np.linspace(0, 2 * np.pi, points, endpoint=False)
    rim = centre + np.stack([half_w * np.cos(a), half_h * np.sin(a), np.zeros_like(a)], -1)  # [K, 3]
    cam = rim.astype(np.float64) @ rotation.T + translation  # [K, 3]
    uv = camera.focal * cam[:, :2] / cam[:, 2:3] + np.array([camera.cx, camera.cy])  # [K, 2]
    return uv.astype(np.float32)


def synthetic_model(config, audio_per_frame: int, audio_dim: int, seed: int = 0, occupancy: bool = True):
    """A randomly initialised :class:`~syncanim.model.head.NerfHead` around :func:`synthetic_canonical`.

    ``config``: a NerfHeadConfig. With ``occupancy``, the occupancy grid is refreshed once under a
    random condition (as training does after its warm-up), so samples outside the shell are skipped as
    they are for a trained model. Returns the model (CPU, eval mode) and the canonical face [478, 3].
    """
    import torch

    from ..face.mouth import MOUTH_POINTS
    from ..model.conditioning import Conditioning
    from ..model.head import EXPRESSIONS, NerfHead

    canonical = synthetic_canonical(seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = NerfHead.for_face(config, canonical, audio_per_frame, audio_dim, 1,
                                  (config.mouth.components, len(MOUTH_POINTS)))
    model.eval()
    if occupancy:
        audio = torch.randn(1, config.audio_dim, generator=gen)
        expr = torch.rand(1, len(EXPRESSIONS), generator=gen)
        share = model.update_occupancy(Conditioning(audio, expr, model.latent_for(None, 1)), gen)
        log.debug("synthetic model: %.1f%% of occupancy cells occupied", 100 * share)
    return model, canonical
