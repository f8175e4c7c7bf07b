"""The ``logmel`` backend (syncanim/audio/logmel.py) and the extractor result type (features.py)."""

from __future__ import annotations

import time
from importlib import metadata

import numpy as np
import pytest
from pydantic import ValidationError

from syncanim.audio.features import AudioFeatures, FeatureExtractor, check_waveform, compute_features
from syncanim.audio.logmel import (
    SPEC,
    LogMelConfig,
    LogMelExtractor,
    hz_to_mel,
    mel_filterbank,
    mel_to_hz,
)
from syncanim.audio.waveform import Waveform
from syncanim.errors import DataError, PluginError
from syncanim.registry import Registry, Spec

SR = 16000


def tone(freq: float, seconds: float, amp: float = 0.5) -> Waveform:
    t = np.arange(int(seconds * SR)) / SR
    return Waveform((amp * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)


def noise(seconds: float, seed: int = 0, amp: float = 0.1) -> Waveform:
    x = np.random.default_rng(seed).standard_normal(int(seconds * SR)) * amp
    return Waveform(x.astype(np.float32), SR)


@pytest.fixture(scope="module")
def ex() -> LogMelExtractor:
    return SPEC.build(LogMelConfig())


def band_centres(cfg: LogMelConfig) -> np.ndarray:
    """Peak frequency of each mel band (Hz)."""
    return mel_to_hz(np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax), cfg.n_mels + 2))[1:-1]


# --- mel scale and filterbank ---------------------------------------------------------------


def test_slaney_mel_scale_known_points():
    # linear below 1 kHz (3 mels per 200 Hz), 27 mels per factor 6.4 above
    np.testing.assert_allclose(hz_to_mel([0.0, 200.0, 440.0, 1000.0, 6400.0]), [0.0, 3.0, 6.6, 15.0, 42.0], atol=1e-9)
    f = np.array([0.0, 55.0, 999.0, 1000.0, 1001.0, 4000.0, 8000.0])
    np.testing.assert_allclose(mel_to_hz(hz_to_mel(f)), f, rtol=1e-12, atol=1e-9)


def test_filterbank_shape_no_empty_bands_and_unit_area():
    fb = mel_filterbank(80, 400, SR, 0.0, 8000.0)
    assert fb.shape == (80, 201) and fb.dtype == np.float32
    assert np.all(fb >= 0)
    assert np.all(fb.sum(1) > 0), "a band that no FFT bin reaches would always read the floor"
    # Slaney normalisation: each triangle has unit area in Hz. With 40 Hz bins the Riemann sum is
    # accurate only where a band spans many bins (above ~2.5 kHz, bands 50+: 6+ bins), so 3 % there.
    area = fb.sum(1) * (SR / 400)
    np.testing.assert_allclose(area[50:], 1.0, rtol=0.03)
    # peaks are increasing in frequency
    assert np.all(np.diff(np.argmax(fb, axis=1)) >= 0)


def test_filterbank_respects_fmin_fmax():
    fb = mel_filterbank(40, 400, SR, 80.0, 7600.0)
    freqs = np.linspace(0, SR / 2, 201)
    assert np.all(fb[:, freqs <= 80.0] == 0)
    assert np.all(fb[:, freqs >= 7600.0] == 0)


# --- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize("freq", [300.0, 1000.0, 2500.0, 6000.0])
def test_pure_tone_lands_in_its_mel_band(ex, freq):
    feats = ex.extract(tone(freq, 1.0), fps=25)  # [25, 4, 80]
    mid = feats[5:20].reshape(-1, 80)  # away from the clip edges
    peak = np.bincount(np.argmax(mid, axis=1)).argmax()
    centres = band_centres(ex.config)
    assert abs(peak - np.argmin(np.abs(centres - freq))) <= 1, (peak, centres[peak], freq)
    # far-away bands are much lower
    far = np.abs(centres - freq) > 0.5 * freq
    assert mid[:, far].max() < mid[:, peak].min() - 0.5


def test_silence_gives_exactly_the_floor(ex):
    feats = ex.extract(Waveform(np.zeros(SR, np.float32), SR), fps=25)
    assert np.all(feats == np.float32(-1.5))  # (log10(1e-10) + 4) / 4


def test_normalisation_constants_are_applied():
    cfg = LogMelConfig(floor=1e-6, offset=1.0, scale=2.0)
    feats = SPEC.build(cfg).extract(Waveform(np.zeros(SR, np.float32), SR), fps=25)
    assert np.all(feats == np.float32((-6 + 1) / 2))


def test_level_change_is_a_fixed_shift(ex):
    # no per-clip statistics: 6 dB less input is log10(4) / 4 less in every band above the floor
    loud = ex.extract(noise(1.0, amp=0.2), fps=25)
    quiet = ex.extract(noise(1.0, amp=0.1), fps=25)
    np.testing.assert_allclose(loud - quiet, np.log10(4.0) / 4, atol=1e-4)


@pytest.mark.parametrize(("fps", "seconds", "n"), [(25, 2.0, 50), (30, 2.0, 60), (25, 2.01, 51), (30, 2.01, 61)])
def test_frame_count(ex, fps, seconds, n):
    feats = ex.extract(noise(seconds), fps=fps)
    assert feats.shape == (n, 4, 80) and feats.dtype == np.float32


def test_num_frames_pads_with_silence_and_trims(ex):
    wave = noise(1.0)
    base = ex.extract(wave, fps=25)  # 25 frames
    longer = ex.extract(wave, fps=25, num_frames=40)
    np.testing.assert_array_equal(longer[:24], base[:24])
    assert np.all(longer[26:] == np.float32(-1.5))  # more than one window past the end: silence
    shorter = ex.extract(wave, fps=25, num_frames=10)
    np.testing.assert_array_equal(shorter, base[:10])
    assert ex.extract(wave, fps=25, num_frames=0).shape == (0, 4, 80)


@pytest.mark.parametrize("fps", [25, 30])
@pytest.mark.parametrize("frac", [0.3, 0.5, 0.7])
def test_click_shows_up_in_its_frame(ex, fps, frac):
    for k in (3, 17, 41):
        t = (k + frac) / fps
        x = np.zeros(2 * SR, np.float32)
        x[int(round(t * SR))] = 1.0
        energy = ex.extract(Waveform(x, SR), fps=fps).mean(axis=2)  # [N, P]
        assert int(np.argmax(energy.max(axis=1))) == int(np.floor(t * fps)), (fps, k, frac)


def test_click_shows_up_in_its_substep_at_25fps(ex):
    # at 25 fps the 4 sub-steps are the 10 ms STFT frames, centred at (m + 0.5) * 10 ms
    for t in (0.1234, 0.2571, 0.5071, 0.8079, 1.3333):
        x = np.zeros(2 * SR, np.float32)
        x[int(round(t * SR))] = 1.0
        energy = ex.extract(Waveform(x, SR), fps=25).mean(axis=2).reshape(-1)  # [N * 4]
        assert int(np.argmax(energy)) == int(np.floor(t * 100)), t


# --- chunks and streaming -------------------------------------------------------------------


def test_chunked_extraction_is_identical():
    wave = noise(7.3, seed=3)
    whole = SPEC.build(LogMelConfig(chunk_seconds=60)).extract(wave, fps=30)
    chunked = SPEC.build(LogMelConfig(chunk_seconds=1)).extract(wave, fps=30)
    np.testing.assert_allclose(chunked, whole, atol=1e-5)  # float32 matmul blocking may differ


@pytest.mark.parametrize("fps", [25, 30])
def test_window_with_context_matches_whole_file(ex, fps):
    wave = noise(6.0, seed=1)
    whole = ex.extract(wave, fps=fps)
    start, stop = 37, 81
    a, b = ex.samples_needed(start, stop, fps)
    assert a < start / fps * SR and b > stop / fps * SR  # context on both sides
    window = Waveform(wave.samples[a:b], SR)
    part = ex.extract_window(window, a, fps, start, stop)
    assert part.shape == (stop - start, 4, 80)
    np.testing.assert_allclose(part, whole[start:stop], atol=1e-5)  # float32 matmul blocking may differ


def test_window_without_context_differs_only_at_its_edges(ex):
    wave = noise(6.0, seed=2)
    whole = ex.extract(wave, fps=25)
    start, stop = 50, 75  # samples [32000, 48000)
    window = Waveform(wave.samples[start * 640:stop * 640], SR)
    part = ex.extract_window(window, start * 640, 25, start, stop)
    # only the first and last 10 ms sub-steps read samples outside the window (25 ms STFT)
    np.testing.assert_allclose(part[0, 1:], whole[start, 1:], atol=1e-5)
    np.testing.assert_allclose(part[1:-1], whole[start + 1:stop - 1], atol=1e-5)
    np.testing.assert_allclose(part[-1, :-1], whole[stop - 1, :-1], atol=1e-5)
    assert np.abs(part[0, 0] - whole[start, 0]).max() > 0.01
    assert np.abs(part[-1, -1] - whole[stop - 1, -1]).max() > 0.01


def test_sixty_seconds_is_fast(ex):
    wave = noise(60.0)
    ex.extract(wave, fps=25)  # warm-up: torch kernels, allocator
    t0 = time.perf_counter()
    feats = ex.extract(wave, fps=25)
    elapsed = time.perf_counter() - t0
    assert feats.shape == (1500, 4, 80)
    assert elapsed < 1.0, f"60 s of audio took {elapsed:.3f} s"


# --- inputs, config, registry ---------------------------------------------------------------


def test_rejects_wrong_rate_and_empty_audio(ex):
    with pytest.raises(DataError, match="16000 Hz"):
        ex.extract(Waveform(np.zeros(4800, np.float32), 48000), fps=25)
    with pytest.raises(DataError, match="empty"):
        ex.extract(Waveform(np.zeros(0, np.float32), SR), fps=25)
    with pytest.raises(DataError, match="16000 Hz"):
        check_waveform(Waveform(np.zeros(10, np.float32), 8000))
    with pytest.raises(ValueError, match="fps"):
        ex.extract(noise(0.5), fps=0)


def test_config_validation():
    with pytest.raises(ValidationError, match="fmin"):
        LogMelConfig(fmin=5000.0, fmax=4000.0)
    with pytest.raises(ValidationError):
        LogMelConfig(fmax=9000.0)
    with pytest.raises(ValidationError):
        LogMelConfig(unknown=1)
    cfg = LogMelConfig(n_mels=40, per_frame=2)
    ex = SPEC.build(cfg)
    assert (ex.dim, ex.per_frame) == (40, 2)
    assert ex.extract(noise(1.0), fps=25).shape == (25, 2, 40)


def test_spec_and_entry_point():
    assert isinstance(SPEC, Spec) and SPEC.name == "logmel" and SPEC.config_model is LogMelConfig
    assert SPEC.check(LogMelConfig()) is None
    eps = [ep for ep in metadata.entry_points(group="syncanim.asr") if ep.name == "logmel"]
    assert SPEC is Registry(entry_points=eps).get("syncanim.asr", "logmel")


def test_compute_features_wraps_and_checks(ex):
    assert isinstance(ex, FeatureExtractor)
    feats = compute_features(ex, noise(1.0), fps=30, num_frames=33)
    assert isinstance(feats, AudioFeatures)
    assert (feats.num_frames, feats.per_frame, feats.dim, feats.fps, feats.backend) == (33, 4, 80, 30.0, "logmel")

    class Broken:
        name, per_frame, dim = "broken", 2, 8

        def extract(self, wave, fps, num_frames=None, progress=None):
            return np.zeros((5, 3, 8), np.float32)

    with pytest.raises(PluginError, match=r"\(5, 3, 8\)"):
        compute_features(Broken(), noise(1.0), fps=25)
    with pytest.raises(ValueError, match="float32"):
        AudioFeatures(np.zeros((2, 2, 2)), 25.0, "x")


def test_progress_reports_every_chunk():
    calls = []
    SPEC.build(LogMelConfig(chunk_seconds=1)).extract(noise(3.5), fps=25, progress=lambda *a: calls.append(a))
    assert calls[0] == ("audio features", 0, 88)
    assert calls[-1] == ("audio features", 88, 88)
    assert len(calls) == 5  # 0, 25, 50, 75, 88
