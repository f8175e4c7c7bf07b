"""LPIPS-Alex built from randomly initialised weights saved in the published files' key layout.

The real torchvision / lpips weights cannot be fetched here, so these tests check loading, layout
and the shape of the computation, not agreement with published LPIPS values.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from syncanim.errors import CheckpointError
from syncanim.metrics.lpips import LPIPS, MIN_SIDE, lpips_available

# torchvision alexnet().features + classifier keys: what alexnet-owt-7be5be79.pth holds
FEATURE_KEYS = {f"features.{i}.{p}" for i in (0, 3, 6, 8, 10) for p in ("weight", "bias")}
LINEAR_KEYS = {f"lin{i}.model.1.weight" for i in range(5)}


@pytest.fixture
def model() -> LPIPS:
    torch.manual_seed(0)
    m = LPIPS()
    with torch.no_grad():  # the published heads are non-negative; random ones need not be
        for p in m.heads.parameters():
            p.abs_()
    return m.eval()


@pytest.fixture
def files(model, tmp_path):
    backbone = tmp_path / "alexnet-owt-7be5be79.pth"
    linear = tmp_path / "alex.pth"
    state = dict(model.backbone.state_dict())
    # torchvision's checkpoint also holds the classifier; small stand-ins suffice, they are not loaded
    state.update({f"classifier.{i}.{p}": torch.zeros(2) for i in (1, 4, 6) for p in ("weight", "bias")})
    torch.save(state, backbone)
    torch.save(model.heads.state_dict(), linear)
    return backbone, linear


def _images(b: int = 2, h: int = 64, w: int = 48, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_key_layout_matches_the_published_files(model):
    assert set(model.backbone.state_dict()) == FEATURE_KEYS
    assert set(model.heads.state_dict()) == LINEAR_KEYS
    shapes = {k: tuple(v.shape) for k, v in model.heads.state_dict().items()}
    assert shapes["lin0.model.1.weight"] == (1, 64, 1, 1) and shapes["lin2.model.1.weight"] == (1, 384, 1, 1)
    assert tuple(model.backbone.state_dict()["features.0.weight"].shape) == (64, 3, 11, 11)
    assert tuple(model.backbone.state_dict()["features.10.weight"].shape) == (256, 256, 3, 3)


def test_from_files_reproduces_the_model(model, files):
    loaded = LPIPS.from_files(*files)
    assert not loaded.training
    a, b = _images(), _images(seed=2)
    torch.testing.assert_close(loaded(a, b), model(a, b), rtol=0, atol=0)  # same weights, same ops
    assert lpips_available(*files) is None


def test_from_files_accepts_safetensors_and_features_only(model, tmp_path):
    backbone = tmp_path / "alexnet.safetensors"
    linear = tmp_path / "alex.safetensors"
    save_file({k: v.contiguous() for k, v in model.backbone.state_dict().items()}, str(backbone))
    save_file(model.heads.state_dict(), str(linear))
    a, b = _images(), _images(seed=2)
    torch.testing.assert_close(LPIPS.from_files(backbone, linear)(a, b), model(a, b), rtol=0, atol=0)


def test_identical_images_give_zero_and_noise_grows_the_distance(model):
    x = _images(b=3)
    d0 = model(x, x.clone())
    assert d0.shape == (3,)
    # both images go through one batched pass; identical rows give identical activations
    torch.testing.assert_close(d0, torch.zeros(3), rtol=0, atol=1e-7)
    gen = torch.Generator().manual_seed(3)
    noise = torch.randn(x.shape, generator=gen)
    dists = [model((x + s * noise).clamp(0, 1), x).mean().item() for s in (0.01, 0.05, 0.2, 0.5)]
    assert all(d > 0 for d in dists)
    assert dists == sorted(dists)


def test_gradients_reach_the_inputs_only(model):
    target = _images()
    pred = _images(seed=5).requires_grad_(True)
    model(pred, target).sum().backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())
    # flat images leave whole channel vectors at zero after a ReLU; the gradient stays finite
    flat = torch.zeros(1, 3, 40, 40, requires_grad=True)
    model(flat, torch.full((1, 3, 40, 40), 0.5)).sum().backward()
    assert torch.isfinite(flat.grad).all()


def test_training_mode_does_not_change_the_distance(model):
    a, b = _images(), _images(seed=2)
    d_eval = model(a, b)
    torch.testing.assert_close(model.train()(a, b), d_eval, rtol=0, atol=0)


def test_input_checks(model):
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model(torch.rand(1, 32, 32, 3), torch.rand(1, 32, 32, 3))
    with pytest.raises(ValueError, match=f"at least {MIN_SIDE}x{MIN_SIDE}"):
        model(torch.rand(1, 3, MIN_SIDE - 1, 64), torch.rand(1, 3, MIN_SIDE - 1, 64))
    assert model(torch.rand(1, 3, MIN_SIDE, MIN_SIDE), torch.rand(1, 3, MIN_SIDE, MIN_SIDE)).shape == (1,)


# --- errors -----------------------------------------------------------------------------------


def test_missing_files_raise_naming_the_file(files, tmp_path):
    backbone, linear = files
    absent = tmp_path / "nowhere" / "alexnet.pth"
    with pytest.raises(CheckpointError, match="alexnet-owt-7be5be79.pth") as info:
        LPIPS.from_files(absent, linear)
    assert str(absent) in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == 7
    with pytest.raises(CheckpointError, match=r"v0\.1 AlexNet linear weights") as info:
        LPIPS.from_files(backbone, absent)
    assert str(absent) in str(info.value)
    message = lpips_available(backbone, absent)
    assert message is not None and str(absent) in message


def test_swapped_files_raise_naming_the_file(files):
    backbone, linear = files
    with pytest.raises(CheckpointError, match="backbone weights") as info:
        LPIPS.from_files(linear, backbone)
    text = str(info.value)
    assert str(linear) in text and "missing features.0.bias" in text and "unexpected lin0.model.1.weight" in text


def test_wrong_shapes_and_extra_keys_raise(model, files, tmp_path):
    backbone, linear = files
    heads = model.heads.state_dict()
    heads["lin1.model.1.weight"] = torch.zeros(1, 128, 1, 1)
    bad = tmp_path / "bad_heads.pth"
    torch.save(heads, bad)
    with pytest.raises(CheckpointError, match=r"wrong shape lin1\.model\.1\.weight \(1, 128, 1, 1\) != \(1, 192, 1, 1\)"):
        LPIPS.from_files(backbone, bad)
    state = dict(model.backbone.state_dict())
    state["features.1.weight"] = torch.zeros(3)  # not part of AlexNet
    odd = tmp_path / "odd_backbone.pth"
    torch.save(state, odd)
    with pytest.raises(CheckpointError, match=r"unexpected features\.1\.weight"):
        LPIPS.from_files(odd, linear)


def test_unreadable_files_raise(files, tmp_path):
    backbone, linear = files
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read") as info:
        LPIPS.from_files(junk, linear)
    assert str(junk) in str(info.value)
    text = tmp_path / "notes.pth"  # torch.load raises KeyError on this one
    text.write_bytes(b"hello, these are notes\n")
    with pytest.raises(CheckpointError, match="cannot be read"):
        LPIPS.from_files(text, linear)
    junk_st = tmp_path / "junk.safetensors"
    junk_st.write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="cannot be read"):
        LPIPS.from_files(backbone, junk_st)
    not_state = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_state)
    with pytest.raises(CheckpointError, match="not a state dict"):
        LPIPS.from_files(backbone, not_state)
