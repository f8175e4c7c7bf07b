"""The mouth level: a shrunken mouth is raised back to the subject's speaking level, never beyond the cap,
never lowered, silence left alone but for a mouth wider than the subject's pauses, and the same however the frames
arrive."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from syncanim.motion.mouth_level import (
    LevelReference,
    MouthLevel,
    apply_levels,
    code_level,
    level_reference,
    rest_code,
    stream_level,
)

FPS = 25.0


def _speech(n: int, seed: int = 0, c: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A subject's codes [n, C] about a rest code, and loud frames: speech throughout."""
    rng = np.random.default_rng(seed)
    rest = np.array([0.5, -1.0, 0.2, 0.0])[:c]
    codes = rest + rng.normal(size=(n, c)) * np.array([1.0, 0.6, 0.3, 0.1])[:c]
    return rest, codes, np.full(n, 0.2)


def _ref(rest: np.ndarray, codes: np.ndarray) -> LevelReference:
    w = np.array([0.6, 0.25, 0.1, 0.05])[:codes.shape[1]]
    return LevelReference(rest, w, code_level(codes, rest, w))


def _apply(level: MouthLevel, codes: np.ndarray, rms: np.ndarray, step: int) -> np.ndarray:
    out = [level.apply(torch.from_numpy(codes[s:s + step]).float(), rms[s:s + step]) for s in range(0, len(codes), step)]
    return torch.cat(out).double().numpy()


def test_streams_levelled_together_get_what_each_gets_alone():
    rest, codes, rms = _speech(120)
    ref = _ref(rest, codes)
    quiet = rest + 0.5 * (codes - rest)
    other = rest + 0.8 * (codes[::-1] - rest)
    alone = [_apply(MouthLevel(ref, FPS, max_gain=2.5), quiet, rms, 6),
             _apply(MouthLevel(ref, FPS, max_gain=1.5), other, rms, 6)]
    levels = [MouthLevel(ref, FPS, max_gain=2.5), None, MouthLevel(ref, FPS, max_gain=1.5)]
    together: list[list[np.ndarray]] = [[], [], []]
    for s in range(0, 120, 6):  # each block: three streams' frames, the middle one without a level
        blocks = [quiet[s:s + 6], codes[s:s + 2], other[s:s + 6]]
        out = apply_levels([(lv, len(b), rms[s:s + len(b)]) for lv, b in zip(levels, blocks, strict=True)],
                           torch.from_numpy(np.concatenate(blocks)).float()).double().numpy()
        for i, part in enumerate(np.split(out, [6, 8])):
            together[i].append(part)
    np.testing.assert_allclose(np.concatenate(together[0]), alone[0], atol=1e-6)
    np.testing.assert_allclose(np.concatenate(together[2]), alone[1], atol=1e-6)
    assert np.array_equal(np.concatenate(together[1]), codes[np.r_[[np.arange(s, s + 2) for s in range(0, 120, 6)]]
                                                           .ravel()].astype(np.float32))  # untouched
    assert not np.allclose(alone[0], quiet, atol=1e-3)  # and the level did act
    with pytest.raises(ValueError, match="frames"):
        apply_levels([(levels[0], 3, rms[:3])], torch.zeros(4, 4))


def test_rest_is_the_least_open_frames_and_the_level_their_weighted_distance():
    codes = np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 3.0], [np.nan, 1.0]] + [[4.0, 4.0]] * 16)
    opening = np.array([0.01, 0.02, 0.5, 0.0] + [0.9] * 16)
    np.testing.assert_allclose(rest_code(codes, opening, share=0.1), [0.5, 1.0])  # the two least open with a code
    w = np.array([0.75, 0.25])
    assert code_level(np.array([[0.5, 1.0]] * 3), np.array([0.5, 1.0]), w) == 0.0
    assert code_level(np.array([[2.5, 1.0], [0.5, 3.0]]), np.array([0.5, 1.0]), w) == pytest.approx(np.sqrt(2.0))
    ref = level_reference(codes[4:], opening[4:], np.ones(16, bool), w, render_gain=1.3)
    assert ref.level == pytest.approx(0.0)  # every frame alike: the rest is them, nothing moves
    back = LevelReference.from_json(_ref(*_speech(50)[:2]).to_json())
    assert back.level > 0 and back.rest.shape == (4,) and back.weight.shape == (4,)


def test_a_shrunken_mouth_is_raised_to_the_subjects_level_and_never_past_the_cap():
    rest, codes, rms = _speech(600)
    ref = _ref(rest, codes)
    quiet = rest + 0.55 * (codes - rest)  # new speech: the predictor's codes nearer the mean
    out = _apply(MouthLevel(ref, FPS, max_gain=2.5), quiet, rms, 4)
    tail = slice(200, None)  # after the running level has settled (4 s)
    assert code_level(out[tail], rest, ref.weight) == pytest.approx(ref.level, rel=0.1)
    assert code_level(quiet[tail], rest, ref.weight) < 0.6 * ref.level
    # the shape is kept: every frame moves along its own direction from rest, by one gain
    g = np.linalg.norm(out - rest, axis=1) / np.linalg.norm(quiet - rest, axis=1)
    np.testing.assert_allclose(out - rest, g[:, None] * (quiet - rest), atol=1e-5)
    assert g.min() >= 1.0 - 1e-6 and g[tail].std() < 0.1
    capped = _apply(MouthLevel(ref, FPS, max_gain=1.3), quiet, rms, 4)
    gc = np.linalg.norm(capped - rest, axis=1) / np.linalg.norm(quiet - rest, axis=1)
    assert gc.max() <= 1.3 + 1e-5 and gc[tail].min() > 1.29


def test_a_lively_mouth_is_not_lowered_and_a_gain_of_one_changes_nothing():
    rest, codes, rms = _speech(300)
    ref = _ref(rest, codes)
    loud = rest + 1.5 * (codes - rest)
    out = _apply(MouthLevel(ref, FPS, max_gain=2.0), loud, rms, 5)
    g = np.linalg.norm(out - rest, axis=1) / np.linalg.norm(loud - rest, axis=1)
    assert g.min() >= 1 - 1e-6  # never lowered; raised at most while the first frames are all it has heard
    np.testing.assert_allclose(out[25:], loud[25:], atol=1e-5)
    np.testing.assert_allclose(_apply(MouthLevel(ref, FPS, max_gain=1.0), 0.3 * codes, rms, 5), 0.3 * codes, atol=1e-6)
    with pytest.raises(ValueError):
        MouthLevel(ref, FPS, max_gain=0.5)
    assert stream_level({"components": 4}, FPS, 2.0) is None  # a model trained without a reference
    assert stream_level({"level": ref.to_json()}, FPS, 1.0) is None
    assert isinstance(stream_level({"level": ref.to_json()}, FPS, 2.0), MouthLevel)


def test_silence_leaves_the_level_alone_and_the_frames_arrive_in_any_chunks():
    rest, codes, rms = _speech(400, seed=3)
    ref = _ref(rest, codes)
    quiet = rest + 0.5 * (codes - rest)
    rms = rms.copy()
    rms[150:250] = 1e-5  # four seconds of silence, the mouth at rest
    quiet[150:250] = rest + 0.02 * (codes[150:250] - rest)
    lv = MouthLevel(ref, FPS, max_gain=3.0)
    out = _apply(lv, quiet, rms, 1)
    g = np.linalg.norm(out - rest, axis=1) / np.linalg.norm(quiet - rest, axis=1)
    assert np.ptp(g[150:250]) < 1e-4  # the gain holds through the silence ...
    assert np.abs(out[150:250] - rest).max() < 0.15 * ref.level  # ... and the mouth at rest stays near it
    for step in (3, 7, 64):
        np.testing.assert_allclose(_apply(MouthLevel(ref, FPS, max_gain=3.0), quiet, rms, step), out, atol=1e-5)


def test_in_silence_a_mouth_wider_than_the_subjects_pauses_is_drawn_back_to_them():
    rest, codes, rms = _speech(400, seed=4)
    speech = np.ones(400, bool)
    speech[100:200] = False  # the subject's pauses: the mouth near the rest, at most 0.3 of the way out
    codes[100:200] = rest + np.linspace(0.0, 0.3, 100)[:, None] * (codes[100:200] - rest)
    w = np.array([0.6, 0.25, 0.1, 0.05])
    opening = np.linalg.norm(codes - rest, axis=1)
    ref = level_reference(codes, opening, speech, w, render_gain=1.0)
    quiet_dist = np.sqrt((((codes[100:200] - ref.rest) ** 2) * w).sum(1))
    assert ref.silence == pytest.approx(np.quantile(quiet_dist, 0.5))
    assert LevelReference.from_json(ref.to_json()).silence == pytest.approx(ref.silence)
    assert LevelReference.from_json({k: v for k, v in ref.to_json().items() if k != "silence"}).silence is None
    new = rest + 0.6 * (codes - rest)  # new speech ...
    loud = rms.copy()
    loud[250:300] = 1e-5  # ... with a pause the predictor answers with a gaping mouth
    new[250:300] = rest + 3.0 * (codes[250:300] - rest)
    out = _apply(MouthLevel(ref, FPS, max_gain=2.0), new, loud, 5)
    d = np.sqrt((((out - ref.rest) ** 2) * w).sum(1))
    assert d[250:300].max() <= ref.silence + 1e-5  # drawn back ...
    g = np.linalg.norm(out[250:300] - ref.rest, axis=1) / np.linalg.norm(new[250:300] - ref.rest, axis=1)
    np.testing.assert_allclose(out[250:300] - ref.rest, g[:, None] * (new[250:300] - ref.rest), atol=1e-5)  # ... in shape
    assert d[200:250].mean() > 1.5 * d[250:300].max()  # speech is left to the level
    unbound = _apply(MouthLevel(replace(ref, silence=None), FPS, max_gain=2.0), new, loud, 5)
    assert np.sqrt((((unbound[250:300] - ref.rest) ** 2) * w).sum(1)).max() > 2 * ref.silence  # a model without it


def test_a_trained_model_carries_its_reference_and_streams_level_with_it(tiny_model):
    from syncanim.stream.avatar import AvatarStream, StreamSettings, load_avatar
    from syncanim.stream.speech import FeatureBlock

    avatar = load_avatar(tiny_model.layout.root, torch.device("cpu"))
    ref = LevelReference.from_json(avatar.info.mouth["level"])
    c = avatar.model.predictor.code_dim
    assert ref.rest.shape == (c,) and ref.weight.shape == (c,) and ref.level > 0
    np.testing.assert_allclose(ref.weight.sum(), 1.0, rtol=1e-5)
    rng = np.random.default_rng(0)
    n = 40
    feats = rng.normal(size=(n, avatar.info.audio_per_frame, avatar.info.audio_dim)).astype(np.float32)
    block = FeatureBlock(0, feats, np.full(n, 0.2))

    def mouths(settings):
        st = AvatarStream(avatar, settings)
        calls = st.prepare(block) + st.finish()
        return torch.cat([k.cond.mouth for k in calls]), st

    plain, st_off = mouths(StreamSettings(pose="replay", mouth_level=1.0, mouth_support=0.0))
    # a reference far above what this speech reaches: the gain rises from 1 towards the cap
    high = {**avatar.info.mouth, "level": {**avatar.info.mouth["level"], "level": 10 * ref.level}}
    avatar.info = replace(avatar.info, mouth=high)
    raised, st_on = mouths(StreamSettings(pose="replay", mouth_level=2.0, mouth_support=0.0))
    assert st_off.level is None and st_on.level is not None
    with torch.no_grad():  # the embedding is affine: the gain shows as a factor on the distance from rest
        at_rest = avatar.model.code_embed(torch.as_tensor(ref.rest, dtype=torch.float32))
    d_off, d_on = plain - at_rest, raised - at_rest
    g = (d_on * d_off).sum(1) / (d_off * d_off).sum(1)
    torch.testing.assert_close(d_on, g[:, None] * d_off, atol=1e-4, rtol=1e-3)
    assert g.min() >= 1 - 1e-4 and g.max() <= 2 + 1e-4 and g[-1] > g[0] + 0.2
