"""The fused torso kernel (``TorsoField.render`` with the ``triton`` backend) against its reference, the field's
own forward: Triton's interpreter on CPU, the compiled kernel on a GPU."""

from __future__ import annotations

import textwrap

import pytest
import torch

CASES = """
import torch
from syncanim.model.torso import TorsoArch, TorsoField


def torso(size, levels, features, hidden, frequencies, seed):
    torch.manual_seed(seed)
    f = TorsoField(TorsoArch(size, levels=levels, base_res=4, max_res=4 * size // 3, features=features, hidden=hidden,
                             frequencies=frequencies, max_offset=0.08))
    with torch.no_grad():  # a trained field's size of weights: offsets that move points, planes with detail
        for p in f.planes:
            p.normal_(0, 1.0)
        f.offset[-1].weight.normal_(0, 0.5)
        f.offset[-1].bias.normal_(0, 0.5)
        f.plate.copy_(torch.randint(0, 256, f.plate.shape, dtype=torch.uint8))
    return f


def check(f, b, device, tol, size=None, under=False):
    f = f.to(device)
    g = torch.Generator().manual_seed(b)
    code = torch.randn(b, 6, generator=g).to(device)
    s = size or f.arch.image_size
    below = torch.rand(b, s, s, 3, generator=g).to(device) if under else None
    want = f.render(code, size=size, under=below, backend="ref")
    got = f.render(code, size=size, under=below, backend="triton")
    assert got.shape == want.shape == (b, s, s, 3) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    return got
"""

INTERPRETED = CASES + """
f = torso(24, 3, 4, 24, 4, 0)  # a hidden width that is not a power of two
a = check(f, 3, "cpu", 1e-5)
check(f, 2, "cpu", 1e-5, under=True)  # each frame over its own backdrop
check(f, 1, "cpu", 1e-5, size=20)  # another size: the plate resampled
check(torso(16, 2, 3, 16, 0, 1), 2, "cpu", 1e-5)  # no position frequencies, 3 features a level
with torch.no_grad():  # new weights: packed again
    f.colour[-1].bias.add_(1.0)
assert (check(f, 3, "cpu", 1e-5) - a).abs().max() > 1e-3
print("ok")
"""


def test_interpreter_matches_the_reference(interpreted):
    interpreted(INTERPRETED)


@pytest.mark.gpu
def test_gpu_kernel_matches_the_reference():
    ns: dict = {}
    exec(textwrap.dedent(CASES), ns)
    f = ns["torso"](512, 6, 4, 64, 4, 0)  # the default field's shape at 512 px
    ns["check"](f, 5, "cuda", 1e-4)
    ns["check"](f, 2, "cuda", 1e-4, under=True)
    ns["check"](ns["torso"](64, 3, 4, 24, 4, 1), 3, "cuda", 1e-5)


def test_auto_is_the_reference_on_cpu():
    from syncanim.model.torso import TorsoArch, TorsoField

    f = TorsoField(TorsoArch(16))
    code = torch.randn(2, 6)
    assert torch.equal(f.render(code), f.render(code, backend="ref"))


def test_a_kernel_that_cannot_run_leaves_auto_to_the_reference(monkeypatch, caplog):
    import syncanim.model.torso as torso_module
    from syncanim.model.torso import TorsoArch, TorsoField

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel image is available for execution on the device")

    monkeypatch.setattr(torso_module, "resolve_backend", lambda *args: "triton")  # as on a GPU
    monkeypatch.setattr(torso_module, "torso_frames", broken)
    f = TorsoField(TorsoArch(16))
    code = torch.randn(2, 6)
    with caplog.at_level("WARNING"):
        got = f.render(code)
    assert torch.equal(got, f.render(code, backend="ref")) and "no kernel image" in f.fused_error
    assert "fused torso kernel cannot run" in caplog.text
    with pytest.raises(RuntimeError):  # asked for by name: the error, not the reference
        TorsoField(TorsoArch(16)).render(code, backend="triton")
