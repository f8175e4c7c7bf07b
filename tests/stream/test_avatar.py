"""The avatar stream: frames in order, the same images however the features arrive, the look-ahead it waits
for, and frames skipped without changing the ones after them."""

from __future__ import annotations

import numpy as np
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
    assert st.lag == avatar.syncer.arch.future < avatar.model.predictor.future
    _, skipped, _ = _run(avatar, speech, StreamSettings(frames_per_call=1, lookahead=0), 1, keep=lambda k: k % 3 == 0)
    assert [f.image is None for f in skipped] == [k % 3 != 0 for k in range(len(frames))]
    for a, b in zip(frames, skipped, strict=True):
        if b.image is not None:
            np.testing.assert_array_equal(a.image, b.image)
