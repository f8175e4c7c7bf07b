"""``render``, ``eval`` (model mode) and ``bench`` render the same frames of the same model: each runs the
model's one ``render_frames`` through :func:`syncanim.render.pipeline.render_batch`, over the same torso."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from syncanim.audio.waveform import Waveform
from syncanim.bench import pipeline as bp
from syncanim.config import BenchConfig, RenderConfig, RuntimeConfig
from syncanim.data.dataset import load_head_data
from syncanim.eval import pipeline as ep
from syncanim.model.camera import Camera
from syncanim.model.conditioning import FrameBatch
from syncanim.model.folder import ModelLayout, Replay, dataset_path, load_model, load_torso
from syncanim.model.head import EXPRESSIONS
from syncanim.motion.mouth_support import mouth_support
from syncanim.render.pipeline import render_person
from syncanim.render.validation import split_level
from syncanim.stream.avatar import Avatar, Call

CPU = RuntimeConfig(device="cpu")


def test_render_eval_and_bench_give_identical_frames(tiny_model, tmp_path, monkeypatch):
    root = tiny_model.layout.root
    model, info = load_model(root)
    torso = load_torso(ModelLayout(root), info)
    assert torso is not None
    data = load_head_data(dataset_path(root, info), EXPRESSIONS)
    ids = list(range(data.num_train, data.num_frames))
    per_call = RenderConfig().frames_per_call
    chunk = RenderConfig().chunk_rays

    # eval, model mode: the frames it scores against the held-out ones
    handed = []
    array_source = ep.array_source
    monkeypatch.setattr(ep, "array_source", lambda frames: handed.append(frames) or array_source(frames))
    ep.run_eval(tmp_path / "eval", model=root, runtime=CPU)
    evaluated = handed[0]
    assert evaluated.shape == (len(ids), data.size, data.size, 3)

    rendered, benched = [], []
    support = mouth_support(info.mouth, RenderConfig().mouth_support, torch.device("cpu"))
    level = split_level(info.mouth, info.fps, dataset_path(root, info), data, RenderConfig().mouth_level)
    feats = torch.from_numpy(data.audio)
    for s in range(0, len(ids), per_call):  # calls of frames_per_call frames, as eval makes them
        k = ids[s:s + per_call]
        with torch.no_grad():  # the predicted codes levelled and held to the model's mouth support, as eval does
            codes = model.predictor(feats, torch.tensor(k))
            if level is not None:  # one stream's level over the frames in order (in silence: the subject's pauses)
                codes = level[0].apply(codes, level[1][k])
            if support is not None:
                codes = support.apply(codes)
            cond = model.condition(FrameBatch(torch.from_numpy(data.expressions[k]), codes=codes))
        # render: the call run_render makes for each batch of frames
        camera = Camera.from_numpy(data.rotation[k], data.translation[k], info.focal, info.cx, info.cy,
                                   info.image_size, "cpu")
        rendered.append(render_person(model, torso, camera, cond, precision="fp32", chunk=chunk))
        # bench: its head_render and composite stages on the same frames
        replay = Replay(data.rotation[k], data.translation[k], data.expressions[k],
                        np.zeros((len(k), 3, 2), np.float32), len(k))
        avatar = Avatar(root, model, info, replay, None, torso, torch.device("cpu"))
        subject = bp._Subject("m", avatar, SimpleNamespace(per_frame=info.audio_per_frame, dim=info.audio_dim), "x",
                              Waveform(np.zeros(info.sample_rate, np.float32), info.sample_rate), [], [])
        path = bp._Path(subject, BenchConfig(batch=len(k), chunk_rays=chunk), torch.device("cpu"), "fp32", None)
        call = Call(np.asarray(k), data.rotation[k], data.translation[k], cond, [None] * len(k), {})
        benched.append(np.stack(path.download(path.render(call, path.under(call)), call)))

    np.testing.assert_array_equal(np.concatenate(rendered), evaluated)
    np.testing.assert_array_equal(np.concatenate(benched), evaluated)
    assert evaluated.std() > 5  # frames with a head in them
