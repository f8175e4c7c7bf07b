"""The clip's speech at other speeds (syncanim/audio/tempo.py, waveform.played_at): faster, higher, and the frame
times each of its frames shows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from syncanim.audio.tempo import tempo_features, tempo_times
from syncanim.audio.waveform import Waveform, played_at


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[np.argmax(spec)])


@pytest.mark.parametrize("speed", [0.9, 1.1, 1.25])
def test_played_at_is_shorter_and_higher_by_the_speed(speed):
    rate = 16000
    t = np.arange(2 * rate) / rate
    wave = Waveform((0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), rate)
    fast = played_at(wave, speed)
    assert fast.sample_rate == rate and fast.samples.dtype == np.float32
    assert abs(len(fast.samples) - len(t) / speed) <= 1
    assert _peak_hz(fast.samples, rate) == pytest.approx(300 * speed, abs=1.0)
    # sample n of the copy is the clip at sample n * speed
    n = np.arange(4000, 20000, 997)
    np.testing.assert_allclose(fast.samples[n], 0.5 * np.sin(2 * np.pi * 300 * n * speed / rate), atol=0.02)
    with pytest.raises(ValueError, match="positive"):
        played_at(wave, 0.0)


def test_tempo_times_stay_within_the_clip():
    torch.testing.assert_close(tempo_times(2.0, 5), torch.tensor([0.0, 2.0, 4.0], dtype=torch.float64))
    half = tempo_times(0.5, 5)
    assert len(half) == 9 and float(half[-1]) == 4.0
    assert float(tempo_times(1.1, 100)[-1]) <= 99 < float(tempo_times(1.1, 100)[-1]) + 1.1


class _Loudness:
    """A made-up backend: each frame's RMS, as one feature."""

    name, per_frame, dim = "loudness", 1, 1

    def extract(self, wave, fps, num_frames=None, progress=None):
        hop = int(wave.sample_rate / fps)
        n = num_frames if num_frames is not None else len(wave.samples) // hop
        out = [np.sqrt(np.mean(wave.samples[k * hop:(k + 1) * hop] ** 2)) if k * hop < len(wave.samples) else 0.0
               for k in range(n)]
        return np.asarray(out, np.float32).reshape(n, 1, 1)


def test_tempo_features_show_the_clip_at_the_times_of_their_frames():
    """A clip loud in its second half: played 1.25 times as fast, the loudness steps up at frame 50 / 1.25 = 40."""
    rate, fps, frames = 16000, 25.0, 100
    t = np.arange(frames * rate // 25) / rate
    wave = Waveform((np.where(t >= 2.0, 0.5, 0.05) * np.sin(2 * np.pi * 200 * t)).astype(np.float32), rate)
    feats = tempo_features(_Loudness(), wave, fps, frames, (1.25,))
    assert list(feats) == [1.25] and feats[1.25].shape == (len(tempo_times(1.25, frames)), 1, 1)
    loud = feats[1.25][:, 0, 0] > 0.2
    assert not loud[:39].any() and loud[41:].all()
