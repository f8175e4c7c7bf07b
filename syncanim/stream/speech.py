"""Speech features of a stream: audio blocks in, each frame's features out once its audio has arrived.

A backend with windowed extraction (``samples_needed`` / ``extract_window``: ``whisper``, ``logmel``) gives
frame ``k`` as soon as the samples up to the end of its window (its own look-ahead, e.g. 40 ms for
Whisper) are in. Other backends (``hubert``, ``wav2vec2``) get the frames' audio and ``context_s`` before
it, and give a frame once the audio through its end is in.

The same object serves a whole file (:func:`stream_features`): ``render``, ``syncanim features`` and
``live`` compute the same features from the same audio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..audio.features import FeatureExtractor
from ..audio.waveform import Waveform

CONTEXT_S = 4.0  # audio before the frames given to a backend without windowed extraction (whole frames)


@dataclass(frozen=True)
class FeatureBlock:
    """The features of frames ``first .. first + n - 1``: ``features [n, P, F] float32``, each frame's
    loudness ``rms [n] float64`` (what the motion syncer hears as speech or silence)."""

    first: int
    features: np.ndarray
    rms: np.ndarray

    def __len__(self) -> int:
        return len(self.rms)


class SpeechStream:
    """Push 16 kHz mono samples as they arrive; get the features of the frames they complete.

    ``max_frames``: frames extracted per backend call at most (a long push is split; bounds the
    backend's window).
    """

    def __init__(self, extractor: FeatureExtractor, fps: float, sample_rate: int, max_frames: int = 100) -> None:
        if fps <= 0 or sample_rate <= 0 or max_frames < 1:
            raise ValueError(f"SpeechStream: bad fps={fps}, sample_rate={sample_rate} or max_frames={max_frames}")
        self.ex, self.fps, self.rate, self.max_frames = extractor, fps, sample_rate, max_frames
        self.windowed = hasattr(extractor, "samples_needed") and hasattr(extractor, "extract_window")
        self.received = 0  # samples pushed so far (absolute)
        self.buf = np.zeros(0, np.float32)  # samples [start, received)
        self.start = 0
        self.next = 0  # first frame not yet given out

    def span(self, start_frame: int, stop_frame: int) -> tuple[int, int]:
        """Absolute samples ``[a, b)`` that frames ``[start_frame, stop_frame)`` need (``a`` may be negative)."""
        if self.windowed:
            return self.ex.samples_needed(start_frame, stop_frame, self.fps)  # type: ignore[attr-defined]
        return self._sample(self._context_frame(start_frame)), self._sample(stop_frame + 0.5)

    def _context_frame(self, k: int) -> int:
        """The first frame of the context a backend without windowed extraction gets for frame ``k``."""
        return max(0, k - math.ceil(CONTEXT_S * self.fps))

    def _sample(self, frame: float) -> int:
        return int(math.ceil(frame / self.fps * self.rate))

    def frames_ready(self) -> int:
        """The end (exclusive) of the frames whose audio has all arrived."""
        k = self.next
        # the span's end grows with the last frame: step up, then back off by one
        while self.span(self.next, k + 1)[1] <= self.received:
            k += 1
        return k

    @property
    def lookahead_s(self) -> float:
        """Seconds of audio after a frame's end that its features need."""
        return max(0.0, self.span(0, 1)[1] / self.rate - 1.0 / self.fps)

    def push(self, samples: np.ndarray) -> FeatureBlock:
        """samples ``[L] float`` (16 kHz, mono) -> the features of the frames now complete (maybe none)."""
        x = np.asarray(samples, np.float32).reshape(-1)
        self.buf = np.concatenate([self.buf, x])
        self.received += len(x)
        return self._take(self.frames_ready())

    def finish(self, num_frames: int) -> FeatureBlock:
        """The end of the speech: the features of the remaining frames up to ``num_frames`` (audio past the
        end reads as silence)."""
        return self._take(max(num_frames, self.next))

    def _take(self, stop: int) -> FeatureBlock:
        parts, first = [], self.next
        while self.next < stop:
            k1 = min(stop, self.next + self.max_frames)
            parts.append(self._extract(self.next, k1))
            self.next = k1
        keep = max(0, min(self.span(self.next, self.next + 1)[0], self.next / self.fps * self.rate - self.rate))
        self._trim(int(keep))
        if not parts:
            z = self.ex.per_frame, self.ex.dim
            return FeatureBlock(first, np.zeros((0, *z), np.float32), np.zeros(0))
        return FeatureBlock(first, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    def _extract(self, k0: int, k1: int) -> tuple[np.ndarray, np.ndarray]:
        rms = _rms_abs(self.buf, self.start, self.rate, self.fps, k0, k1)
        if self.windowed:
            window = self.buf if len(self.buf) else np.zeros(1, np.float32)
            feats = self.ex.extract_window(Waveform(window, self.rate), self.start,  # type: ignore[attr-defined]
                                           self.fps, k0, k1)
        else:  # the context and the frames' audio as a clip of its own, starting at a frame
            c0 = self._context_frame(k0)
            a, b = self._sample(c0), self.span(k0, k1)[1]
            x = np.zeros(b - a, np.float32)
            lo, hi = max(a, self.start), min(b, self.received)
            if hi > lo:
                x[lo - a:hi - a] = self.buf[lo - self.start:hi - self.start]
            feats = self.ex.extract(Waveform(x, self.rate), self.fps, num_frames=k1 - c0)[k0 - c0:]
        return np.ascontiguousarray(feats, np.float32), rms

    def _trim(self, keep_from: int) -> None:
        """Drop samples before absolute index ``keep_from`` (no frame to come needs them)."""
        cut = keep_from - self.start
        if cut > 0:
            self.buf = self.buf[cut:]
            self.start = keep_from


def _rms_abs(x: np.ndarray, origin: int, rate: int, fps: float, k0: int, k1: int) -> np.ndarray:
    """RMS of frames ``[k0, k1)`` over one frame's duration centred on each frame's time (as
    :func:`syncanim.audio.framing.frame_rms`), for samples ``x: [L]`` that start at absolute sample ``origin``
    (samples outside count as zeros) -> ``[k1 - k0] float64``."""
    k = np.arange(k0, k1, dtype=np.float64)
    a = np.round((k - 0.5) / fps * rate).astype(np.int64) - origin
    b = np.round((k + 0.5) / fps * rate).astype(np.int64) - origin
    c = np.concatenate([[0.0], np.cumsum(np.asarray(x, np.float64) ** 2)])
    energy = c[np.clip(b, 0, len(x))] - c[np.clip(a, 0, len(x))]
    return np.sqrt(energy / np.maximum(b - a, 1))


def build_extractor(section: dict, registry, device) -> FeatureExtractor:
    """The model's feature backend (its ``audio`` section), on the run's ``device`` where the backend has a
    ``device`` setting the section leaves unset."""
    from ..config import PluginSection

    spec = registry.get("syncanim.asr", section["kind"])
    fields = getattr(spec.config_model, "model_fields", {})
    if "device" in fields and "device" not in section:
        section = {**section, "device": str(device)}
    return registry.build("syncanim.asr", PluginSection(**section))


def stream_features(extractor: FeatureExtractor, wave: Waveform, fps: float, num_frames: int,
                    block_s: float = 1.0) -> FeatureBlock:
    """A whole signal through a :class:`SpeechStream` in blocks of ``block_s`` seconds: the features and
    loudness of frames ``0 .. num_frames - 1`` exactly as a live stream of the same audio gets them."""
    st = SpeechStream(extractor, fps, wave.sample_rate)
    step = max(1, int(block_s * wave.sample_rate))
    parts = [st.push(wave.samples[i:i + step]) for i in range(0, len(wave.samples), step)]
    parts.append(st.finish(num_frames))
    feats = np.concatenate([p.features for p in parts])[:num_frames]
    rms = np.concatenate([p.rms for p in parts])[:num_frames]
    return FeatureBlock(0, feats, rms)
