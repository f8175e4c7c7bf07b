"""The ``syncnet`` metric: LSE-D and LSE-C from Wav2Lip's ``SyncNet_color``, with weights the user supplies.

Nothing is downloaded. ``weights`` must point at a ``SyncNet_color`` checkpoint, e.g. Wav2Lip's
lip-sync expert ``lipsync_expert.pth`` (a dict with a ``state_dict`` entry, or a plain state dict;
a ``module.`` prefix from DataParallel is removed). It is read with ``torch.load(weights_only=True)``
(``.safetensors`` files with safetensors) and must match the architecture key for key and shape for
shape (only BatchNorm's ``num_batches_tracked`` counters may be absent).

**Network** (:class:`SyncNetColor`, the layers and state-dict keys of Wav2Lip's ``models/syncnet.py``):
a face encoder over the lower half of 5 stacked face crops (``[B, 15, 48, 96]``: 5 frames x BGR,
values in [0, 1]) and an audio encoder over a mel window (``[B, 1, 80, 16]``), each a stack of
conv + BatchNorm + ReLU blocks (some residual) ending in a 512-d vector, L2-normalised.

**Inputs**, as Wav2Lip prepares them:
- Face crops: per frame, the square around the bounding box of the 478 tracked FaceMesh landmarks
  (side = the box's longer side, centred on it; pixels outside the frame repeat the border), resized
  to 96 x 96, BGR; the lower 48 rows. Window ``k`` stacks frames ``k .. k+4``. Frames without a face
  take the landmarks of the nearest frame with one. (Wav2Lip crops with the S3FD detector's box;
  the FaceMesh box is tighter at the forehead, so crops differ slightly from Wav2Lip's.)
- Mel: 16 kHz audio, pre-emphasis 0.97, STFT (n_fft 800, hop 200, Hann window 800, centred with
  reflected padding), magnitude, 80 Slaney mel bands 55-7600 Hz, ``20 log10(max(1e-5, mel)) - 20`` dB,
  mapped from [-100, 0] dB to [-4, 4] and clipped (Wav2Lip's ``hparams``: 80 mel frames per second).
  Window ``k`` is mel frames ``int(80 k / fps) .. +16`` (0.2 s, the span of 5 frames at 25 fps).

**Scores**, as syncnet_python's ``calc_pdist`` / ``evaluate`` (used for LSE in the Wav2Lip line):
with video embeddings ``v_i`` and audio embeddings ``a_i`` of the K windows, and ``a`` padded with
``vshift`` zero vectors at both ends, ``d[i, j] = dist(v_i, a_{i + j - vshift})`` for
``j = 0 .. 2 vshift``; ``D(j)`` = mean over i. **LSE-D** = ``min_j D(j)``; **LSE-C** =
``median_j D(j) - min_j D(j)``; **offset** = ``vshift - argmin_j D(j)`` (> 0: the video lags the audio,
the convention of :mod:`syncanim.eval.sync`). ``dist`` is ``torch.nn.functional.pairwise_distance``
(Euclidean; on these unit vectors it equals ``sqrt(2 * cosine distance)``), or ``1 - cosine similarity``
with ``distance = "cosine"``.

What the numbers are not: the LSE-D / LSE-C in papers come from syncnet_python's own network
(``syncnet_v2.model``, grey-scale mouth crops and MFCCs, unnormalised 1024-d features), whose distances
are around 6-8. ``SyncNet_color`` embeddings are unit vectors, so LSE-D here lies in [0, 2]; values
compare between syncanim runs with the same weights, not with published tables.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.nn import functional as F

from ..config import Frozen
from ..errors import CheckpointError
from ..metrics.weights import check_layout, read_state
from ..registry import Spec

log = logging.getLogger(__name__)

WEIGHTS_HINT = "Wav2Lip's lip-sync expert checkpoint lipsync_expert.pth (a SyncNet_color state dict)"
FACE_SIZE = 96  # face crops are resized to this square; the network sees its lower half
WINDOW_FRAMES = 5  # video frames per window
MEL_STEP = 16  # mel frames per window (0.2 s at 80 mel frames per second)
MEL_RATE = 80.0  # mel frames per second (hop 200 at 16 kHz)
SAMPLE_RATE = 16000
N_FFT = 800
HOP = 200
N_MELS = 80
FMIN, FMAX = 55.0, 7600.0
PREEMPHASIS = 0.97
MIN_LEVEL_DB = -100.0
REF_LEVEL_DB = 20.0
MAX_ABS = 4.0


class SyncNetConfig(Frozen):
    """Settings of the ``syncnet`` metric (a ``syncanim.metrics`` component)."""

    weights: Path | None = None  # the SyncNet_color checkpoint (see module doc); required to run
    vshift: int = Field(15, ge=1, le=50)  # offsets searched, windows each way (15 as in syncnet_python)
    distance: Literal["euclidean", "cosine"] = "euclidean"  # euclidean = syncnet_python's pairwise_distance
    batch: int = Field(64, ge=1)  # windows per forward pass (more = faster, more memory)


# --- the network ------------------------------------------------------------------------------------


class ConvBlock(nn.Module):
    """Conv2d + BatchNorm2d (as ``conv_block``), optional residual add, then ReLU (Wav2Lip's ``Conv2d``)."""

    def __init__(self, cin: int, cout: int, kernel_size: int | tuple[int, int], stride: int | tuple[int, int],
                 padding: int, residual: bool = False) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout))
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


class SyncNetColor(nn.Module):
    """Wav2Lip's ``SyncNet_color``. ``forward(audio [B, 1, 80, 16], face [B, 15, 48, 96])`` ->
    ``(audio_embedding [B, 512], face_embedding [B, 512])``, both L2-normalised, float."""

    def __init__(self) -> None:
        super().__init__()
        C = ConvBlock
        self.face_encoder = nn.Sequential(
            C(15, 32, kernel_size=(7, 7), stride=1, padding=3),
            C(32, 64, kernel_size=5, stride=(1, 2), padding=1),
            C(64, 64, 3, 1, 1, residual=True),
            C(64, 64, 3, 1, 1, residual=True),
            C(64, 128, 3, 2, 1),
            C(128, 128, 3, 1, 1, residual=True),
            C(128, 128, 3, 1, 1, residual=True),
            C(128, 128, 3, 1, 1, residual=True),
            C(128, 256, 3, 2, 1),
            C(256, 256, 3, 1, 1, residual=True),
            C(256, 256, 3, 1, 1, residual=True),
            C(256, 512, 3, 2, 1),
            C(512, 512, 3, 1, 1, residual=True),
            C(512, 512, 3, 1, 1, residual=True),
            C(512, 512, 3, 2, 1),
            C(512, 512, 3, 1, 0),
            C(512, 512, 1, 1, 0),
        )
        self.audio_encoder = nn.Sequential(
            C(1, 32, 3, 1, 1),
            C(32, 32, 3, 1, 1, residual=True),
            C(32, 32, 3, 1, 1, residual=True),
            C(32, 64, 3, (3, 1), 1),
            C(64, 64, 3, 1, 1, residual=True),
            C(64, 64, 3, 1, 1, residual=True),
            C(64, 128, 3, 3, 1),
            C(128, 128, 3, 1, 1, residual=True),
            C(128, 128, 3, 1, 1, residual=True),
            C(128, 256, 3, (3, 2), 1),
            C(256, 256, 3, 1, 1, residual=True),
            C(256, 256, 3, 1, 1, residual=True),
            C(256, 512, 3, 1, 0),
            C(512, 512, 1, 1, 0),
        )

    def forward(self, audio: torch.Tensor, face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if audio.ndim != 4 or audio.shape[1:] != (1, N_MELS, MEL_STEP):
            raise ValueError(f"SyncNetColor: audio must be [B, 1, {N_MELS}, {MEL_STEP}], got {tuple(audio.shape)}")
        if face.ndim != 4 or face.shape[1:] != (3 * WINDOW_FRAMES, FACE_SIZE // 2, FACE_SIZE):
            raise ValueError(f"SyncNetColor: face must be [B, 15, 48, 96], got {tuple(face.shape)}")
        a = self.audio_encoder(audio).flatten(1)  # [B, 512]
        v = self.face_encoder(face).flatten(1)  # [B, 512]
        return F.normalize(a, p=2, dim=1), F.normalize(v, p=2, dim=1)


def load_syncnet(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> SyncNetColor:
    """A :class:`SyncNetColor` with the weights of ``path`` (module doc), in eval mode. Raises
    CheckpointError naming the file and what belongs there when it is missing or does not fit."""
    p = Path(path)
    what = "SyncNet weights"
    state = read_state(p, what, WEIGHTS_HINT, unwrap=True)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    net = SyncNetColor()
    kept = check_layout(state, net, p, what, WEIGHTS_HINT, optional=lambda k: k.endswith("num_batches_tracked"))
    net.load_state_dict(kept, strict=False)
    return net.to(device).eval()


# --- inputs -----------------------------------------------------------------------------------------


def wav2lip_mel(samples: np.ndarray) -> np.ndarray:
    """Wav2Lip's mel spectrogram (module doc) of 16 kHz ``samples: [T] float`` -> ``[80, 1 + T // 200] float32``."""
    from ..audio.logmel import mel_filterbank

    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"wav2lip_mel: samples must be [T], got {x.shape}")
    y = np.concatenate([x[:1], x[1:] - PREEMPHASIS * x[:-1]]) if len(x) else x  # [T]
    pad = N_FFT // 2
    y = np.pad(y, pad, mode="reflect") if len(y) > pad else np.pad(y, pad)  # [T + 800]
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP]  # [M, 800]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    mag = np.abs(np.fft.rfft(frames * window, axis=1))  # [M, 401]
    mel = mel_filterbank(N_MELS, N_FFT, SAMPLE_RATE, FMIN, FMAX).astype(np.float64) @ mag.T  # [80, M]
    db = 20 * np.log10(np.maximum(10 ** (MIN_LEVEL_DB / 20), mel)) - REF_LEVEL_DB
    norm = (2 * MAX_ABS) * ((db - MIN_LEVEL_DB) / -MIN_LEVEL_DB) - MAX_ABS
    return np.clip(norm, -MAX_ABS, MAX_ABS).astype(np.float32)


def face_crop(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The lower half of the square face crop (module doc) of ``rgb: [H, W, 3] uint8`` with landmarks
    ``points: [478, >=2]`` -> ``[48, 96, 3] uint8`` BGR."""
    xy = np.asarray(points, dtype=np.float64)[:, :2]
    lo, hi = xy.min(0), xy.max(0)
    centre = (lo + hi) / 2
    side = max(float((hi - lo).max()), 2.0)
    x0, y0 = np.round(centre - side / 2).astype(int)
    s = int(round(side))
    # the crop's pixels, with the frame's border repeated outside it
    patch = cv2.copyMakeBorder(rgb, s, s, s, s, cv2.BORDER_REPLICATE)[y0 + s:y0 + 2 * s, x0 + s:x0 + 2 * s]
    face = cv2.resize(patch, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(face[FACE_SIZE // 2:], cv2.COLOR_RGB2BGR)


# --- scores -----------------------------------------------------------------------------------------


def lse_scores(video: torch.Tensor, audio: torch.Tensor, vshift: int = 15,
               distance: str = "euclidean") -> dict[str, Any]:
    """LSE-D, LSE-C and offset (module doc) from ``video, audio: [K, D]`` embeddings of K windows.

    Returns ``{"lse_d": float, "lse_c": float, "offset": int, "mean_distance": [2 vshift + 1] list}``;
    ``mean_distance[j]`` is ``D(j)``, offset ``vshift - j``.
    """
    if video.ndim != 2 or video.shape != audio.shape or len(video) == 0:
        raise ValueError(f"lse_scores: need two non-empty [K, D] tensors of one shape, got "
                         f"{tuple(video.shape)} and {tuple(audio.shape)}")
    if distance not in ("euclidean", "cosine"):
        raise ValueError(f"lse_scores: distance must be 'euclidean' or 'cosine', got {distance!r}")
    k = len(video)
    win = 2 * vshift + 1
    padded = F.pad(audio, (0, 0, vshift, vshift))  # [K + 2 vshift, D]
    idx = torch.arange(k)[:, None] + torch.arange(win)[None, :]  # [K, win]
    pairs = padded[idx]  # [K, win, D]
    v = video[:, None, :].expand_as(pairs)
    if distance == "euclidean":
        d = F.pairwise_distance(v.reshape(-1, v.shape[-1]), pairs.reshape(-1, v.shape[-1])).view(k, win)
    else:
        d = 1.0 - F.cosine_similarity(v, pairs, dim=-1)  # [K, win]
    mean = d.mean(0)  # [win]
    j = int(torch.argmin(mean))
    lse_d = float(mean[j])
    return {"lse_d": lse_d, "lse_c": float(torch.median(mean)) - lse_d, "offset": vshift - j,
            "mean_distance": [float(x) for x in mean]}


class SyncNetScorer:
    """The built component: ``score(clip)`` -> ``{"lse_d", "lse_c", "offset", "windows"}`` (module doc)."""

    name = "syncnet"

    def __init__(self, config: SyncNetConfig) -> None:
        if config.weights is None:
            raise CheckpointError(f"the syncnet metric needs weights: set its 'weights' to {WEIGHTS_HINT}")
        self.config = config
        self.net = load_syncnet(config.weights)

    def embed(self, clip: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Video and audio embeddings ``[K, 512]`` of a clip's windows (``clip``: a
        :class:`syncanim.eval.video_stats.ClipInputs` with audio)."""
        from ..face.landmarks import fill_gaps

        if clip.audio is None:
            raise ValueError("syncnet: the clip has no audio")
        if clip.audio.sample_rate != SAMPLE_RATE:
            raise ValueError(f"syncnet: audio must be {SAMPLE_RATE} Hz, got {clip.audio.sample_rate}")
        if not clip.found.any():
            return torch.zeros(0, 512), torch.zeros(0, 512)
        points, _ = fill_gaps(clip.points, max_gap=len(clip.points))
        mel = wav2lip_mel(clip.audio.samples)  # [80, M]
        starts = [int(MEL_RATE * (clip.first_frame + k) / clip.fps) for k in range(clip.num_frames)]
        count = 0
        while (count + WINDOW_FRAMES <= clip.num_frames and starts[count] >= 0
               and starts[count] + MEL_STEP <= mel.shape[1]):
            count += 1
        crops = [face_crop(rgb, points[k]) for k, rgb in enumerate(clip.frames()) if k < count + WINDOW_FRAMES - 1]
        device = torch.device(clip.device)
        net = self.net.to(device)
        vid, aud = [], []
        with torch.no_grad():
            for s in range(0, count, self.config.batch):
                ks = range(s, min(count, s + self.config.batch))
                face = np.stack([np.concatenate(crops[k:k + WINDOW_FRAMES], axis=2) for k in ks])  # [B, 48, 96, 15]
                f = torch.from_numpy(face).to(device).permute(0, 3, 1, 2).float() / 255  # [B, 15, 48, 96]
                a = torch.from_numpy(np.stack([mel[:, starts[k]:starts[k] + MEL_STEP] for k in ks]))[:, None]
                ae, ve = net(a.to(device), f)
                vid.append(ve.cpu())
                aud.append(ae.cpu())
        if not vid:
            return torch.zeros(0, 512), torch.zeros(0, 512)
        return torch.cat(vid), torch.cat(aud)

    def score(self, clip: Any) -> dict[str, Any]:
        video, audio = self.embed(clip)
        if len(video) == 0:
            return {"lse_d": None, "lse_c": None, "offset": None, "windows": 0}
        s = lse_scores(video, audio, self.config.vshift, self.config.distance)
        return {"lse_d": s["lse_d"], "lse_c": s["lse_c"], "offset": s["offset"], "windows": len(video)}


def _check(config: SyncNetConfig) -> str | None:
    if config.weights is None:
        return f"set the metric's 'weights' to {WEIGHTS_HINT}"
    if not Path(config.weights).is_file():
        return f"SyncNet weights not found at {config.weights}: place {WEIGHTS_HINT} there"
    return None


SPEC = Spec(
    name="syncnet",
    config_model=SyncNetConfig,
    build=SyncNetScorer,
    description="LSE-D / LSE-C lip-sync scores from Wav2Lip's SyncNet_color (weights supplied by the user)",
    check=_check,
)
