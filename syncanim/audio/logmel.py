"""``logmel``: log-mel spectrogram features, the default audio backend (no model weights).

Signal path for 16 kHz mono audio ``x`` (samples outside the clip count as silence, i.e. zeros):

1. STFT with a 400-sample (25 ms) periodic Hann window, 400-point FFT, hop 160 (10 ms). Frame ``j``
   reads samples ``[160 j - 120, 160 j + 280)``, so it is centred at ``(j + 0.5) * 10 ms``: at 25 fps
   with 4 vectors per frame, the sub-step centres fall exactly on STFT frames (no interpolation).
2. Power ``|X|^2`` (no window normalisation), then a **Slaney** mel filterbank (Slaney's mel scale:
   linear below 1 kHz, logarithmic above; triangles in Hz between mel-spaced edges; each triangle
   scaled to unit area, ``2 / (f_right - f_left)``). This equals ``librosa.filters.mel`` defaults,
   the filterbank Whisper uses.
3. ``y = (log10(max(mel, floor)) + offset) / scale`` with fixed constants (default floor 1e-10,
   offset 4, scale 4): digital silence maps to ``(-10 + 4) / 4 = -1.5`` and a full-scale tone peaks
   near +1. No per-clip statistics, so a chunk of a stream and the whole file give the same values.

The native 100 Hz sequence is resampled to ``per_frame`` vectors per video frame by
:func:`syncanim.audio.framing.align_to_frames`.
"""

from __future__ import annotations

import logging

import numpy as np
from pydantic import Field, model_validator

from ..config import Frozen
from ..console import ProgressFn, no_progress
from ..registry import Spec
from .features import SAMPLE_RATE, check_frames, check_waveform
from .framing import align_to_frames, native_span, num_frames_for
from .waveform import Waveform

log = logging.getLogger(__name__)

N_FFT = 400  # 25 ms window at 16 kHz
HOP = 160  # 10 ms hop at 16 kHz
RATE = SAMPLE_RATE / HOP  # native frames per second (100)
LEFT = (N_FFT - HOP) // 2  # frame j starts LEFT samples before j * HOP (120)
OFFSET_S = (N_FFT / 2 - LEFT) / SAMPLE_RATE  # centre of frame 0 (5 ms)


class LogMelConfig(Frozen):
    """Settings of the ``logmel`` backend (``[prep.audio]`` with ``kind = "logmel"``)."""

    n_mels: int = Field(80, ge=8, le=128)  # mel bands = feature size F
    fmin: float = Field(0.0, ge=0.0, lt=4000.0)  # lowest filter edge, Hz
    fmax: float = Field(8000.0, gt=0.0, le=8000.0)  # highest filter edge, Hz (Nyquist at 16 kHz)
    per_frame: int = Field(4, ge=1, le=16)  # vectors per video frame; 4 at 25 fps = one per 10 ms hop
    floor: float = Field(1e-10, gt=0.0)  # mel power below this is clamped (digital silence)
    offset: float = 4.0  # y = (log10(max(mel, floor)) + offset) / scale
    scale: float = Field(4.0, gt=0.0)
    chunk_seconds: float = Field(60.0, ge=1.0)  # audio per STFT call; bounds memory, values are identical

    @model_validator(mode="after")
    def _band(self) -> LogMelConfig:
        if self.fmin >= self.fmax:
            raise ValueError(f"fmin ({self.fmin}) must be below fmax ({self.fmax})")
        return self


# --- pure math ------------------------------------------------------------------------------


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above. Returns float64."""
    f = np.asarray(hz, dtype=np.float64)
    lin = f * 3.0 / 200.0
    logstep = np.log(6.4) / 27.0
    return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-12) / 1000.0) / logstep, lin)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`. Returns float64."""
    m = np.asarray(mel, dtype=np.float64)
    logstep = np.log(6.4) / 27.0
    return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * 200.0 / 3.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-normalised triangular mel filters: ``[n_mels, n_fft // 2 + 1] float32``.

    Band ``m`` rises from edge ``m`` to peak ``m + 1`` and falls to edge ``m + 2`` (edges evenly spaced
    on the Slaney mel scale from ``fmin`` to ``fmax``), linear in Hz, scaled to unit area.
    """
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)  # [K]
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # [M+2]
    width = np.diff(edges)  # [M+1]
    ramps = edges[:, None] - freqs[None, :]  # [M+2, K]
    rise = -ramps[:-2] / width[:-1, None]  # [M, K]
    fall = ramps[2:] / width[1:, None]  # [M, K]
    weights = np.maximum(0.0, np.minimum(rise, fall))  # [M, K]
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def power_spectrogram(samples: np.ndarray, n_fft: int = N_FFT, hop: int = HOP) -> np.ndarray:
    """``|STFT|^2`` of ``samples: [L] float32`` with a periodic Hann window, no padding.

    Returns ``[T, n_fft // 2 + 1] float64`` with ``T = (L - n_fft) // hop + 1``; frame ``t`` reads
    ``samples[t * hop : t * hop + n_fft]``. Needs ``L >= n_fft``.
    """
    if samples.ndim != 1 or samples.shape[0] < n_fft:
        raise ValueError(f"samples must be [L] with L >= {n_fft}, got shape {tuple(samples.shape)}")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    frames = np.lib.stride_tricks.sliding_window_view(samples.astype(np.float64), n_fft)[::hop]  # [T, n_fft]
    spec = np.fft.rfft(frames * window, axis=1)  # [T, K]
    return spec.real**2 + spec.imag**2  # float64: windows of any length give the same values


def log_mel(power: np.ndarray, filterbank: np.ndarray, floor: float, offset: float, scale: float) -> np.ndarray:
    """``(log10(max(power @ filterbank.T, floor)) + offset) / scale``.

    ``power: [T, K] float``, ``filterbank: [M, K] float`` -> ``[T, M] float32``.
    """
    mel = power @ filterbank.astype(np.float64).T  # [T, M]
    return ((np.log10(np.maximum(mel, floor)) + offset) / scale).astype(np.float32)


def stft_input(samples: np.ndarray, first_sample: int, j0: int, j1: int) -> np.ndarray:
    """The samples STFT frames ``[j0, j1)`` read, from a window of a longer signal.

    ``samples: [W] float32`` holds absolute samples ``[first_sample, first_sample + W)``; everything
    else counts as zeros. Returns ``[(j1 - j0 - 1) * HOP + N_FFT] float32`` starting at absolute
    sample ``j0 * HOP - LEFT``.
    """
    a = j0 * HOP - LEFT
    out = np.zeros((j1 - j0 - 1) * HOP + N_FFT, dtype=np.float32)  # [L]
    lo, hi = max(a, first_sample), min(a + out.size, first_sample + samples.size)
    if hi > lo:
        out[lo - a:hi - a] = samples[lo - first_sample:hi - first_sample]
    return out


# --- the backend ----------------------------------------------------------------------------


class LogMelExtractor:
    """Log-mel features: ``extract`` gives ``[N, per_frame, n_mels] float32`` (see module docstring)."""

    name = "logmel"

    def __init__(self, config: LogMelConfig) -> None:
        self.config = config
        self.per_frame = config.per_frame
        self.dim = config.n_mels
        self._fb = mel_filterbank(config.n_mels, N_FFT, SAMPLE_RATE, config.fmin, config.fmax)  # [M, K]

    def _span(self, start_frame: int, stop_frame: int, fps: float) -> tuple[int, int]:
        return native_span(start_frame, stop_frame, fps, self.per_frame, RATE, OFFSET_S)

    def samples_needed(self, start_frame: int, stop_frame: int, fps: float) -> tuple[int, int]:
        """Absolute sample range ``[a, b)`` that fully determines frames ``[start_frame, stop_frame)``.

        A streaming caller passing a window that covers ``[a, b)`` to :meth:`extract_window` gets
        the same values as whole-file extraction. ``a`` may be negative (before the clip).
        """
        j0, j1 = self._span(start_frame, stop_frame, fps)
        return j0 * HOP - LEFT, (j1 - 1) * HOP - LEFT + N_FFT

    def extract_window(
        self, window: Waveform, first_sample: int, fps: float, start_frame: int, stop_frame: int
    ) -> np.ndarray:
        """Features of frames ``[start_frame, stop_frame)`` from a window of a longer signal.

        ``window.samples: [W] float32`` are absolute samples ``[first_sample, first_sample + W)`` at
        16 kHz; samples outside the window count as silence. Returns
        ``[stop_frame - start_frame, per_frame, n_mels] float32``; exact where the window covers
        :meth:`samples_needed`, else different only within one STFT window (25 ms) of its edges.
        """
        check_waveform(window)
        check_frames(fps, stop_frame - start_frame)
        if stop_frame == start_frame:
            return np.zeros((0, self.per_frame, self.dim), np.float32)
        j0, j1 = self._span(start_frame, stop_frame, fps)
        x = stft_input(window.samples.astype(np.float32, copy=False), first_sample, j0, j1)  # [L]
        c = self.config
        seq = log_mel(power_spectrogram(x), self._fb, c.floor, c.offset, c.scale)  # [j1-j0, M]
        return align_to_frames(seq, RATE, fps, self.per_frame, start_frame, stop_frame,
                               offset_s=OFFSET_S + j0 / RATE)

    def extract(
        self, wave: Waveform, fps: float, num_frames: int | None = None, progress: ProgressFn = no_progress
    ) -> np.ndarray:
        """Features for video frames ``0 .. N-1``: ``[N, per_frame, n_mels] float32``.

        ``wave``: 16 kHz mono, non-empty (DataError otherwise). Frames past the end of the audio
        read silence; ``N`` defaults to ``ceil(duration * fps)``.
        """
        check_waveform(wave)
        check_frames(fps, num_frames)
        n = num_frames_for(wave.duration_s, fps) if num_frames is None else num_frames
        step = max(1, int(self.config.chunk_seconds * fps))
        out = np.empty((n, self.per_frame, self.dim), np.float32)
        progress("audio features", 0, n)
        for s in range(0, n, step):
            e = min(n, s + step)
            out[s:e] = self.extract_window(wave, 0, fps, s, e)
            progress("audio features", e, n)
        log.debug("logmel: %d frames at %.3g fps from %.2f s of audio", n, fps, wave.duration_s)
        return out


def build(config: LogMelConfig) -> LogMelExtractor:
    return LogMelExtractor(config)


SPEC = Spec(
    name="logmel",
    config_model=LogMelConfig,
    build=build,
    description="log-mel spectrogram (80 Slaney mels, 25 ms / 10 ms), fixed normalisation; no weights",
)
