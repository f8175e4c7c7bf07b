"""The mouth predictor: its window, its look-ahead bound, and runs that equal frame-by-frame calls."""

import pytest
import torch

from syncanim.model.mouth_net import MouthPredictor, split_span


def _net(past=5, future=3, layers=2):
    torch.manual_seed(0)
    return MouthPredictor(per_frame=2, feat_dim=6, code_dim=3, hidden=8, layers=layers, past=past, future=future).eval()


def test_split_span():
    assert split_span(7, 2) == [4, 3] and split_span(6, 3) == [2, 2, 2] and sum(split_span(16, 5)) == 16


@pytest.mark.parametrize(("past", "future", "layers"), [(5, 3, 2), (0, 4, 2), (8, 0, 3), (8, 8, 1)])
def test_reads_exactly_its_window(past, future, layers):
    net = _net(past, future, layers)
    feats = torch.randn(40, 2, 6)
    t = torch.tensor([20])
    base = net(feats, t)
    for k in range(40):
        moved = feats.clone()
        moved[k] += 3.0
        changed = not torch.allclose(net(moved, t), base)
        assert changed == (20 - past <= k <= 20 + future), k


def test_runs_and_predict_equal_frame_by_frame():
    net = _net()
    feats = torch.randn(37, 2, 6)
    one = torch.cat([net(feats, torch.tensor([k])) for k in range(37)])
    torch.testing.assert_close(net(feats, torch.arange(37)), one)
    torch.testing.assert_close(net.run_codes(feats, torch.tensor([0, 10]), 20), torch.stack([one[:20], one[10:30]]))
    torch.testing.assert_close(net.predict(feats, chunk=8), one)  # chunks join without seams
    assert net.training is False


def test_bad_shapes():
    with pytest.raises(ValueError):
        MouthPredictor(2, 6, 3, layers=3, past=1, future=0)
    with pytest.raises(ValueError, match="runs must be"):
        _net().forward_runs(torch.randn(1, 4, 2, 6))
