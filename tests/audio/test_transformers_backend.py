"""The ``hubert`` / ``wav2vec2`` backends (syncanim/audio/transformers_backend.py) with tiny random models."""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from syncanim.audio.transformers_backend import (
    HUBERT_SPEC,
    WAV2VEC2_SPEC,
    TransformersAudioConfig,
    conv_geometry,
    normalize_wave,
)
from syncanim.audio.waveform import Waveform
from syncanim.errors import CheckpointError, ConfigError, DataError, PluginError, ResourceError
from syncanim.registry import Registry, Spec

SR = 16000
HIDDEN = 32
TINY = dict(
    hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    conv_dim=(16,) * 7,  # default kernels and strides: 320-sample stride, 50 Hz
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
)


def speechlike(seconds: float, seed: int = 0, amp: float = 0.3) -> Waveform:
    """Bursts of a harmonic tone in light noise: structure in time, so frames differ."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    voiced = (np.sin(2 * np.pi * 3.1 * t) > 0).astype(np.float64)
    x = amp * voiced * (np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 540 * t)) + 0.02 * rng.standard_normal(t.size)
    return Waveform(x.astype(np.float32), SR)


@pytest.fixture(scope="module")
def tiny_hubert(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer HuBERT saved with save_pretrained (no preprocessor config)."""
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    # "layer" feature-encoder norm, as in the large checkpoints: per-time-step, so chunks can match
    model = transformers.HubertModel(transformers.HubertConfig(feat_extract_norm="layer", **TINY))
    path = tmp_path_factory.mktemp("hubert")
    model.save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory) -> Path:
    """A random 2-layer wav2vec2 with a preprocessor_config.json that turns normalisation off."""
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(1)
    model = transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(feat_extract_norm="layer", **TINY))
    path = tmp_path_factory.mktemp("wav2vec2")
    model.save_pretrained(str(path))
    transformers.Wav2Vec2FeatureExtractor(do_normalize=False, sampling_rate=SR).save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def hubert(tiny_hubert):
    return HUBERT_SPEC.build(TransformersAudioConfig(path=str(tiny_hubert)))


# --- pure helpers ---------------------------------------------------------------------------


def test_conv_geometry_of_the_released_models():
    assert conv_geometry((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2)) == (320, 400)
    assert conv_geometry((3,), (1,)) == (1, 3)
    with pytest.raises(ValueError):
        conv_geometry((3, 3), (1,))


def test_normalize_wave_is_zero_mean_unit_variance():
    x = np.random.default_rng(0).standard_normal(5000) * 0.2 + 0.3
    y = normalize_wave(x)
    assert y.dtype == np.float32
    assert abs(float(y.mean())) < 1e-6 and abs(float(y.std()) - 1.0) < 1e-4


@pytest.mark.parametrize(("fps", "seconds", "n"), [(25, 3.0, 75), (30, 3.0, 90), (25, 3.01, 76)])
def test_shapes(hubert, fps, seconds, n):
    feats = hubert.extract(speechlike(seconds), fps=fps)
    assert feats.shape == (n, 2, HIDDEN) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    assert hubert.per_frame == 2 and hubert.dim == HIDDEN and hubert.rate == 50.0


def test_num_frames_pads_and_trims(hubert):
    wave = speechlike(2.0)
    assert hubert.extract(wave, fps=25, num_frames=80).shape == (80, 2, HIDDEN)
    assert hubert.extract(wave, fps=25, num_frames=10).shape == (10, 2, HIDDEN)
    assert hubert.extract(wave, fps=25, num_frames=0).shape == (0, 2, HIDDEN)
    # very short audio (less than one conv receptive field) still gives the frames asked for
    assert hubert.extract(Waveform(np.full(100, 0.1, np.float32), SR), fps=25).shape == (1, 2, HIDDEN)


def test_native_features_match_a_direct_model_call(tiny_hubert, hubert):
    import torch
    import transformers

    model = transformers.HubertModel.from_pretrained(str(tiny_hubert), local_files_only=True).eval()
    wave = speechlike(2.0)
    # extract() at 25 fps feeds the model the 100 native frames that 50 frames x 2 sub-steps read:
    # (100 - 1) * 320 + 400 = 32080 samples, the normalised clip plus 80 zeros
    x = np.pad(normalize_wave(wave.samples), (0, 80))
    with torch.inference_mode():
        direct = model(torch.from_numpy(x)[None], output_hidden_states=True).hidden_states
    ours = hubert.native_features(x)  # [J, F]
    assert ours.shape == (100, HIDDEN)
    np.testing.assert_allclose(ours, direct[-1][0].numpy(), atol=1e-5)  # same ops: float32 noise only
    # Sub-steps are 10 ms and 30 ms into each 40 ms frame; native frame j is centred at 20 j + 12.5 ms.
    # Sub-step 11 (frame 5, i = 1) is at 230 ms: (230 - 212.5) / 20 = 0.875 of the way from j = 10 to 11.
    aligned = hubert.extract(wave, fps=25)
    np.testing.assert_allclose(aligned[5, 1], ours[10] * 0.125 + ours[11] * 0.875, atol=1e-5)
    np.testing.assert_allclose(aligned[0, 0], ours[0], atol=1e-6)  # 10 ms is before frame 0's centre: edge


def test_layer_selection(tiny_hubert, hubert):
    wave = speechlike(2.0)
    last = hubert.extract(wave, fps=25)
    layers = {k: HUBERT_SPEC.build(TransformersAudioConfig(path=str(tiny_hubert), layer=k)).extract(wave, fps=25)
              for k in (0, 1, 2, -3)}
    np.testing.assert_array_equal(layers[2], last)
    np.testing.assert_array_equal(layers[-3], layers[0])
    # random post-LN layers change the residual stream only a little, but far above float noise (1e-6)
    assert np.abs(layers[0] - layers[1]).mean() > 1e-3
    assert np.abs(layers[1] - layers[2]).mean() > 1e-3
    for bad in (3, -4):
        with pytest.raises(ConfigError, match="hidden states 0..2"):
            HUBERT_SPEC.build(TransformersAudioConfig(path=str(tiny_hubert), layer=bad))


def test_chunked_matches_unchunked(tiny_hubert, hubert):
    wave = speechlike(12.0, seed=4)
    whole = HUBERT_SPEC.build(TransformersAudioConfig(path=str(tiny_hubert), chunk_seconds=60)).extract(wave, fps=25)
    chunked = HUBERT_SPEC.build(
        TransformersAudioConfig(path=str(tiny_hubert), chunk_seconds=3, overlap_seconds=1)).extract(wave, fps=25)
    # Attention is global, so chunks (3 s, >= 1 s overlap) see less context: small differences remain.
    # Features have std ~1 and neighbouring frames differ by up to ~4, so 0.15 still catches a frame
    # shift or a seam, while allowing the context effect (measured max ~0.05).
    assert whole.std() > 0.5
    np.testing.assert_allclose(chunked, whole, atol=0.15)
    assert np.abs(chunked - whole).mean() < 0.01


def test_progress_counts_chunks(tiny_hubert):
    ex = HUBERT_SPEC.build(TransformersAudioConfig(path=str(tiny_hubert), chunk_seconds=2, overlap_seconds=0.5))
    calls = []
    ex.extract(speechlike(5.0), fps=25, progress=lambda *a: calls.append(a))
    assert calls[0] == ("audio features", 0, 3) and calls[-1] == ("audio features", 3, 3)


def test_normalisation_follows_the_preprocessor_config(hubert, tiny_wav2vec2):
    wave = speechlike(2.0)
    quiet = Waveform(wave.samples * 0.25, SR)
    # no preprocessor config + feat_extract_norm="layer": normalised, so level does not matter
    assert hubert.do_normalize
    np.testing.assert_allclose(hubert.extract(quiet, 25), hubert.extract(wave, 25), atol=2e-3)
    # do_normalize=false in preprocessor_config.json: the raw waveform goes in
    w2v = WAV2VEC2_SPEC.build(TransformersAudioConfig(path=str(tiny_wav2vec2)))
    assert not w2v.do_normalize
    assert np.abs(w2v.extract(quiet, 25) - w2v.extract(wave, 25)).max() > 0.05
    assert w2v.extract(wave, 30).shape == (60, 2, HIDDEN)


def test_rejects_wrong_rate_and_empty_audio(hubert):
    with pytest.raises(DataError, match="16000 Hz"):
        hubert.extract(Waveform(np.zeros(4800, np.float32), 48000), fps=25)
    with pytest.raises(DataError, match="empty"):
        hubert.extract(Waveform(np.zeros(0, np.float32), SR), fps=25)


# --- availability and errors ----------------------------------------------------------------


def test_check_messages(tmp_path, tiny_hubert):
    msg = HUBERT_SPEC.check(TransformersAudioConfig())
    assert "set prep.audio.path" in msg and "config.json" in msg and "save_pretrained" in msg
    assert "hubert-large-ls960-ft" in msg
    assert "does not exist" in HUBERT_SPEC.check(TransformersAudioConfig(path=str(tmp_path / "nope")))
    assert "no config.json" in HUBERT_SPEC.check(TransformersAudioConfig(path=str(tmp_path)))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "hubert"}))
    assert "no model weights" in HUBERT_SPEC.check(TransformersAudioConfig(path=str(tmp_path)))
    assert HUBERT_SPEC.check(TransformersAudioConfig(path=str(tiny_hubert))) is None
    wrong = WAV2VEC2_SPEC.check(TransformersAudioConfig(path=str(tiny_hubert)))
    assert "'hubert' model" in wrong and 'kind = "hubert"' in wrong


def test_check_without_transformers(monkeypatch, tiny_hubert):
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes the package unimportable
    for spec in (HUBERT_SPEC, WAV2VEC2_SPEC):
        msg = spec.check(TransformersAudioConfig(path=str(tiny_hubert)))
        assert msg is not None and "pip install syncanim[hubert]" in msg
        with pytest.raises(PluginError, match=r"syncanim\[hubert\]"):
            spec.build(TransformersAudioConfig(path=str(tiny_hubert)))


def test_build_with_bad_path_or_weights(tmp_path, tiny_hubert):
    with pytest.raises(PluginError, match="does not exist"):
        HUBERT_SPEC.build(TransformersAudioConfig(path=str(tmp_path / "missing")))
    with pytest.raises(PluginError, match="set prep.audio.path"):
        HUBERT_SPEC.build(TransformersAudioConfig())
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / "config.json").write_text((tiny_hubert / "config.json").read_text())
    (bad / "model.safetensors").write_bytes(b"not a safetensors file" * 4)
    with pytest.raises(CheckpointError, match="cannot load the hubert model"):
        HUBERT_SPEC.build(TransformersAudioConfig(path=str(bad)))


def test_config_validation():
    with pytest.raises(ValidationError, match="overlap"):
        TransformersAudioConfig(chunk_seconds=2.0, overlap_seconds=1.0)
    with pytest.raises(ValidationError):
        TransformersAudioConfig(per_frame=0)
    with pytest.raises(ValidationError):
        TransformersAudioConfig(model="x")


def test_specs_and_entry_points():
    for name, spec in (("hubert", HUBERT_SPEC), ("wav2vec2", WAV2VEC2_SPEC)):
        assert isinstance(spec, Spec) and spec.name == name and spec.config_model is TransformersAudioConfig
    eps = [ep for ep in metadata.entry_points(group="syncanim.asr") if ep.name in ("hubert", "wav2vec2")]
    reg = Registry(entry_points=eps)
    assert reg.get("syncanim.asr", "hubert") is HUBERT_SPEC
    assert reg.get("syncanim.asr", "wav2vec2") is WAV2VEC2_SPEC


@pytest.mark.gpu
def test_cuda_matches_cpu(tiny_hubert, hubert):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    gpu = HUBERT_SPEC.build(TransformersAudioConfig(path=str(tiny_hubert), device="cuda"))
    wave = speechlike(4.0)
    # TF32 / different conv algorithms on the GPU: agreement to ~1e-3 on features of std ~1
    np.testing.assert_allclose(gpu.extract(wave, 25), hubert.extract(wave, 25), atol=1e-2)


def test_unavailable_device_is_a_resource_error(tiny_hubert):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ResourceError, match="no CUDA device"):
        HUBERT_SPEC.build(TransformersAudioConfig(path=str(tiny_hubert), device="cuda"))
    with pytest.raises(ConfigError, match="not a torch device"):
        HUBERT_SPEC.build(TransformersAudioConfig(path=str(tiny_hubert), device="tpu-ish"))
