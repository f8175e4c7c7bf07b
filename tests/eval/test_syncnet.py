"""The optional SyncNet LSE-D / LSE-C metric (syncanim/eval/syncnet.py): architecture, weight loading, scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from syncanim.errors import CheckpointError
from syncanim.eval.syncnet import (
    SPEC,
    SyncNetColor,
    SyncNetConfig,
    face_crop,
    load_syncnet,
    lse_scores,
    wav2lip_mel,
)
from syncanim.registry import Spec


@pytest.fixture(scope="module")
def random_net():
    torch.manual_seed(0)
    net = SyncNetColor().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a lost buffer would show
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net


def test_embeddings_are_512_d_unit_vectors(random_net):
    audio = torch.randn(2, 1, 80, 16)
    face = torch.rand(2, 15, 48, 96)
    with torch.no_grad():
        a, v = random_net(audio, face)
    assert a.shape == v.shape == (2, 512)
    assert torch.allclose(a.norm(dim=1), torch.ones(2)) and torch.allclose(v.norm(dim=1), torch.ones(2))
    with pytest.raises(ValueError, match="face must be"):
        random_net(audio, torch.rand(2, 15, 96, 96))


def test_weights_round_trip_in_wav2lip_checkpoint_layouts(random_net, tmp_path):
    plain = tmp_path / "plain.pth"
    torch.save(random_net.state_dict(), plain)
    wrapped = tmp_path / "lipsync_expert.pth"  # Wav2Lip's layout: state_dict from a DataParallel model + extras
    torch.save({"state_dict": {f"module.{k}": v for k, v in random_net.state_dict().items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 1e-4, "betas": (0.5, 0.999)}]},
                "global_step": 1000, "global_epoch": 3}, wrapped)
    for path in (plain, wrapped):
        loaded = load_syncnet(path)
        assert not loaded.training
        got_state = loaded.state_dict()
        for key, value in random_net.state_dict().items():
            assert torch.equal(got_state[key], value), key  # every weight and BatchNorm buffer


def test_missing_or_mismatched_weights_name_what_to_place_where(random_net, tmp_path):
    with pytest.raises(CheckpointError, match="not found at .*lipsync_expert.pth"):
        load_syncnet(tmp_path / "nothing.pth")
    state = random_net.state_dict()
    state.pop("face_encoder.0.conv_block.0.weight")
    state["audio_encoder.0.conv_block.0.bias"] = torch.zeros(7)
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    with pytest.raises(CheckpointError, match="missing face_encoder.0.conv_block.0.weight.*wrong shape"):
        load_syncnet(bad)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_syncnet(junk)


def test_lse_scores_on_synthetic_embeddings():
    torch.manual_seed(0)
    k, shift = 40, 3
    base = torch.nn.functional.normalize(torch.randn(k + 10, 512), dim=1)
    video = base[5:5 + k]  # video window i shows what audio window i - 3 says: the video lags by 3
    audio = base[5 + shift:5 + shift + k]
    s = lse_scores(video, audio, vshift=15)
    assert s["offset"] == shift
    assert len(s["mean_distance"]) == 31
    j = 15 - shift
    # the pairs that match have distance ~0; only windows whose partner falls in the zero padding add 1
    assert s["lse_d"] == pytest.approx(float(np.mean([1.0] * shift + [0.0] * (k - shift))), abs=1e-4)
    assert s["lse_c"] > 1.0 and s["mean_distance"][j] == min(s["mean_distance"])
    cos = lse_scores(video, audio, vshift=15, distance="cosine")
    assert cos["offset"] == shift and cos["lse_d"] < 0.1


def test_inputs_have_wav2lip_shapes():
    mel = wav2lip_mel(np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1)
    assert mel.shape == (80, 81) and mel.dtype == np.float32
    assert mel.min() >= -4 and mel.max() <= 4
    assert np.allclose(wav2lip_mel(np.zeros(3200, np.float32)), -4.0)  # silence sits at the floor
    rgb = np.zeros((100, 120, 3), np.uint8)
    rgb[..., 0] = 200  # red in RGB
    pts = np.array([[30, 20, 0], [90, 90, 0]] * 239, np.float64)
    crop = face_crop(rgb, pts)
    assert crop.shape == (48, 96, 3) and (crop[..., 2] == 200).all()  # BGR: red is the last channel


def test_spec_and_availability_message(tmp_path):
    assert isinstance(SPEC, Spec) and SPEC.name == "syncnet" and SPEC.config_model is SyncNetConfig
    assert "lipsync_expert.pth" in SPEC.check(SyncNetConfig())
    assert "not found" in SPEC.check(SyncNetConfig(weights=tmp_path / "w.pth"))
    with pytest.raises(CheckpointError, match="needs weights"):
        SPEC.build(SyncNetConfig())
