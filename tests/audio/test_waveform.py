"""Reading, resampling and downmixing audio (syncanim/audio/waveform.py) from generated files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from syncanim.audio.waveform import Waveform, read_audio, write_wav
from syncanim.errors import DataError


def sine(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[np.argmax(spec)])


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def write_mp4(path: Path, audio: np.ndarray | None, rate: int = 48000, seconds: float = 1.0,
              audio_start: float = 0.0, video_start: float = 0.0) -> Path:
    """A 64x64 H.264 mp4 of ``seconds`` at 25 fps, with ``audio: [C, T] float32`` as AAC when given; each
    stream's first timestamp at its ``*_start`` seconds (as phone recordings and edited files carry)."""
    with av.open(str(path), mode="w") as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 64, "yuv420p"
        a = None
        if audio is not None:
            a = c.add_stream("aac", rate=rate)
            a.layout = "stereo" if audio.shape[0] == 2 else "mono"
        for i in range(int(seconds * 25)):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 8 % 256, np.uint8), format="rgb24")
            frame.pts, frame.time_base = i + round(video_start * 25), Fraction(1, 25)
            for pkt in v.encode(frame):
                c.mux(pkt)
        for pkt in v.encode():
            c.mux(pkt)
        if a is not None:
            step = 1024
            for i in range(0, audio.shape[1], step):
                fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, i:i + step]), format="fltp",
                                                layout=a.layout.name)
                fr.sample_rate, fr.pts = rate, i + round(audio_start * rate)
                for pkt in a.encode(fr):
                    c.mux(pkt)
            for pkt in a.encode(None):
                c.mux(pkt)
    return path


# --- the Waveform type ----------------------------------------------------------------------


def test_waveform_validates_and_measures():
    w = Waveform(sine(100, 2.0, 8000, amp=0.5), 8000)
    assert w.duration_s == 2.0
    assert abs(w.rms() - 0.5 / np.sqrt(2)) < 1e-3
    assert Waveform(np.zeros(0, np.float32), 16000).rms() == 0.0
    with pytest.raises(ValueError, match=r"\[T\]"):
        Waveform(np.zeros((2, 10), np.float32), 16000)
    with pytest.raises(ValueError, match="sample_rate"):
        Waveform(np.zeros(10, np.float32), 0)


# --- reading --------------------------------------------------------------------------------


def test_mono_16k_wav_reads_back_unchanged(tmp_path):
    x = sine(440, 1.0, 16000)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="PCM_16")
    w = read_audio(tmp_path / "a.wav")
    assert w.sample_rate == 16000 and w.samples.dtype == np.float32 and w.samples.shape == (16000,)
    np.testing.assert_allclose(w.samples, x, atol=1.5 / 32768)  # 16-bit quantisation


def test_stereo_48k_wav_is_resampled_and_downmixed(tmp_path):
    left, right = sine(440, 2.0, 48000), sine(1250, 2.0, 48000, amp=0.3)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 48000, subtype="PCM_16")
    w = read_audio(tmp_path / "s.wav", sample_rate=16000)
    assert w.sample_rate == 16000 and w.samples.ndim == 1
    assert abs(w.samples.size - 32000) <= 16  # resampler delay / flush: well under 1 ms
    spec = np.abs(np.fft.rfft(w.samples[1000:-1000]))
    freqs = np.fft.rfftfreq(w.samples[1000:-1000].size, 1 / 16000)
    top2 = sorted(freqs[np.argsort(spec)[-2:]])
    assert abs(top2[0] - 440) < 2 and abs(top2[1] - 1250) < 2  # both channels are in the mix


def test_downmix_averages_channels_rather_than_picking_one(tmp_path):
    s = sine(440, 1.0, 48000)
    sf.write(tmp_path / "anti.wav", np.stack([s, -s], 1), 48000, subtype="PCM_16")
    w = read_audio(tmp_path / "anti.wav")
    assert rms(w.samples) < 1e-3  # opposite channels cancel; picking one channel would keep 0.35


def test_downmix_of_identical_channels_keeps_the_level(tmp_path):
    s = sine(440, 1.0, 48000, amp=0.9)
    sf.write(tmp_path / "same.wav", np.stack([s, s], 1), 48000, subtype="PCM_16")
    sf.write(tmp_path / "mono.wav", s, 48000, subtype="PCM_16")
    stereo, mono = read_audio(tmp_path / "same.wav"), read_audio(tmp_path / "mono.wav")
    np.testing.assert_allclose(stereo.samples, mono.samples, atol=1e-3)


def test_resampling_removes_content_above_the_new_nyquist(tmp_path):
    sf.write(tmp_path / "hi.wav", sine(12000, 1.0, 48000), 48000, subtype="PCM_16")
    w = read_audio(tmp_path / "hi.wav", sample_rate=16000)
    # 12 kHz cannot exist at 16 kHz; without a low-pass it would alias to 4 kHz at full level (0.35 rms)
    assert rms(w.samples[500:-500]) < 0.01


def test_flac_48k_and_upsampling_8k(tmp_path):
    sf.write(tmp_path / "a.flac", sine(700, 1.5, 48000), 48000)
    w = read_audio(tmp_path / "a.flac")
    assert abs(w.duration_s - 1.5) < 2e-3 and abs(peak_hz(w.samples, 16000) - 700) < 2
    assert abs(rms(w.samples) - 0.5 / np.sqrt(2)) < 0.01
    sf.write(tmp_path / "b.wav", sine(300, 1.0, 8000), 8000, subtype="PCM_16")
    w = read_audio(tmp_path / "b.wav", sample_rate=16000)
    assert abs(w.samples.size - 16000) <= 16 and abs(peak_hz(w.samples, 16000) - 300) < 2


def test_mp4_with_stereo_48k_aac(tmp_path):
    audio = np.stack([sine(440, 2.0, 48000, amp=0.4), sine(440, 2.0, 48000, amp=0.4)])  # [2, T]
    path = write_mp4(tmp_path / "clip.mp4", audio, seconds=2.0)
    w = read_audio(path)
    assert w.sample_rate == 16000 and w.samples.ndim == 1
    assert abs(w.duration_s - 2.0) < 0.1  # AAC adds encoder priming / padding of ~1024 samples
    assert abs(peak_hz(w.samples, 16000) - 440) < 2
    assert rms(w.samples) > 0.2  # the sound survived encoding (0.4 / sqrt 2 = 0.28 per channel)


def click(rate: int, seconds: float, at: float) -> np.ndarray:
    x = np.zeros((1, int(seconds * rate)), np.float32)
    x[0, int(at * rate):int(at * rate) + rate // 100] = 0.8
    return x


def click_time(w: Waveform) -> float:
    return float(np.argmax(np.abs(w.samples) > 0.3)) / w.sample_rate


@pytest.mark.parametrize(("audio_start", "video_start", "heard_at"), [
    (0.0, 0.0, 1.0),  # in sync
    (0.2, 0.0, 1.2),  # the audio stream starts 0.2 s after the first frame: 0.2 s of silence first
    (0.0, 0.2, 0.8),  # the video starts 0.2 s late: the audio before the first frame is dropped
])
def test_audio_is_aligned_with_the_first_video_frame(tmp_path, audio_start, video_start, heard_at):
    path = write_mp4(tmp_path / "late.mp4", click(48000, 2.0, 1.0), seconds=2.0, audio_start=audio_start,
                     video_start=video_start)
    assert abs(click_time(read_audio(path)) - heard_at) < 0.01


def test_mp4_without_audio_is_a_data_error(tmp_path):
    path = write_mp4(tmp_path / "silent.mp4", None)
    with pytest.raises(DataError, match="no audio track") as e:
        read_audio(path)
    assert e.value.hint


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_audio(tmp_path / "nope.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage" * 20)
    with pytest.raises(DataError):
        read_audio(bad)


def test_write_wav_round_trip(tmp_path):
    w = Waveform(sine(523, 0.5, 16000), 16000)
    write_wav(tmp_path / "o.wav", w)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.wav"]  # no .part file left behind
    back = read_audio(tmp_path / "o.wav")
    np.testing.assert_allclose(back.samples, w.samples, atol=1.5 / 32768)
