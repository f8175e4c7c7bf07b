"""The avatar stream: frames in order, the same images however the features arrive, the look-ahead it waits
for, and frames skipped without changing the ones after them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from syncanim.audio.waveform import Waveform
from syncanim.registry import default_registry
from syncanim.stream.avatar import AvatarStream, StreamSettings, load_avatar
from syncanim.stream.speech import FeatureBlock, build_extractor, stream_features


def _features(info, seconds=1.2):
    rate = info.sample_rate
    t = np.arange(int(seconds * rate)) / rate
    w = Waveform((0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) * np.sin(2 * np.pi * 180 * t)).astype(np.float32), rate)
    ex = build_extractor(dict(info.audio), default_registry(), "cpu")
    return stream_features(ex, w, info.fps, int(seconds * info.fps))


def _run(avatar, speech, settings, step, keep=None):
    st = AvatarStream(avatar, settings)
    out, seen = [], []
    for s in range(0, len(speech.rms), step):
        got = st.push(FeatureBlock(s, speech.features[s:s + step], speech.rms[s:s + step]), keep)
        seen.append((s + min(step, len(speech.rms) - s), [f.index for f in got]))
        out += got
    out += st.flush(keep)
    return st, out, seen


def test_frames_do_not_depend_on_how_the_features_arrive(tiny_model):
    avatar = load_avatar(tiny_model.layout.root, torch.device("cpu"))
    speech = _features(avatar.info)
    n = len(speech.rms)
    st, one, seen = _run(avatar, speech, StreamSettings(frames_per_call=1), 1)
    _, many, _ = _run(avatar, speech, StreamSettings(frames_per_call=4), 7)
    assert [f.index for f in one] == list(range(n)) == [f.index for f in many]
    for a, b in zip(one, many, strict=True):
        # calls of 1 and of 4 frames run the field on different batch shapes: float sums may round apart by one level
        assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1
    # frame k waits for the features of frame k + lag, no longer
    for known, idx in seen:
        assert not idx or idx[-1] == known - 1 - st.lag
    assert st.lag == max(avatar.model.predictor.future, avatar.syncer.arch.future)
    assert np.std([f.image.astype(float).mean() for f in one]) > 0  # the frames change


def test_less_lookahead_comes_out_sooner_and_skipped_frames_leave_the_rest(tiny_model):
    avatar = load_avatar(tiny_model.layout.root, torch.device("cpu"))
    speech = _features(avatar.info)
    st, frames, seen = _run(avatar, speech, StreamSettings(frames_per_call=1, lookahead=0), 1)
    # no look-ahead at all: each frame as soon as its own features are in, the motion carried on 2 frames
    assert st.lag == 0 and st.shift == avatar.syncer.arch.future
    assert all(not idx or idx[-1] == known - 1 for known, idx in seen)
    _, skipped, _ = _run(avatar, speech, StreamSettings(frames_per_call=1, lookahead=0), 1, keep=lambda k: k % 3 == 0)
    assert [f.image is None for f in skipped] == [k % 3 != 0 for k in range(len(frames))]
    for a, b in zip(frames, skipped, strict=True):
        if b.image is not None:
            np.testing.assert_array_equal(a.image, b.image)


def test_carried_on_motion_continues_a_steady_turn():
    from syncanim.geometry import axis_angle_to_matrix
    from syncanim.motion.syncer import Motion
    from syncanim.stream.avatar import carry_on

    w = np.array([0.01, -0.02, 0.005])  # rad per frame
    rot = axis_angle_to_matrix(np.stack([w * k for k in range(5)]))
    trans = np.stack([np.array([0.1, 0.0, 1.0]) + k * np.array([0.002, -0.001, 0.0]) for k in range(5)])
    e = np.zeros((1, 3))
    r, t = carry_on(Motion(rot[1:2], trans[1:2], e), Motion(rot[2:3], trans[2:3], e), 2)
    np.testing.assert_allclose(r[0], rot[4], atol=1e-6)
    np.testing.assert_allclose(t[0], trans[4], atol=1e-6)


def test_silence_keeps_the_person_moving(tiny_model):
    avatar = load_avatar(tiny_model.layout.root, torch.device("cpu"))
    info = avatar.info
    n = int(3 * info.fps)
    ex = build_extractor(dict(info.audio), default_registry(), "cpu")
    silence = stream_features(ex, Waveform(np.zeros(3 * info.sample_rate, np.float32), info.sample_rate), info.fps, n)
    st = AvatarStream(avatar, StreamSettings(frames_per_call=1, lookahead=2))
    calls = [c for s in range(n) for c in st.prepare(FeatureBlock(s, silence.features[s:s + 1], silence.rms[s:s + 1]))]
    rot = np.stack([c.rotation[0] for c in calls])  # [T, 3, 3]
    steps = np.linalg.norm((rot[1:] - rot[:-1]).reshape(len(rot) - 1, -1), axis=1)
    assert len(calls) == n - st.lag and (steps > 0).mean() > 0.9  # a living head, not a frozen one


@pytest.mark.parametrize("static", [False, True])
def test_streams_drawn_together_give_each_stream_its_own_frames(tiny_model, static):
    """Streams prepared together (one mouth predictor and conditioning call for all) and drawn together give the
    frames each gives alone; also when each block's calls are launched and collected only after the next block
    is prepared (how many streams overlap preparing and drawing)."""
    from syncanim.stream.avatar import draw_calls, launch_calls, prepare_calls

    avatar = load_avatar(tiny_model.layout.root, torch.device("cpu"))
    speech = _features(avatar.info, 0.8)
    quiet = _features(avatar.info, 0.8)
    quiet.features[:] = speech.features[::-1]  # another stream hears other speech
    settings = StreamSettings(frames_per_call=2, static=static)
    alone = [_run(avatar, sp, settings, 5)[1] for sp in (speech, quiet)]
    streams = [AvatarStream(avatar, settings) for _ in range(2)]
    together: list[list] = [[], []]
    keeps = [None, lambda k: k % 2 == 0]  # the second stream skips its odd frames
    launched: list = []
    for s in range(0, len(speech.rms), 5):
        calls = prepare_calls([(st, FeatureBlock(s, sp.features[s:s + 5], sp.rms[s:s + 5]))
                               for st, sp in zip(streams, (speech, quiet), strict=True)])
        for pending in launched:  # the last block's frames, collected after this block was prepared
            for i, frames in enumerate(pending.frames()):
                together[i] += frames
        # the streams advance in step: their k-th calls go together
        launched = [launch_calls(list(zip(streams, pair, strict=True)), keeps) for pair in zip(*calls, strict=True)]
    for pending in launched:
        for i, frames in enumerate(pending.frames()):
            together[i] += frames
    for i, st in enumerate(streams):
        for pair in [(st, c) for c in st.finish()]:
            together[i] += draw_calls([pair], [keeps[i]])[0]
    assert [f.index for f in together[0]] == [f.index for f in alone[0]]
    for a, b in zip(alone[0], together[0], strict=True):
        assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1
    for a, b in zip(alone[1], together[1], strict=True):
        assert (b.image is None) == (b.index % 2 == 1)
        if b.image is not None:
            assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 1
    # and the two streams differ
    assert max(np.abs(a.image.astype(int) - b.image.astype(int)).max() for a, b in zip(*alone, strict=True)) > 1


def test_a_warm_up_draws_its_frames_and_leaves_the_next_stream_as_it_would_be(tiny_model):
    from syncanim.live.pipeline import warm_up
    from syncanim.stream.speech import SpeechStream

    avatar = load_avatar(tiny_model.layout.root, torch.device("cpu"))
    speech = _features(avatar.info, 0.6)
    settings = StreamSettings(frames_per_call=1, lookahead=1)
    _, before, _ = _run(avatar, speech, settings, 1)
    ex = build_extractor(dict(avatar.info.audio), default_registry(), "cpu")
    drawn = []
    st = AvatarStream(avatar, settings)
    st.draw = lambda call, keep=None, draw=st.draw: drawn.extend(draw(call, keep)) or drawn[-len(call.idx):]
    assert warm_up(st, SpeechStream(ex, avatar.info.fps, avatar.info.sample_rate), 3) >= 0
    assert [f.index for f in drawn][:3] == [0, 1, 2] and all(f.image is not None for f in drawn)
    _, after, _ = _run(avatar, speech, settings, 1)
    for a, b in zip(before, after, strict=True):
        assert np.array_equal(a.image, b.image)
