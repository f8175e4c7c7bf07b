"""Static-shape drawing: the compact renderer's frames from tensors of fixed size, room grown when a call needs
more (on CPU the same calls run eagerly; the GPU tests replay them from CUDA graphs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from syncanim.model.camera import Camera
from syncanim.stream.avatar import AvatarStream, StreamSettings, load_avatar
from syncanim.stream.graphs import StaticDraw
from syncanim.stream.speech import FeatureBlock

from .test_avatar import _features, _run


def _frames(avatar, speech, **settings):
    _, frames, _ = _run(avatar, speech, StreamSettings(frames_per_call=2, **settings), 3)
    return np.stack([f.image for f in frames]).astype(int)


@pytest.mark.parametrize("portrait", [False, True])
def test_static_draw_gives_the_compact_frames(tiny_model, portrait):
    avatar = load_avatar(tiny_model.layout.root, torch.device("cpu"))
    assert avatar.torso is not None
    speech = _features(avatar.info, 0.8)
    compact = _frames(avatar, speech, portrait=portrait)
    static = _frames(avatar, speech, portrait=portrait, static=True)
    assert compact.shape == static.shape and len(compact) == len(speech.rms)
    assert np.abs(static - compact).max() <= 1  # float rounding, then uint8 rounding
    drawer = avatar.drawers[("fp32", not portrait)]
    assert drawer.per_frame is not None and drawer.recaptures == 0


def test_a_call_that_wants_more_room_is_drawn_again_with_it(tiny_model):
    avatar = load_avatar(tiny_model.layout.root, torch.device("cpu"))
    i = avatar.info
    st = AvatarStream(avatar, StreamSettings(frames_per_call=2))
    speech = _features(avatar.info, 0.8)
    call = (st.prepare(FeatureBlock(0, speech.features, speech.rms)) + st.finish())[0]
    camera = Camera.from_numpy(call.rotation, call.translation, i.focal, i.cx, i.cy, i.image_size, "cpu")
    rects = avatar.model.head_rects(camera)
    drawer = StaticDraw(avatar.model, avatar.torso, (i.focal, i.cx, i.cy), i.image_size, "fp32", rects, capture=False)
    first = drawer.draw(camera, call.cond).astype(int)  # learns the room it needs
    assert drawer.per_frame is not None and drawer.recaptures == 0
    assert np.array_equal(drawer.draw(camera, call.cond).astype(int), first)
    drawer.per_frame = tuple(n / 4 for n in drawer.per_frame)  # too little room: the call is drawn again
    again = drawer.draw(camera, call.cond).astype(int)
    assert drawer.recaptures == 1 and np.abs(again - first).max() <= 1
    assert drawer.draw(camera, call.cond) is not None and drawer.recaptures == 1  # and the room stays
    small = StaticDraw(avatar.model, avatar.torso, (i.focal, i.cx, i.cy), i.image_size, "fp32", rects // 3,
                       capture=False)  # a rectangle too small for these poses: grown
    assert np.abs(small.draw(camera, call.cond).astype(int) - first).max() <= 1 and small.recaptures == 1
    with pytest.raises(ValueError, match="draw over"):
        drawer.draw(camera, call.cond, np.zeros((2, i.image_size, i.image_size, 3), np.uint8))


def test_launched_calls_give_their_own_frames_whenever_collected(tiny_model):
    """Calls queued one after another (launch) and collected afterwards, in any order, give the frames each
    gives alone; one that ran short of room is drawn again when collected."""
    avatar = load_avatar(tiny_model.layout.root, torch.device("cpu"))
    i = avatar.info
    st = AvatarStream(avatar, StreamSettings(frames_per_call=2))
    speech = _features(avatar.info, 1.2)
    calls = (st.prepare(FeatureBlock(0, speech.features, speech.rms)) + st.finish())[:3]
    cams = [Camera.from_numpy(c.rotation, c.translation, i.focal, i.cx, i.cy, i.image_size, "cpu") for c in calls]
    clip = Camera.from_numpy(avatar.replay.rotation, avatar.replay.translation, i.focal, i.cx, i.cy, i.image_size,
                             "cpu")
    drawer = StaticDraw(avatar.model, avatar.torso, (i.focal, i.cx, i.cy), i.image_size, "fp32",
                        avatar.model.head_rects(clip), capture=False)
    alone = [drawer.draw(cam, c.cond) for cam, c in zip(cams, calls, strict=True)]
    assert not np.array_equal(alone[0], alone[2])  # different frames: a mix-up would show
    pending = [drawer.launch(cam, c.cond) for cam, c in zip(cams, calls, strict=True)]
    for k in (2, 0, 1):
        assert pending[k].ready() and np.array_equal(pending[k].frames(), alone[k])
    drawer.per_frame = tuple(n / 4 for n in drawer.per_frame)
    short = drawer.launch(cams[1], calls[1].cond)
    assert drawer.recaptures == 0  # known only once the call has run: when collected
    assert np.abs(short.frames().astype(int) - alone[1].astype(int)).max() <= 1 and drawer.recaptures == 1


@pytest.mark.gpu
def test_graph_replays_give_the_compact_frames_on_gpu():
    from syncanim.bench import synthetic as syn
    from syncanim.model.conditioning import Conditioning
    from syncanim.model.head import NerfHeadConfig
    from syncanim.stream.draw import render_batch_uint8

    dev = torch.device("cuda")
    cfg = NerfHeadConfig(levels=4, log2_table=12, max_res=64, samples=8, hidden=16, audio_dim=8, geo_dim=4,
                         occupancy_res=16, prior_res=32)
    model, canonical = syn.synthetic_model(cfg, 4, 80)
    model = model.to(dev)
    cam, dist = syn.synthetic_camera(96, canonical)
    rot, trans = syn.synthetic_poses(250, dist)
    clip = Camera.from_numpy(rot, trans, cam.focal, cam.cx, cam.cy, 96, dev)
    drawer = StaticDraw(model, None, (cam.focal, cam.cx, cam.cy), 96, "fp32", model.head_rects(clip), capture=True)
    g = torch.Generator(device=dev).manual_seed(0)
    rng = np.random.default_rng(0)
    for frames in ([0, 1], [10, 11], [200, 201], [100, 30]):  # the first learns the room; replays read new inputs
        camera = Camera.from_numpy(rot[frames], trans[frames], cam.focal, cam.cx, cam.cy, 96, dev)
        cond = Conditioning(torch.randn(2, 8, generator=g, device=dev), torch.rand(2, 3, generator=g, device=dev),
                            model.latent_for(None, 2))
        under = rng.integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
        got = drawer.draw(camera, cond, under).astype(int)
        want = render_batch_uint8(model, camera, cond, under, precision="fp32", chunk=1 << 16).astype(int)
        assert np.abs(got - want).max() <= 1
    assert len(drawer.graphs) == 1
    # replays queued one after another, collected afterwards: each call's frames, not the last replay's
    calls = []
    for frames in ([3, 4], [150, 151], [60, 61]):
        camera = Camera.from_numpy(rot[frames], trans[frames], cam.focal, cam.cx, cam.cy, 96, dev)
        cond = Conditioning(torch.randn(2, 8, generator=g, device=dev), torch.rand(2, 3, generator=g, device=dev),
                            model.latent_for(None, 2))
        under = rng.integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)
        calls.append((camera, cond, under, drawer.launch(camera, cond, under)))
    for camera, cond, under, pending in calls:
        want = render_batch_uint8(model, camera, cond, under, precision="fp32", chunk=1 << 16).astype(int)
        assert np.abs(pending.frames().astype(int) - want).max() <= 1
