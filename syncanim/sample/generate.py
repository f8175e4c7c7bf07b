"""The built-in sample: a short talking clip that syncanim makes from a public-domain photo.

``generate_sample`` animates ``skimage.data.astronaut()`` (NASA, public domain) with speech from
espeak-ng: the jaw follows the smoothed loudness of the speech, the eyes blink a few times, and the
head sways by a few degrees and pixels. It writes ``<name>.mp4`` (H.264 + AAC) and ``<name>.json``
(a ``SampleTruth``: the per-frame animation values) side by side. The same ``SampleConfig`` gives
the same frames and audio on every run.

Fitting the speech into ``config.seconds``: the speech starts after ``LEAD_S`` of silence and should
end ``TAIL_S`` before the clip does. Speech that is too long at ``BASE_WPM`` is synthesised again
faster (up to ``MAX_WPM``); if it still does not fit, it is cut at the last pause before the limit
(or at the limit when there is no pause), with a short fade-out. The rest is padded with silence.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..audio.tts import speak
from ..audio.waveform import Waveform
from ..config import SampleConfig
from ..console import ProgressFn, no_progress
from ..data.files import write_json_atomic
from ..errors import ConfigError
from ..media.video import VideoWriter
from .face import ASTRONAUT, FaceGeometry, FacePose, animate_face

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
LEAD_S = 0.4  # silence before the speech starts
TAIL_S = 0.3  # silence kept after the speech ends (when the speech fits)
BASE_WPM = 150
MAX_WPM = 190  # faster espeak-ng speech stops sounding natural
BLINK_EVERY_S = 2.8  # one blink per this many seconds (at least one)
MAX_ANGLE_DEG = 2.5  # head roll amplitude
MAX_SHIFT_PX = (4.0, 2.5)  # head translation amplitude at 512x512 (x, y)
_DECIMALS = 4  # truth values are rounded to this, and frames are rendered from the rounded values


@dataclass(frozen=True)
class SampleTruth:
    """What was animated, per frame. Written next to the video as ``<name>.json``.

    ``mouth_open`` and ``blink`` are in [0, 1] (blink 1 = eyes fully closed); ``head_angle_deg`` is the
    in-plane head rotation (counter-clockwise on screen) about ``head_pivot_px``, followed by the
    translation ``head_shift_px`` (``[dx, dy]`` per frame). Pixel values are at ``size`` x ``size``.
    """

    fps: float
    num_frames: int
    duration_s: float
    size: int
    seed: int
    mouth_open: list[float]
    blink: list[float]
    blink_frames: list[int]  # the frame at the middle of each blink (blink == 1 there)
    head_angle_deg: list[float]
    head_shift_px: list[list[float]]
    head_pivot_px: list[float] = field(default_factory=list)
    speech_span_s: list[float] = field(default_factory=list)  # [start, end] of the speech in the clip
    words_per_minute: int = BASE_WPM

    def __post_init__(self) -> None:
        n = self.num_frames
        for name in ("mouth_open", "blink", "head_angle_deg", "head_shift_px"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"SampleTruth.{name} has {len(getattr(self, name))} values, expected {n}")

    def pose(self, k: int) -> FacePose:
        """The face pose of frame ``k``."""
        dx, dy = self.head_shift_px[k]
        return FacePose(mouth_open=self.mouth_open[k], blink=self.blink[k], angle_deg=self.head_angle_deg[k],
                        shift=(dx, dy))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleTruth:
        return cls(**data)


# --- the photo -------------------------------------------------------------------------------------


def astronaut(size: int = 512) -> tuple[np.ndarray, FaceGeometry]:
    """The sample's photo at ``size`` x ``size`` (``[S, S, 3] uint8`` RGB) and its face geometry."""
    from skimage import data

    img = np.ascontiguousarray(data.astronaut()[..., :3])
    h, w = img.shape[:2]
    if (h, w) != (512, 512):
        raise RuntimeError(f"skimage's astronaut photo is {w}x{h}, expected 512x512")
    if size == 512:
        return img, ASTRONAUT
    interp = cv2.INTER_AREA if size < 512 else cv2.INTER_CUBIC
    return cv2.resize(img, (size, size), interpolation=interp), ASTRONAUT.scaled(size / 512)


# --- speech ----------------------------------------------------------------------------------------


def _frame_rms(x: np.ndarray, hop: int, win: int) -> np.ndarray:
    """RMS of windows of ``win`` samples every ``hop`` samples: ``x: [T]`` -> ``[T // hop]`` (window centred)."""
    n = len(x) // hop
    if n == 0:
        return np.zeros(0, np.float32)
    pad = np.pad(x.astype(np.float64), (win // 2, win))
    c = np.concatenate([[0.0], np.cumsum(pad * pad)])
    starts = np.arange(n) * hop
    return np.sqrt((c[starts + win] - c[starts]) / win).astype(np.float32)


def _trim_silence(x: np.ndarray, sr: int) -> np.ndarray:
    """``x: [T]`` without the near-silent stretches at both ends."""
    hop = sr // 100
    rms = _frame_rms(x, hop, hop)
    if rms.size == 0 or rms.max() <= 0:
        return x
    loud = np.nonzero(rms > 0.02 * rms.max())[0]
    return x[max(0, loud[0] * hop - hop):min(len(x), (loud[-1] + 2) * hop)]


def _cut_at_pause(x: np.ndarray, sr: int, limit: int) -> np.ndarray:
    """``x: [T]`` shortened to at most ``limit`` samples, ending in the last pause before ``limit``."""
    hop = sr // 100
    rms = _frame_rms(x[:limit], hop, 3 * hop)
    look = min(len(rms), int(1.5 * sr / hop))  # search the last 1.5 s
    end = limit
    if look > 0 and rms.max() > 0:
        tail = rms[len(rms) - look:]
        quiet = np.nonzero(tail < 0.05 * rms.max())[0]
        if quiet.size:
            end = (len(rms) - look + int(quiet[-1])) * hop
    y = x[:end].copy()
    fade = min(len(y), int(0.03 * sr))
    if fade:
        y[len(y) - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return y


def sample_speech(config: SampleConfig, num_samples: int) -> tuple[Waveform, tuple[float, float], int]:
    """The clip's soundtrack: ``Waveform`` of exactly ``num_samples`` samples at 16 kHz.

    Also returns the speech span ``(start_s, end_s)`` and the speaking rate used. See the module
    docstring for how the speech is fitted.
    """
    sr = SAMPLE_RATE
    lead = int(round(LEAD_S * sr))
    room = num_samples - lead - int(round(TAIL_S * sr))
    if room <= sr // 2:
        raise ConfigError(f"sample.seconds={config.seconds} leaves no room for speech")
    wpm = BASE_WPM
    speech = _trim_silence(speak(config.text, config.voice, sr, wpm).samples, sr)
    if len(speech) > room:
        wpm = min(MAX_WPM, int(math.ceil(BASE_WPM * len(speech) / room * 1.03)))
        speech = _trim_silence(speak(config.text, config.voice, sr, wpm).samples, sr)
    if len(speech) > room:
        limit = num_samples - lead
        log.info("the sample text is longer than %.1f s; cutting it at a pause", config.seconds)
        speech = _cut_at_pause(speech, sr, limit)
    samples = np.zeros(num_samples, np.float32)
    samples[lead:lead + len(speech)] = speech
    return Waveform(samples, sr), (lead / sr, (lead + len(speech)) / sr), wpm


def mouth_track(wave: Waveform, fps: float, num_frames: int) -> np.ndarray:
    """Mouth opening per frame from the smoothed speech loudness: ``[N] float64`` in [0, 1].

    Loudness is RMS over 25 ms every 10 ms, in dB, smoothed over ~25 ms, mapped from 28 dB below the
    loud level (the 90th percentile of the speech; 0, closed) to 2 dB above it (1) through a power of
    1.3 (so vowels open the mouth more than the consonants between them), then sampled at the frame times.
    """
    sr = wave.sample_rate
    hop = sr // 100
    rms = _frame_rms(wave.samples, hop, int(0.025 * sr))  # [T / hop]
    if rms.size == 0 or rms.max() <= 0:
        return np.zeros(num_frames)
    db = 20.0 * np.log10(rms.astype(np.float64) + 1e-6)
    loud = np.percentile(db[rms > 0.05 * rms.max()], 90)
    kernel = np.exp(-0.5 * (np.arange(-8, 9) / 2.5) ** 2)  # Gaussian, sigma 25 ms
    db = np.convolve(db, kernel / kernel.sum(), mode="same")
    level = np.clip((db - (loud - 28.0)) / 30.0, 0.0, 1.0) ** 1.3
    t = np.arange(num_frames) / fps
    return np.clip(np.interp(t, np.arange(len(level)) * hop / sr, level), 0.0, 1.0)


# --- blinks and head motion ------------------------------------------------------------------------


def _smooth(v: np.ndarray) -> np.ndarray:
    return v * v * (3.0 - 2.0 * v)


def blink_curve(t: np.ndarray, center: float) -> np.ndarray:
    """Eyelid closure of one blink centred at ``center`` s, at times ``t: [N]`` s -> ``[N]`` in [0, 1].

    Closes in 70 ms, stays shut 30 ms, opens in 110 ms (210 ms in all).
    """
    close, hold, reopen = 0.07, 0.03, 0.11
    d = t - center
    rise = np.clip((d + hold / 2 + close) / close, 0.0, 1.0)
    fall = np.clip((d - hold / 2) / reopen, 0.0, 1.0)
    return np.where(d < 0, _smooth(rise), 1.0 - _smooth(fall))


def blink_track(rng: np.random.Generator, num_frames: int, fps: float) -> tuple[np.ndarray, list[int]]:
    """Blinks at random frames, one per ``BLINK_EVERY_S`` on average: ``([N] in [0, 1], centre frames)``."""
    duration = num_frames / fps
    count = max(1, int(round(duration / BLINK_EVERY_S)))
    margin = min(0.6, duration / 4)
    seg = (duration - 2 * margin) / count
    t = np.arange(num_frames) / fps
    blink = np.zeros(num_frames)
    centres: list[int] = []
    for i in range(count):
        c = margin + seg * (i + 0.25 + 0.5 * rng.random())
        k = min(num_frames - 1, int(round(c * fps)))
        centres.append(k)
        blink = np.maximum(blink, blink_curve(t, k / fps))
    return blink, centres


def _sway(rng: np.random.Generator, t: np.ndarray, amplitude: float) -> np.ndarray:
    """A smooth random wobble: three slow sines (0.08-0.45 Hz) scaled to peak at ``amplitude``."""
    freq = rng.uniform(0.08, 0.45, 3)
    phase = rng.uniform(0.0, 2 * np.pi, 3)
    weight = rng.uniform(0.5, 1.0, 3)
    x = (weight[:, None] * np.sin(2 * np.pi * freq[:, None] * t[None] + phase[:, None])).sum(0)
    peak = np.abs(x).max()
    return x * (amplitude / peak) if peak > 0 else x


def head_track(rng: np.random.Generator, num_frames: int, fps: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Head roll ``[N]`` degrees and shift ``[N, 2]`` pixels (at ``size``), smooth and small."""
    t = np.arange(num_frames) / fps
    angle = _sway(rng, t, MAX_ANGLE_DEG)
    s = size / 512
    shift = np.stack([_sway(rng, t, MAX_SHIFT_PX[0] * s), _sway(rng, t, MAX_SHIFT_PX[1] * s)], axis=1)
    return angle, shift


# --- putting it together ---------------------------------------------------------------------------


def plan_sample(config: SampleConfig) -> tuple[SampleTruth, Waveform]:
    """Everything about the clip except the pixels: the per-frame truth and the soundtrack."""
    num_frames = int(round(config.seconds * config.fps))
    duration = num_frames / config.fps
    wave, span, wpm = sample_speech(config, int(round(duration * SAMPLE_RATE)))
    rng = np.random.default_rng(config.seed)
    blink, centres = blink_track(rng, num_frames, config.fps)
    angle, shift = head_track(rng, num_frames, config.fps, config.size)
    mouth = mouth_track(wave, config.fps, num_frames)
    pivot = [v * config.size / 512 for v in ASTRONAUT.head_pivot]

    def r(a: np.ndarray) -> list:
        return np.round(a, _DECIMALS).tolist()

    truth = SampleTruth(
        fps=float(config.fps), num_frames=num_frames, duration_s=duration, size=config.size, seed=config.seed,
        mouth_open=r(mouth), blink=r(blink), blink_frames=centres, head_angle_deg=r(angle),
        head_shift_px=r(shift), head_pivot_px=r(np.asarray(pivot)), speech_span_s=r(np.asarray(span)),
        words_per_minute=wpm,
    )
    return truth, wave


def render_frames(truth: SampleTruth) -> Iterator[np.ndarray]:
    """The clip's frames, ``[S, S, 3] uint8`` RGB each, from the animation values in ``truth``."""
    img, geom = astronaut(truth.size)
    for k in range(truth.num_frames):
        yield animate_face(img, geom, truth.pose(k))


def generate_sample(out: str | Path, config: SampleConfig, progress: ProgressFn = no_progress) -> SampleTruth:
    """Write the sample clip to ``out`` (an ``.mp4``) and its truth to the ``.json`` beside it.

    Both files appear only once complete. Returns the truth that was written.
    """
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise ConfigError(f"the sample is written as an .mp4 file, got {out.name!r}")
    if config.size % 2:
        raise ConfigError(f"sample.size must be even for H.264, got {config.size}")
    truth, wave = plan_sample(config)
    n = truth.num_frames
    progress("sample", 0, n)
    with VideoWriter(out, truth.fps, truth.size, truth.size, audio=wave) as writer:
        for k, frame in enumerate(render_frames(truth)):
            writer.write(frame)
            progress("sample", k + 1, n)
    write_json_atomic(out.with_suffix(".json"), truth.to_dict())
    log.info("wrote %s: %d frames at %g fps, %dx%d, speech %.1f-%.1f s at %d wpm", out, n, truth.fps,
             truth.size, truth.size, truth.speech_span_s[0], truth.speech_span_s[1], truth.words_per_minute)
    return truth
