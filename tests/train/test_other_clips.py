"""Other clips the mouth predictor learns from: they teach it when the subject's footage is short, and a clip that
cannot be used is refused with a clear error."""

import shutil

import numpy as np
import pytest
import torch

from syncanim.config import MouthTrainConfig
from syncanim.errors import DataError
from syncanim.model.mouth_net import MouthPredictor
from syncanim.train.mouth import OtherClip, fit_mouth_predictor, other_clip
from syncanim.train.other_clips import load_other_clips


def _speech(n, seed):
    """Features of a made-up voice ``[n, 2, 8]`` and what a mouth makes of them, 2 frames later ``[n, 2]``: the
    same sounds move every speaker's mouth the same way (a fixed mix), each mouth showing it in its own shape."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, 2, 8, generator=g)
    feats = (feats + torch.roll(feats, 1, 0) + torch.roll(feats, 2, 0)) / 3
    sounds = torch.roll(torch.tanh(feats.flatten(1) @ torch.randn(16, 2, generator=torch.Generator().manual_seed(99))),
                        2, 0)
    return feats, sounds


def _fit(num_train, others):
    feats, sounds = _speech(600, 0)
    codes = sounds @ torch.tensor([[1.0, 0.4], [-0.5, 1.0]])  # the subject's mouth
    codes = codes / codes.std(0) + 0.2 * torch.randn(600, 2, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(0)
    net = MouthPredictor(2, 8, 2, hidden=16, past=4, future=0, dropout=0.1, input_dropout=0.1)
    cfg = MouthTrainConfig(steps=300, batch=256, run=16, lr=3e-3, render_gain=1.0, holdout=0.0)
    held = codes.clone()
    held[num_train:480] = torch.nan  # frames the subject did not give
    fit_mouth_predictor(net, feats, held, 480, torch.tensor([0.5, 0.5]), cfg, torch.Generator().manual_seed(0),
                        others=others)
    pred = net.predict(feats)[480:]
    return min(np.corrcoef(pred[:, i].numpy(), codes[480:, i].numpy())[0, 1] for i in range(2))


def test_another_speaker_teaches_the_predictor_on_short_footage():
    ofeats, osounds = _speech(2000, 1)
    ocodes = torch.cat([osounds @ torch.tensor([[0.3, 1.0, 0.2], [1.0, -0.2, 0.5]]), torch.randn(2000, 1)], 1)
    ocodes[::50] = 0.0  # some frames without a face ...
    ok = torch.ones(2000, dtype=torch.bool)
    ok[::50] = False  # ... which the fit skips
    other = OtherClip("other", ofeats, ocodes, ok, torch.full((4,), 0.25))
    alone, helped = _fit(80, ()), _fit(80, [other])  # 80 frames of the subject (on 480: 0.85 alone)
    assert alone < 0.7 < helped, (alone, helped)
    assert helped > alone + 0.1, (alone, helped)


def test_other_clip_fits_its_own_mouth_basis(tiny_dataset):
    layout = tiny_dataset.layout
    feats, marks = np.load(layout.audio_features), np.load(layout.landmarks)
    clip = other_clip("x", feats, marks, MouthTrainConfig(), 4, 0.97, "cpu")
    assert clip.features.shape == feats.shape and clip.codes.shape[0] == len(feats)
    assert 1 <= clip.codes.shape[1] <= 4 and torch.isfinite(clip.codes).all()
    assert clip.ok.sum() == np.isfinite(marks).all((1, 2)).sum()
    with pytest.raises(ValueError, match="frames with a face"):
        other_clip("x", feats, np.full_like(marks, np.nan), MouthTrainConfig(), 4, 0.97, "cpu")


def test_load_other_clips_checks_each_clip(tiny_dataset, tmp_path):
    root = tiny_dataset.layout.root
    cfg = MouthTrainConfig(other_clips=(str(root),))
    [clip] = load_other_clips(root, cfg, 4, 0.97, "cpu")
    assert clip.name == str(root)
    with pytest.raises(DataError, match="not found"):
        load_other_clips(root, MouthTrainConfig(other_clips=(str(tmp_path / "nope"),)), 4, 0.97, "cpu")
    # a copy of the files it reads, prepped with other speech features
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("manifest.json", "landmarks.npy", "audio_features.npy"):
        shutil.copy(root / name, copy / name)
    (copy / "config.resolved.toml").write_text('[prep.audio]\nkind = "logmel"\n')
    with pytest.raises(DataError, match="other speech features"):
        load_other_clips(root, MouthTrainConfig(other_clips=(str(copy),)), 4, 0.97, "cpu")
    shutil.copy(root / "config.resolved.toml", copy / "config.resolved.toml")
    assert len(load_other_clips(root, MouthTrainConfig(other_clips=(str(copy),)), 4, 0.97, "cpu")) == 1
    (copy / "landmarks.npy").write_bytes(b"not an array")
    with pytest.raises(DataError, match="cannot read"):
        load_other_clips(root, MouthTrainConfig(other_clips=(str(copy),)), 4, 0.97, "cpu")
