"""Audio that carries its sample rate, and reading/writing it from any container PyAV can open."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..inputs import check_input_file, ffmpeg_reason


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
    """Decode the first audio stream of any file PyAV/FFmpeg can read, downmixed to mono and resampled,
    aligned with the file's video (:func:`_audio_lead`).

    Raises DataError for a missing or unreadable file, or one without an audio stream.
    """
    p = Path(path)
    check_input_file(p, "audio file")
    if p.suffix.lower() == ".wav":
        wave = _read_wav_at(p, sample_rate)
        if wave is not None:
            return wave
    import av

    try:
        with av.open(str(p)) as container:
            if not container.streams.audio:
                raise DataError(f"{p.name} has no audio track", hint="give a file with sound, or a separate --audio file")
            stream = container.streams.audio[0]
            # resample each channel, then average them: FFmpeg's own downmix scales by 1/sqrt(2),
            # which makes centred stereo speech 3 dB louder than the same mono signal
            resampler = av.AudioResampler(format="fltp", rate=sample_rate)
            chunks: list[np.ndarray] = []
            first: float | None = None
            for frame in container.decode(stream):
                if first is None and frame.time is not None:
                    first = float(frame.time)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().mean(axis=0))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().mean(axis=0))
            lead = _audio_lead(container, first)
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise DataError(f"cannot decode audio from {p.name}: {ffmpeg_reason(e)}") from e
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise DataError(f"{p.name}: the audio track is empty or could not be decoded")
    shift = int(round(lead * sample_rate))
    samples = np.concatenate([np.zeros(shift, np.float32), samples]) if shift > 0 else samples[-shift:]
    if samples.size == 0:
        raise DataError(f"{p.name}: the audio track ends before the video starts")
    return Waveform(np.clip(samples, -1.0, 1.0), sample_rate)


def _audio_lead(container, first_audio: float | None) -> float:
    """Seconds from the first video frame to the first audio sample (negative: the audio starts first).

    In a file with a video stream, sample 0 of the returned audio is at the video's first frame, as
    :func:`syncanim.media.video.iter_frames` counts frames: a stream start time or an edit list that
    delays the audio (phone recordings, edited files) becomes leading silence, audio before the first
    frame is dropped. An audio-only file starts at its first sample.
    """
    if first_audio is None or not container.streams.video:
        return 0.0
    v = container.streams.video[0]
    if v.start_time is None or v.time_base is None:
        return 0.0
    return first_audio - float(v.start_time * v.time_base)


def _read_wav_at(path: Path, sample_rate: int) -> Waveform | None:
    """A WAV file already at ``sample_rate`` (as prep writes them), read directly; None for any other."""
    import soundfile as sf

    try:
        if sf.info(str(path)).samplerate != sample_rate:
            return None
        data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError):
        return None
    if data.size == 0:
        return None
    return Waveform(np.clip(data.mean(axis=1), -1.0, 1.0).astype(np.float32), sample_rate)


def write_wav(path: str | os.PathLike[str], wave: Waveform) -> None:
    """Write 16-bit PCM WAV (atomically: a temporary file renamed into place)."""
    import soundfile as sf

    p = Path(path)
    tmp = p.with_name(p.name + ".part")
    sf.write(str(tmp), wave.samples, wave.sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, p)
