"""Fitting the mouth predictor: it learns a mapping it can learn, calibrates its gain, repeats itself."""

import numpy as np
import torch

from syncanim.config import MouthTrainConfig
from syncanim.console import no_progress
from syncanim.model.mouth_net import MouthPredictor
from syncanim.train.mouth import (
    cross_mix,
    ema_average,
    fit_mouth_predictor,
    fitted_cross_damping,
    opening_loss_weight,
    shaped_gain,
    smooth_codes,
    train_window_net,
    weighted_error,
)


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


def test_smooth_codes_weighs_neighbours_and_skips_frames_without_a_face():
    codes = torch.zeros(7, 2)
    codes[3] = 4.0
    codes[5] = float("nan")
    out = smooth_codes(codes, 3)
    torch.testing.assert_close(out[1:4, 0], torch.tensor([0.0, 1.0, 2.0]))  # 1/4, 1/2, 1/4 of the spike
    assert abs(float(out[4, 0]) - 4.0 / 3) < 1e-6  # its neighbour without a face left out of the weights
    assert torch.isnan(out[5]).all() and float(out[6, 0]) == 0.0
    torch.testing.assert_close(smooth_codes(torch.full((6, 1), 2.0), 5), torch.full((6, 1), 2.0))
    assert smooth_codes(codes, 1) is codes


def test_ema_keeps_the_average_of_the_steps_weights():
    """The net kept with ``ema`` is the running average (ema_average) of the weights after every step
    of the same run without it."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    feats, codes = _clip()
    cfg = MouthTrainConfig(steps=40, batch=64, run=16, lr=3e-3)
    rows = torch.arange(400)

    def run(ema, record=None):
        torch.manual_seed(0)
        net = MouthPredictor(2, 8, 2, hidden=8, past=2, future=1, dropout=0.0, input_dropout=0.0)
        handle = register_optimizer_step_post_hook(
            lambda *_: record.append([p.detach().clone() for p in net.parameters()])) if record is not None else None
        try:
            train_window_net(net, feats, codes, rows, torch.ones(2), cfg, torch.Generator().manual_seed(1),
                             no_progress, "t", ema)
        finally:
            if handle is not None:
                handle.remove()
        return net

    steps: list[list[torch.Tensor]] = []
    last = run(0.0, steps)
    assert len(steps) == 40
    average = ema_average(0.9)
    expected = steps[0]
    for n, weights in enumerate(steps[1:], start=1):
        expected = [average(a, w, torch.tensor(n)) for a, w in zip(expected, weights, strict=True)]
    averaged = run(0.9)
    for got, want, final in zip(averaged.parameters(), expected, last.parameters(), strict=True):
        torch.testing.assert_close(got, want)
        assert not torch.allclose(got, final)  # not the last step's weights


def test_opening_loss_weight_adds_the_opening_error_to_the_shape_error():
    w, d = torch.tensor([0.6, 0.3, 0.1]), torch.tensor([2.0, -1.0, 0.0])
    assert opening_loss_weight(w, d, 0.0) is w
    q = opening_loss_weight(w, d, 3.0)  # [C, C]
    diff = torch.randn(5, 7, 3)
    shape = (diff ** 2 * w).sum(-1)
    opening = (diff @ d) ** 2 / (d @ d)  # the opening's error over its variance for unit-spread codes
    torch.testing.assert_close(weighted_error(diff, q), shape + 3.0 * opening)
    torch.testing.assert_close(weighted_error(diff, w), shape)
    # an error across the opening costs what the shape alone says; along it, more
    across = torch.tensor([1.0, 2.0, 0.0])
    torch.testing.assert_close(weighted_error(across, q), weighted_error(across, w))
    assert float(weighted_error(d, q)) > 3 * float(weighted_error(d, w))


def test_opening_weight_fits_the_opening_closer():
    """Two components, the opening read from the second alone, which the speech predicts poorly: weighing the opening
    makes the fit follow it more closely."""
    feats, codes = _clip()
    g = torch.Generator().manual_seed(5)
    codes[:, 1] = 0.4 * codes[:, 1] + torch.randn(len(codes), generator=g)  # mostly noise the speech does not carry
    codes = codes / codes.std(0)
    errs = []
    for share in (0.0, 10.0):
        torch.manual_seed(0)
        net = MouthPredictor(2, 8, 2, hidden=16, past=4, future=0, dropout=0.1, input_dropout=0.1)
        weight = opening_loss_weight(torch.tensor([0.9, 0.1]), torch.tensor([0.0, 1.0]), share)
        cfg = MouthTrainConfig(steps=300, batch=256, run=32, lr=3e-3, render_gain=1.0, holdout=0.0, weight_decay=0.5)
        fit_mouth_predictor(net, feats, codes, 480, weight, cfg, torch.Generator().manual_seed(0))
        errs.append(float(((net.predict(feats)[:480, 1] - codes[:480, 1]) ** 2).mean()))
    assert errs[1] < errs[0], errs


def test_shaped_gain_damps_poorly_predicted_components_and_keeps_the_opening_spread():
    gain = np.array([1.5, 1.5, 1.2])
    corr = np.array([0.9, 0.1, -0.4])  # a negative correlation counts as the floor, 0.05
    pred = np.random.default_rng(0).normal(size=(200, 3))
    assert shaped_gain(gain, corr, pred, np.array([1.0, 0.5, 0.0]), 0.0) is gain
    # the opening along the first component alone: it keeps its gain, the others are damped by their correlation
    out = shaped_gain(gain, corr, pred, np.array([1.0, 0.0, 0.0]), 1.0)
    np.testing.assert_allclose(out, [1.5, 1.5 * 0.1 / 0.9, 1.2 * 0.05 / 0.9])
    # an opening that mixes components: its spread is what the calibrated gains gave it
    opening = np.array([0.6, 0.8, 0.3])
    out = shaped_gain(gain, corr, pred, opening, 1.0)
    np.testing.assert_allclose((pred @ (out * opening)).std(), (pred @ (gain * opening)).std())
    assert out[1] / out[0] < 0.2
    half = shaped_gain(gain, corr, pred, np.array([1.0, 0.0, 0.0]), 0.5)  # a milder shrink
    np.testing.assert_allclose(half[1], 1.5 * np.sqrt(0.1 / 0.9))


def test_fit_with_the_opening_damps_the_component_the_speech_does_not_tell():
    """The second component is mostly noise: fitted with the opening's direction (the first component), its gain
    falls well below what a fit without the direction calibrates, while the first keeps its gain."""
    feats, codes = _clip()
    g = torch.Generator().manual_seed(5)
    codes[:, 1] = 0.3 * codes[:, 1] + torch.randn(len(codes), generator=g)
    codes = codes / codes.std(0)
    reports = []
    for opening in (None, np.array([1.0, 0.0])):
        torch.manual_seed(0)
        net = MouthPredictor(2, 8, 2, hidden=16, past=4, future=0, dropout=0.1, input_dropout=0.1)
        cfg = MouthTrainConfig(steps=300, batch=256, run=32, lr=3e-3, render_gain=1.0, shape_shrink=1.0)
        reports.append(fit_mouth_predictor(net, feats, codes, 480, torch.tensor([0.5, 0.5]), cfg,
                                           torch.Generator().manual_seed(0), opening=opening))
    plain, shaped = reports
    assert plain.holdout_correlation[1] < 0.6 < plain.holdout_correlation[0]
    assert abs(shaped.gain[0] - plain.gain[0]) < 1e-6
    assert shaped.gain[1] < 0.7 * plain.gain[1]


def test_cross_mix_keeps_the_opening_and_damps_the_rest():
    rng = np.random.default_rng(1)
    opening = np.array([0.6, 0.8, 0.3, -0.2])
    codes = rng.normal(size=(50, 4))
    np.testing.assert_allclose(cross_mix(opening, 1.0), np.eye(4), atol=1e-12)
    for damping in (0.0, 0.3, np.array([0.9, 0.1, 0.5, 0.05])):
        mixed = codes @ cross_mix(opening, damping).T
        np.testing.assert_allclose(mixed @ opening, codes @ opening)  # the opening as predicted
    along = np.outer(rng.normal(size=5), opening)  # codes along the opening's direction pass unchanged
    np.testing.assert_allclose(along @ cross_mix(opening, 0.2).T, along)
    across = np.array([[0.8, -0.6, 0.0, 0.0]])  # orthogonal to the opening: multiplied by the damping
    np.testing.assert_allclose(across @ cross_mix(opening, 0.2).T, 0.2 * across, atol=1e-12)
    # the opening along the first component: each other component keeps its own factor
    np.testing.assert_allclose(cross_mix(np.array([1.0, 0.0, 0.0]), np.array([1.0, 0.5, 0.1])),
                               np.diag([1.0, 0.5, 0.1]), atol=1e-12)


def test_fitted_cross_damping_is_the_least_squares_factor():
    rng = np.random.default_rng(2)
    opening = np.array([1.0, 0.0, 0.0])
    true = rng.normal(size=(4000, 3))
    noise = rng.normal(size=(4000, 3))
    # the shape across the opening predicted with noise of its own spread: the best factor is about 1/2
    assert abs(fitted_cross_damping(true + noise, true, opening) - 0.5) < 0.03
    assert fitted_cross_damping(true, true, opening) == 1.0
    assert fitted_cross_damping(-true, true, opening) == 0.0  # clamped: never turned around
    # the opening's own errors do not count
    wrong_opening = true.copy()
    wrong_opening[:, 0] = rng.normal(size=4000)
    assert fitted_cross_damping(wrong_opening, true, opening) == 1.0


def test_fit_with_cross_shape_damps_the_shape_across_the_opening_only():
    """The second component is mostly noise and the opening lies along the first: ``cross_shape`` damps the second
    by the fitted factor and leaves the first as the plain fit predicts it."""
    feats, codes = _clip()
    g = torch.Generator().manual_seed(5)
    codes[:, 1] = 0.3 * codes[:, 1] + torch.randn(len(codes), generator=g)
    codes = codes / codes.std(0)
    nets, reports = [], []
    for cross in (1.0, "fit", "corr"):
        torch.manual_seed(0)
        net = MouthPredictor(2, 8, 2, hidden=16, past=4, future=0, dropout=0.1, input_dropout=0.1)
        cfg = MouthTrainConfig(steps=300, batch=256, run=32, lr=3e-3, render_gain=1.0, cross_shape=cross)
        reports.append(fit_mouth_predictor(net, feats, codes, 480, torch.tensor([0.5, 0.5]), cfg,
                                           torch.Generator().manual_seed(0), opening=np.array([1.0, 0.0])))
        nets.append(net)
    plain, fit, corr = (n.predict(feats) for n in nets)
    assert reports[0].cross_damping == 1.0
    torch.testing.assert_close(nets[0].mix, torch.eye(2))
    for out, rep in ((fit, reports[1]), (corr, reports[2])):
        damping = rep.cross_damping if isinstance(rep.cross_damping, float) else rep.cross_damping[1]
        assert 0.0 <= damping < 0.7
        torch.testing.assert_close(out[:, 0], plain[:, 0])
        torch.testing.assert_close(out[:, 1], damping * plain[:, 1], rtol=1e-4, atol=1e-5)


def test_weights_saved_without_the_mix_load_as_the_identity():
    net = MouthPredictor(2, 8, 3, hidden=16, past=4, future=0)
    state = {k: v for k, v in net.state_dict().items() if k != "mix"}
    net.mix.fill_(7.0)
    net.load_state_dict(state, strict=True)
    torch.testing.assert_close(net.mix, torch.eye(3))
