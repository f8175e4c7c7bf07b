"""The field's layers on split inputs: the same sums as on their concatenation."""

import pytest
import torch
from torch import nn

from syncanim.model.field import split_linear


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("shared", [False, True], ids=["per-point", "one-row"])
def test_split_linear_is_the_layer_on_the_concatenation(shared, bias):
    g = torch.Generator().manual_seed(0)
    layer = nn.Linear(13, 7, bias=bias)
    a = torch.randn(50, 6, generator=g, requires_grad=True)
    b = torch.randn(50, 4, generator=g)
    c = torch.randn(1 if shared else 50, 3, generator=g)
    cot = torch.randn(50, 7, generator=g)
    want = layer(torch.cat([a, b, c.expand(50, -1)], -1))
    got = split_linear(layer, a, b, c)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    params = [a, *layer.parameters()]
    gw = torch.autograd.grad(want, params, cot)
    gg = torch.autograd.grad(got, params, cot)
    for x, y in zip(gg, gw, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-4)


def test_split_linear_rejects_the_wrong_width():
    with pytest.raises(ValueError, match="13"):
        split_linear(nn.Linear(13, 7), torch.zeros(5, 6), torch.zeros(5, 4))
