"""Blinks: found in a subject's expression track, and generated causally for new speech.

**Fitting** (:func:`fit_blinks`): the eyes' closure track (the ``blink_left``/``blink_right`` expression
coefficients, 0 open .. 1 closed) is searched for blinks (:func:`find_blinks`: both eyes together cross
``close`` and the event ends below ``release``, within 0.5 s); the subject's blink is the median of
the closure around each blink's peak, per eye, over the open-eye baseline; the rate is the number of
blinks per minute of the clip, kept within ``[min_rate, max_rate]`` (and ``default_rate`` when the clip
has fewer than 3 blinks, with a raised-cosine blink).

**Calibrating** (:func:`calibrate_blinks`): blinks at pauses come on top of the timer's, so the
timer's mean interval is lengthened until the generator, run over the subject's own speech, blinks
at the subject's rate.

**Generating** (:class:`BlinkState`): a renewal process. After each blink the wait to the next is
drawn from a gamma distribution (shape ``shape``, mean the subject's interval), never shorter than
``refractory_s``; when speech stops (the end of a speaking run of at least ``pause_after_s``), the
subject blinks with probability ``pause_prob`` if the last blink is at least ``refractory_s`` old, as
people blink at the pauses of their speech. Silence keeps blinking at the subject's rate. Each frame
only needs the frames before it: the generator runs on a live stream as on a file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class BlinkModel:
    """The subject's blinks. profile: [L, 2] closure added to the baseline over a blink (both eyes), peak at
    ``peak``; baseline: [2] open-eye closure; rate per minute; the generator's settings (module doc)."""

    profile: np.ndarray
    peak: int
    baseline: np.ndarray
    rate_per_min: float
    found: int
    shape: float = 3.0
    refractory_s: float = 0.6
    pause_prob: float = 0.5
    pause_after_s: float = 0.6
    interval_scale: float = 1.0  # the timer's mean interval over the subject's (calibrate_blinks)

    def interval_frames(self, fps: float) -> float:
        """Mean frames the timer waits between blinks."""
        return 60.0 * fps / self.rate_per_min * self.interval_scale


def find_blinks(closure: np.ndarray, fps: float, close: float = 0.5, release: float = 0.25,
                max_s: float = 0.5) -> list[int]:
    """Peak frames of the blinks in ``closure: [N, 2]`` (both eyes, 0 open .. 1 closed; NaN = no face)."""
    c = np.nan_to_num(np.asarray(closure, np.float64), nan=0.0)
    both = c.min(1)  # both eyes must close
    mean = c.mean(1)
    peaks: list[int] = []
    start = None
    for t in range(len(c) + 1):
        v = both[t] if t < len(c) else -1.0
        if start is None:
            if v >= close:
                start = t
                while start > 0 and mean[start - 1] >= release:
                    start -= 1
        elif mean[t] < release if t < len(c) else True:
            if (t - start) <= max_s * fps:
                peaks.append(start + int(np.argmax(mean[start:t])))
            start = None
    return peaks


def raised_cosine(length: int) -> np.ndarray:
    """A bump of ``length`` frames, 0 at both ends and 1 at the middle: [L]."""
    t = np.arange(length) / max(length - 1, 1)
    return 0.5 - 0.5 * np.cos(2 * math.pi * t)


def fit_blinks(closure: np.ndarray, fps: float, *, min_rate: float = 8.0, max_rate: float = 30.0,
               default_rate: float = 15.0) -> BlinkModel:
    """The subject's :class:`BlinkModel` from their closure track ``closure: [N, 2]`` at ``fps``."""
    c = np.asarray(closure, np.float64)
    peaks = find_blinks(c, fps)
    before = max(2, int(round(0.16 * fps)))
    after = max(3, int(round(0.24 * fps)))
    length = before + after + 1
    ok = np.isfinite(c).all(1)
    blinking = np.zeros(len(c), bool)
    for p in peaks:
        blinking[max(0, p - before):p + after + 1] = True
    rest = c[ok & ~blinking]
    baseline = np.median(rest, 0) if len(rest) else np.zeros(2)
    windows = [c[p - before:p + after + 1] for p in peaks if p - before >= 0 and p + after < len(c)]
    windows = [w for w in windows if np.isfinite(w).all()]
    minutes = ok.sum() / fps / 60.0
    if len(windows) >= 3 and minutes > 0:
        profile = np.clip(np.median(np.stack(windows), 0) - baseline, 0.0, None)
        rate = float(np.clip(len(peaks) / minutes, min_rate, max_rate))
    else:
        profile = np.repeat(raised_cosine(length)[:, None], 2, 1) * np.clip(1.0 - baseline, 0.5, 1.0)
        rate = default_rate
    return BlinkModel(profile=profile.astype(np.float32), peak=before, baseline=baseline.astype(np.float32),
                      rate_per_min=rate, found=len(peaks))


class BlinkState:
    """The causal blink generator of one stream (module doc). ``step`` gives one frame's closure [2]."""

    def __init__(self, model: BlinkModel, fps: float, rng: np.random.Generator) -> None:
        self.m, self.fps, self.rng = model, fps, rng
        self.refractory = max(1, int(round(model.refractory_s * fps)))
        self.pos = -1  # frame within the running blink's profile, -1: none running
        self.since = 0  # frames since the last blink started
        self.speaking = 0  # frames of the current speaking run
        self.wait = self._draw()

    def _draw(self) -> int:
        mean = self.m.interval_frames(self.fps)
        return max(self.refractory, int(round(self.rng.gamma(self.m.shape, mean / self.m.shape))))

    def _start(self) -> None:
        self.pos, self.since = 0, 0
        self.wait = self._draw()

    def step(self, speech: bool) -> np.ndarray:
        """The next frame's closure of both eyes [2] (float32); ``speech``: whether the frame has speech."""
        pause = (not speech) and self.speaking >= self.m.pause_after_s * self.fps
        self.speaking = self.speaking + 1 if speech else 0
        u = self.rng.random()
        due = self.since >= self.wait or (pause and self.since >= self.refractory and u < self.m.pause_prob)
        if self.pos < 0 and due:
            self._start()
        out = self.m.baseline.copy()
        if self.pos >= 0:
            out = out + self.m.profile[self.pos]
            self.pos += 1
            if self.pos >= len(self.m.profile):
                self.pos = -1
        self.since += 1
        return out.astype(np.float32)


def generated_rate(model: BlinkModel, speech: np.ndarray, fps: float, seeds: int = 8) -> float:
    """Blinks per minute the generator makes over the speech flags ``speech: [N] bool`` (mean over ``seeds`` runs)."""
    count = 0
    for seed in range(seeds):
        state = BlinkState(model, fps, np.random.default_rng(seed))
        for flag in speech.tolist():
            state.step(flag)
            count += state.pos == 1  # a blink started at this step
    return count / seeds / (len(speech) / fps / 60.0)


def calibrate_blinks(model: BlinkModel, speech: np.ndarray, fps: float, iterations: int = 3) -> BlinkModel:
    """``model`` with the timer's interval scaled so the generator blinks at ``model.rate_per_min`` over the
    subject's speech flags ``speech: [N] bool`` (module doc)."""
    if len(speech) < fps * 10:
        return model
    for _ in range(iterations):
        rate = generated_rate(model, speech, fps)
        if rate <= 0:
            break
        scale = float(np.clip(model.interval_scale * rate / model.rate_per_min, 0.5, 3.0))
        model = replace(model, interval_scale=scale)
    return model
