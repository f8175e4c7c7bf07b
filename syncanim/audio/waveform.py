"""Audio that carries its sample rate, and reading/writing it from any container PyAV can open."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError


@dataclass(frozen=True)
class Waveform:
    """Mono audio. ``samples: [T] float32`` in [-1, 1]; ``sample_rate`` in Hz."""

    samples: np.ndarray
    sample_rate: int

    def __post_init__(self) -> None:
        if self.samples.ndim != 1:
            raise ValueError(f"Waveform samples must be [T], got shape {self.samples.shape}")
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    def rms(self) -> float:
        return float(np.sqrt(np.mean(np.square(self.samples, dtype=np.float64)))) if len(self.samples) else 0.0


def read_audio(path: str | os.PathLike[str], sample_rate: int = 16000) -> Waveform:
    """Decode the first audio stream of any file PyAV/FFmpeg can read, downmixed to mono and resampled.

    Raises DataError for a missing or unreadable file, or one without an audio stream.
    """
    import av

    p = Path(path)
    if not p.is_file():
        raise DataError(f"audio file not found: {p}")
    try:
        with av.open(str(p)) as container:
            if not container.streams.audio:
                raise DataError(f"{p.name} has no audio track", hint="give a file with sound, or a separate --audio file")
            # resample each channel, then average them: FFmpeg's own downmix scales by 1/sqrt(2),
            # which makes centred stereo speech 3 dB louder than the same mono signal
            resampler = av.AudioResampler(format="fltp", rate=sample_rate)
            chunks: list[np.ndarray] = []
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().mean(axis=0))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().mean(axis=0))
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise DataError(f"cannot decode audio from {p.name}: {e}") from e
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise DataError(f"{p.name}: the audio track is empty or could not be decoded")
    return Waveform(np.clip(samples, -1.0, 1.0), sample_rate)


def write_wav(path: str | os.PathLike[str], wave: Waveform) -> None:
    """Write 16-bit PCM WAV (atomically: a temporary file renamed into place)."""
    import soundfile as sf

    p = Path(path)
    tmp = p.with_name(p.name + ".part")
    sf.write(str(tmp), wave.samples, wave.sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, p)
