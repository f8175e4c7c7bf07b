"""Fitting the mouth predictor: it learns a mapping it can learn, calibrates its gain, repeats itself."""

import numpy as np
import torch

from syncanim.config import MouthTrainConfig
from syncanim.model.mouth_net import MouthPredictor
from syncanim.train.mouth import fit_mouth_predictor


def _clip(n=600, seed=0):
    """Features of a made-up voice and mouth codes that follow them two frames later, plus noise."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, 2, 8, generator=g)
    feats = (feats + torch.roll(feats, 1, 0) + torch.roll(feats, 2, 0)) / 3  # smooth in time, like speech
    mix = torch.randn(16, 2, generator=g)
    codes = torch.roll(feats.flatten(1) @ mix, 2, 0)  # [N, 2]: the mouth moves 2 frames after the sound
    codes = codes / codes.std(0) + 0.3 * torch.randn(n, 2, generator=g)
    return feats, codes


def _fit(seed=0, **cfg):
    feats, codes = _clip()
    torch.manual_seed(0)
    net = MouthPredictor(2, 8, 2, hidden=16, past=4, future=0, dropout=0.1, input_dropout=0.1)
    gen = torch.Generator().manual_seed(seed)
    settings = {"steps": 300, "batch": 256, "run": 32, "lr": 3e-3, "render_gain": 1.0, **cfg}
    rep = fit_mouth_predictor(net, feats, codes, 480, torch.tensor([0.7, 0.3]), MouthTrainConfig(**settings), gen)
    return net, rep, feats, codes


def test_learns_the_mapping_and_calibrates():
    net, rep, feats, codes = _fit()
    pred = net.predict(feats)
    test = slice(480, 600)  # never seen, not even by the calibration
    c = [np.corrcoef(pred[test, i].numpy(), codes[test, i].numpy())[0, 1] for i in range(2)]
    assert min(c) > 0.8, c
    assert rep.holdout_frames == 72 and min(rep.holdout_correlation) > 0.8
    assert all(1.0 <= g <= 1.6 for g in rep.gain)
    torch.testing.assert_close(net.gain, torch.tensor(rep.gain, dtype=torch.float32))
    # the statistics the features are normalised with come from the training frames only
    torch.testing.assert_close(net.feat_mean, feats[:480].flatten(1).mean(0))


def test_no_holdout_means_no_gain_and_same_seed_same_net():
    net, rep, _, _ = _fit(holdout=0.0)
    assert rep.holdout_frames == 0 and rep.gain == [1.0, 1.0]
    _, scaled, _, _ = _fit(holdout=0.0, render_gain=1.25)  # the head's own shortfall, on top
    assert scaled.gain == [1.25, 1.25]
    a, _, _, _ = _fit(seed=3)
    b, _, _, _ = _fit(seed=3)
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        torch.testing.assert_close(x, y, msg=k)


def test_feature_scaling_keeps_the_mouth_moving_on_softer_speech():
    """The same voice reaching the encoder at half its strength: trained with random feature scales,
    the predictor moves the mouth nearly as much; trained without, it moves it about half as much."""
    feats, _ = _clip()
    soft = feats[480:] * 0.5 + feats[:480].mean(0) * 0.5  # half the deviation from the training mean
    ratios = {}
    for spread in (0.0, 0.5):
        net, _, _, _ = _fit(feature_scale=spread, holdout=0.0)
        ratios[spread] = float(net.predict(soft)[:, 0].std() / net.predict(feats[480:])[:, 0].std())
    assert ratios[0.0] < 0.65, ratios
    assert ratios[0.5] > ratios[0.0] + 0.15, ratios
