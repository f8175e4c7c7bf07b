"""``hubert`` / ``wav2vec2``: hidden states of a speech model loaded with ``transformers`` from a local folder.

The folder is what ``save_pretrained`` writes (``config.json`` plus ``model.safetensors`` or
``pytorch_model.bin``, and optionally ``preprocessor_config.json``); nothing is ever downloaded.
Install the optional dependency with ``pip install syncanim[hubert]``.

Signal path for 16 kHz mono audio:

1. Normalisation as the model's feature extractor does it: when ``do_normalize`` is set (read from
   ``preprocessor_config.json``; without that file, on for ``feat_extract_norm = "layer"`` models)
   ``x <- (x - mean(x)) / sqrt(var(x) + 1e-7)`` over the whole clip.
2. The model's conv encoder has stride ``S`` and receptive field ``R`` samples (320 and 400 for every
   released HuBERT / wav2vec2 model: 50 Hz). Native frame ``j`` reads samples ``[S j, S j + R)`` and
   is placed at the centre of that span, ``(S j + R / 2) / 16000`` s.
3. The chosen hidden state (``layer``: 0 is the encoder input after the feature projection, -1 the
   last layer's output) is taken for each native frame. Long audio runs in chunks of
   ``chunk_seconds`` that overlap by at least ``overlap_seconds``; in the overlaps the chunks are
   blended with linear weights that fall to zero at each chunk's inner edges, so no frame is taken
   from the edge of a chunk and there is no step at chunk boundaries.
4. Linear interpolation in time to ``per_frame`` vectors per video frame (:mod:`.framing`).

Chunks see less context than the whole clip, so chunked features match unchunked ones only
approximately (attention is global); models with ``feat_extract_norm = "group"`` (the base-size
checkpoints) also normalise each chunk's first conv layer over that chunk's time axis.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field, model_validator

from ..config import Frozen
from ..console import ProgressFn, no_progress
from ..errors import CheckpointError, ConfigError, PluginError, ResourceError
from ..registry import Spec
from .chunks import chunk_starts, stitch
from .features import SAMPLE_RATE, check_frames, check_waveform
from .framing import align_to_frames, native_span, num_frames_for
from .waveform import Waveform

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install syncanim[hubert]"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
_EXAMPLES = {"hubert": "facebook/hubert-large-ls960-ft", "wav2vec2": "facebook/wav2vec2-large-960h-lv60-self"}


class TransformersAudioConfig(Frozen):
    """Settings of the ``hubert`` and ``wav2vec2`` backends (``[prep.audio]``)."""

    path: str | None = None  # local folder written by save_pretrained: config.json + weights
    layer: int = -1  # hidden state to use: 0 = encoder input, 1..L = after layer l, -1 = last
    per_frame: int = Field(2, ge=1, le=16)  # vectors per video frame; 2 at 25 fps = the model's 50 Hz
    chunk_seconds: float = Field(20.0, gt=0.0)  # audio per model call; bounds memory (attention is T^2)
    overlap_seconds: float = Field(2.0, ge=0.0)  # least overlap between chunks, blended linearly
    device: str = "cpu"  # torch device for the model, e.g. "cpu", "cuda", "cuda:1"

    @model_validator(mode="after")
    def _chunks(self) -> TransformersAudioConfig:
        if self.chunk_seconds <= 2 * self.overlap_seconds:
            raise ValueError(f"chunk_seconds ({self.chunk_seconds}) must exceed twice overlap_seconds ({self.overlap_seconds})")
        return self


# --- pure math ------------------------------------------------------------------------------


def conv_geometry(kernels: Sequence[int], strides: Sequence[int]) -> tuple[int, int]:
    """``(stride, receptive_field)`` in samples of a stack of 1-D convolutions (no padding, no dilation)."""
    if len(kernels) != len(strides) or not kernels:
        raise ValueError(f"need one stride per kernel, got kernels {list(kernels)} and strides {list(strides)}")
    stride, field = 1, 1
    for k, s in zip(kernels, strides, strict=True):
        field += (k - 1) * stride
        stride *= s
    return stride, field


def normalize_wave(samples: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the whole clip, as ``Wav2Vec2FeatureExtractor`` does it.

    ``samples: [L] float`` -> ``[L] float32``: ``(x - mean) / sqrt(var + 1e-7)``.
    """
    x = samples.astype(np.float64)
    return ((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float32)


# --- availability ---------------------------------------------------------------------------


def _transformers_installed() -> bool:
    return importlib.util.find_spec("transformers") is not None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _check(kind: str, config: TransformersAudioConfig) -> str | None:
    """``None`` when ``kind`` can run with ``config`` here, else what to fix."""
    if not _transformers_installed():
        return f"the {kind} backend needs the transformers package: {INSTALL_HINT}"
    if config.path is None:
        return (f"set prep.audio.path to a folder with config.json and model weights, "
                f"e.g. {_EXAMPLES[kind]} saved with save_pretrained")
    p = Path(config.path).expanduser()
    if not p.exists():
        return f"model folder {p} does not exist (prep.audio.path)"
    if not p.is_dir():
        return f"prep.audio.path must be a folder written by save_pretrained, got the file {p}"
    if not (p / "config.json").is_file():
        return f"no config.json in {p}: give a folder written by save_pretrained"
    cfg = _read_json(p / "config.json")
    if cfg is None:
        return f"{p / 'config.json'} is not a readable JSON object"
    model_type = cfg.get("model_type")
    if model_type != kind:
        other = f'; use kind = "{model_type}"' if model_type in _EXAMPLES else ""
        return f"{p} holds a {model_type!r} model, not {kind!r}{other}"
    if not any((p / name).is_file() for name in WEIGHT_FILES):
        return f"no model weights in {p} (expected model.safetensors or pytorch_model.bin)"
    return None


# --- the backend ----------------------------------------------------------------------------


class TransformersExtractor:
    """Hidden states of a loaded HuBERT / wav2vec2 model: ``extract`` gives ``[N, per_frame, hidden] float32``."""

    def __init__(self, name: str, model: Any, do_normalize: bool, config: TransformersAudioConfig,
                 device: torch.device) -> None:
        self.name = name
        self.config = config
        self.model = model
        self.device = device
        self.do_normalize = do_normalize
        mc = model.config
        self.num_layers = int(mc.num_hidden_layers)
        self.dim = int(mc.hidden_size)
        self.per_frame = config.per_frame
        self.stride, self.receptive_field = conv_geometry(mc.conv_kernel, mc.conv_stride)
        self.rate = SAMPLE_RATE / self.stride  # native frames per second
        self.offset_s = self.receptive_field / 2 / SAMPLE_RATE  # centre of native frame 0
        if not -(self.num_layers + 1) <= config.layer <= self.num_layers:
            raise ConfigError(
                f"prep.audio.layer = {config.layer} is out of range: this model has hidden states "
                f"0..{self.num_layers} (or -1..-{self.num_layers + 1} from the end)")

    def native_features(self, samples: np.ndarray, progress: ProgressFn = no_progress) -> np.ndarray:
        """Hidden states at the model's own rate from model-ready samples.

        ``samples: [L] float32`` (already normalised), ``L >= receptive_field``. Returns ``[J, F] float32``
        with ``J = (L - receptive_field) // stride + 1``, in chunks (see module docstring).
        """
        import torch

        total = (samples.size - self.receptive_field) // self.stride + 1
        if total < 1:
            raise ValueError(f"need at least {self.receptive_field} samples, got {samples.size}")
        chunk = max(1, round(self.config.chunk_seconds * self.rate))
        overlap = min(round(self.config.overlap_seconds * self.rate), (chunk - 1) // 2)
        starts = chunk_starts(total, chunk, overlap)
        outs: list[np.ndarray] = []
        progress("audio features", 0, len(starts))
        for i, f0 in enumerate(starts):
            f1 = min(total, f0 + chunk)
            x = samples[f0 * self.stride:(f1 - 1) * self.stride + self.receptive_field]  # [Lc]
            xt = torch.from_numpy(np.ascontiguousarray(x))[None].to(self.device)  # [1, Lc]
            with torch.inference_mode():
                hidden = self.model(xt, output_hidden_states=True).hidden_states[self.config.layer]  # [1, n, F]
            if hidden.shape[1] != f1 - f0:
                raise PluginError(f"{self.name}: the model gave {hidden.shape[1]} frames for {f1 - f0} expected "
                                  f"(stride {self.stride}, receptive field {self.receptive_field})")
            outs.append(hidden[0].float().cpu().numpy())
            progress("audio features", i + 1, len(starts))
        if len(starts) > 1:
            log.debug("%s: %d frames in %d chunks of %d (overlap >= %d)", self.name, total, len(starts), chunk, overlap)
        return stitch(outs, starts, total, overlap)

    def extract(
        self, wave: Waveform, fps: float, num_frames: int | None = None, progress: ProgressFn = no_progress
    ) -> np.ndarray:
        """Features for video frames ``0 .. N-1``: ``[N, per_frame, hidden_size] float32``.

        ``wave``: 16 kHz mono, non-empty (DataError otherwise). The model input is trimmed to the
        frames asked for, or padded with silence (zeros after normalisation) to reach them.
        """
        check_waveform(wave)
        check_frames(fps, num_frames)
        n = num_frames_for(wave.duration_s, fps) if num_frames is None else num_frames
        if n == 0:
            return np.zeros((0, self.per_frame, self.dim), np.float32)
        _, j1 = native_span(0, n, fps, self.per_frame, self.rate, self.offset_s)
        frames = max(j1, 1)
        length = (frames - 1) * self.stride + self.receptive_field  # samples the model reads
        x = normalize_wave(wave.samples) if self.do_normalize else wave.samples.astype(np.float32)
        x = np.pad(x[:length], (0, max(0, length - x.size)))  # [length]
        seq = self.native_features(x, progress)  # [frames, F]
        return align_to_frames(seq, self.rate, fps, self.per_frame, 0, n, self.offset_s)


def _load(kind: str, config: TransformersAudioConfig) -> TransformersExtractor:
    missing = _check(kind, config)
    if missing:
        raise PluginError(f"audio backend {kind!r} cannot run: {missing}")
    import torch

    try:
        import transformers
    except ImportError as e:
        raise PluginError(f"audio backend {kind!r} cannot import transformers: {e}", hint=INSTALL_HINT) from e
    try:
        device = torch.device(config.device)
    except RuntimeError as e:
        raise ConfigError(f"prep.audio.device: not a torch device ({config.device!r})") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ResourceError(f"prep.audio.device = {config.device!r} but no CUDA device is available")
    path = Path(config.path).expanduser()  # type: ignore[arg-type]  # _check ensured it is set
    cls = transformers.HubertModel if kind == "hubert" else transformers.Wav2Vec2Model
    try:
        model = cls.from_pretrained(str(path), local_files_only=True)
    except Exception as e:  # safetensors, torch and transformers each raise their own types; wrapped, not swallowed
        raise CheckpointError(f"cannot load the {kind} model from {path}: {e}") from e
    model = model.to(device=device, dtype=torch.float32).eval()
    pre = _read_json(path / "preprocessor_config.json")
    if pre is not None:
        do_normalize = bool(pre.get("do_normalize", True))
        rate = int(pre.get("sampling_rate", SAMPLE_RATE))
        if rate != SAMPLE_RATE:
            raise PluginError(f"{path} is a {rate} Hz model; syncanim's audio backends run at {SAMPLE_RATE} Hz")
    else:
        do_normalize = getattr(model.config, "feat_extract_norm", "group") == "layer"
        log.info("%s: no preprocessor_config.json in %s; do_normalize=%s from feat_extract_norm",
                 kind, path, do_normalize)
    ex = TransformersExtractor(kind, model, do_normalize, config, device)
    log.info("%s: %d layers, hidden %d, %.0f Hz, layer %d, on %s", kind, ex.num_layers, ex.dim, ex.rate,
             config.layer, device)
    return ex


def build_hubert(config: TransformersAudioConfig) -> TransformersExtractor:
    return _load("hubert", config)


def build_wav2vec2(config: TransformersAudioConfig) -> TransformersExtractor:
    return _load("wav2vec2", config)


HUBERT_SPEC = Spec(
    name="hubert",
    config_model=TransformersAudioConfig,
    build=build_hubert,
    description="HuBERT hidden states (50 Hz) via transformers, from a local save_pretrained folder",
    check=lambda c: _check("hubert", c),
)

WAV2VEC2_SPEC = Spec(
    name="wav2vec2",
    config_model=TransformersAudioConfig,
    build=build_wav2vec2,
    description="wav2vec2 hidden states (50 Hz) via transformers, from a local save_pretrained folder",
    check=lambda c: _check("wav2vec2", c),
)
