"""The stream's speech features: the same however the audio is cut into blocks, and (for a backend whose
window covers all a frame needs) the same as whole-file extraction."""

from __future__ import annotations

import numpy as np
import pytest

from syncanim.audio.framing import frame_rms
from syncanim.audio.logmel import LogMelConfig, LogMelExtractor
from syncanim.audio.waveform import Waveform
from syncanim.stream.speech import SpeechStream, stream_features


def _speech(seconds: float = 3.0, rate: int = 16000) -> Waveform:
    t = np.arange(int(seconds * rate)) / rate
    return Waveform((0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * np.sin(2 * np.pi * 180 * t)).astype(np.float32),
                    rate)


@pytest.mark.parametrize("block", [37, 320, 16000])
def test_blocks_of_any_size_give_the_whole_file_features(block):
    ex, w = LogMelExtractor(LogMelConfig()), _speech()
    n = 75
    st = SpeechStream(ex, 25.0, w.sample_rate)
    parts = [st.push(w.samples[i:i + block]) for i in range(0, len(w.samples), block)] + [st.finish(n)]
    assert [p.first for p in parts if len(p)] == sorted({p.first for p in parts if len(p)})  # in order, no gaps
    feats = np.concatenate([p.features for p in parts])
    rms = np.concatenate([p.rms for p in parts])
    np.testing.assert_array_equal(feats, ex.extract(w, 25.0, num_frames=n))
    np.testing.assert_allclose(rms, frame_rms(w.samples, w.sample_rate, 25.0, 0, n), rtol=1e-9, atol=1e-12)
    assert st.buf.size < 2 * w.sample_rate  # old audio is let go


def test_a_frame_comes_out_once_its_audio_and_lookahead_are_in():
    ex, w = LogMelExtractor(LogMelConfig()), _speech()
    st = SpeechStream(ex, 25.0, w.sample_rate)
    need = st.span(0, 1)[1]  # samples frame 0 needs
    assert len(st.push(w.samples[:need - 1])) == 0
    assert len(st.push(w.samples[need - 1:need])) == 1
    assert st.lookahead_s == pytest.approx(need / w.sample_rate - 0.04)


def test_stream_features_pads_frames_past_the_audio():
    ex, w = LogMelExtractor(LogMelConfig()), _speech(1.0)
    out = stream_features(ex, w, 25.0, 30)
    assert out.features.shape == (30, ex.per_frame, ex.dim) and out.rms[-3:].max() == 0


def test_a_backend_without_windows_gets_context_and_gives_the_same_frames():
    class WholeClipsOnly:  # a backend that can only extract whole clips (like hubert / wav2vec2)
        def __init__(self):
            self.inner = LogMelExtractor(LogMelConfig())
            self.name, self.per_frame, self.dim = "whole", self.inner.per_frame, self.inner.dim

        def extract(self, wave, fps, num_frames=None, progress=None):
            return self.inner.extract(wave, fps, num_frames=num_frames)

    ex, w = WholeClipsOnly(), _speech(6.0)
    n = 150
    st = SpeechStream(ex, 25.0, w.sample_rate)
    assert not st.windowed
    parts = [st.push(w.samples[i:i + 320]) for i in range(0, len(w.samples), 320)] + [st.finish(n)]
    feats = np.concatenate([p.features for p in parts])
    np.testing.assert_allclose(feats, ex.inner.extract(w, 25.0, num_frames=n), atol=1e-5)
    assert st.buf.size <= (4.0 + 1.1) * w.sample_rate  # the context, not the whole signal
