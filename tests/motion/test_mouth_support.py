"""The mouth support: codes among many training codes are drawn as they are, a code near only a few is moved
towards the mouth at rest just until enough training codes resemble it, and streams bound alike together or apart."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from syncanim.motion.mouth_support import (
    BANDWIDTH,
    apply_supports,
    mouth_support,
    support,
    support_json,
    typical_support,
    within_support,
)

REST = torch.zeros(2)
WEIGHT = torch.tensor([0.5, 0.5])


def _seen(seed: int = 0) -> torch.Tensor:
    """400 training codes [400, 2] around the rest, and a rare shape: 6 codes near (4, 0)."""
    g = torch.Generator().manual_seed(seed)
    common = torch.randn(400, 2, generator=g) * 0.5
    rare = torch.tensor([4.0, 0.0]) + torch.randn(6, 2, generator=g) * 0.05
    return torch.cat([common, rare])


def test_support_counts_resembling_codes():
    seen = torch.tensor([[0.0, 0.0], [0.0, 0.0], [10.0, 10.0]])
    s = support(torch.tensor([[0.0, 0.0], [10.0, 10.0], [5.0, 5.0]]), seen, WEIGHT)
    assert s[0].item() == pytest.approx(2.0, abs=1e-4)  # two identical codes, the far one adds nothing
    assert s[1].item() == pytest.approx(1.0, abs=1e-4)
    assert s[2].item() < 1e-6
    # a code half a bandwidth away (in the weighted space) counts exp(-1/8)
    d = BANDWIDTH / 2 / np.sqrt(0.5)
    assert support(torch.tensor([[d, 0.0]]), seen[:1], WEIGHT).item() == pytest.approx(np.exp(-1 / 8), rel=1e-4)


def test_common_codes_are_left_alone():
    seen = _seen()
    codes = torch.tensor([[0.1, -0.2], [0.3, 0.2], [-0.4, 0.1]])
    assert support(codes, seen, WEIGHT).min() >= 10
    assert torch.equal(within_support(codes, seen, WEIGHT, REST, 10.0), codes)


def test_rare_code_moves_towards_the_rest_just_enough():
    seen = _seen()
    codes = torch.tensor([[4.0, 0.0], [0.0, 0.0]])
    assert support(codes[:1], seen, WEIGHT).item() < 10  # only the 6 rare codes resemble it
    out = within_support(codes, seen, WEIGHT, REST, 10.0)
    assert torch.equal(out[1], codes[1])
    moved = out[0]
    assert moved[1].abs().item() < 1e-6 and 0 < moved[0].item() < 4.0  # on the line to the rest, nearer it
    assert support(moved[None], seen, WEIGHT).item() == pytest.approx(10.0, rel=0.15)  # no further than needed
    assert support(moved[None] * 1.1, seen, WEIGHT).item() < 10  # further out would not have enough


def test_moving_is_continuous_and_zero_min_frames_is_off():
    seen = _seen()
    xs = torch.linspace(0.0, 6.0, 121)
    codes = torch.stack([xs, torch.zeros_like(xs)], 1)
    out = within_support(codes, seen, WEIGHT, REST, 10.0)[:, 0]
    assert (out.diff().abs() < 0.2).all()  # no jumps as the code crosses into rare shapes
    assert (out <= xs + 1e-6).all()
    assert torch.equal(within_support(codes, seen, WEIGHT, REST, 0.0), codes)


def test_nothing_resembles_any_point_gives_the_rest():
    seen = torch.tensor([[50.0, 50.0]])
    out = within_support(torch.tensor([[3.0, 1.0]]), seen, WEIGHT, torch.tensor([1.0, 1.0]), 5.0)
    assert torch.allclose(out, torch.tensor([[1.0, 1.0]]))


def test_model_section_and_streams():
    seen = _seen()
    mouth = {"seen": support_json(np.concatenate([seen.numpy(), [[np.nan, 0.0]]])),
             "level": {"rest": [0.0, 0.0], "weight": [2.0, 2.0], "level": 1.0}}
    assert len(mouth["seen"]) == len(seen)  # the frame without a face is left out
    typical = typical_support(seen, WEIGHT)
    # the median of each code's support among the others: in the common cluster, far above the rare shape's
    assert typical == pytest.approx(float((support(seen, seen, WEIGHT) - 1).median()))
    assert typical > 50 > support(torch.tensor([[4.0, 0.0]]), seen, WEIGHT).item()
    held = mouth_support(mouth, 0.1, torch.device("cpu"))
    assert held is not None and torch.allclose(held.weight, WEIGHT)
    assert held.min_frames == pytest.approx(0.1 * typical, rel=1e-3)  # the same share whatever the clip's length
    double = {**mouth, "seen": mouth["seen"] * 2}  # every shape shown twice as often: each code's twin counts too
    assert mouth_support(double, 0.1, torch.device("cpu")).min_frames == pytest.approx(2 * held.min_frames, rel=1e-2)
    assert mouth_support(mouth, 0.0, torch.device("cpu")) is None
    assert mouth_support({"level": mouth["level"]}, 0.1, torch.device("cpu")) is None  # an older model
    codes = torch.tensor([[4.0, 0.0], [0.1, 0.1], [4.0, 0.0]])
    alone = held.apply(codes)
    assert torch.allclose(apply_supports([(held, 2), (held, 1)], codes), alone)
    mixed = apply_supports([(held, 2), (None, 1)], codes)
    assert torch.allclose(mixed[:2], alone[:2]) and torch.equal(mixed[2], codes[2])
    assert torch.equal(apply_supports([(None, 3)], codes), codes)
    with pytest.raises(ValueError):
        apply_supports([(held, 2)], codes)


def test_a_trained_model_keeps_its_codes_and_streams_hold_to_them(tiny_model):
    from syncanim.stream.avatar import AvatarStream, StreamSettings, load_avatar
    from syncanim.stream.speech import FeatureBlock

    avatar = load_avatar(tiny_model.layout.root, torch.device("cpu"))
    seen = np.asarray(avatar.info.mouth["seen"])
    assert seen.shape == (avatar.replay.num_train, avatar.model.predictor.code_dim)
    rng = np.random.default_rng(0)
    n = 30
    feats = rng.normal(size=(n, avatar.info.audio_per_frame, avatar.info.audio_dim)).astype(np.float32)
    block = FeatureBlock(0, feats * 3, np.full(n, 0.2))  # loud, strange speech: codes far from the clip's

    def mouths(share):
        st = AvatarStream(avatar, StreamSettings(pose="replay", mouth_level=1.0, mouth_support=share))
        return torch.cat([k.cond.mouth for k in st.prepare(block) + st.finish()]), st

    free, st_off = mouths(0.0)
    held, st_on = mouths(0.5)
    assert st_off.support is None and st_on.support is not None
    assert st_on.support is avatar.mouth_support(0.5)  # one per avatar and value
    with torch.no_grad():
        codes = avatar.model.predictor.predict(torch.from_numpy(feats * 3))
        torch.testing.assert_close(free, avatar.model.code_embed(codes), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(held, avatar.model.code_embed(st_on.support.apply(codes)), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(held, free)  # some of these codes were rare and moved
