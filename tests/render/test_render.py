"""Rendering new speech with a trained model: an mp4 whose audio and video last as long as the speech."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from syncanim.audio.waveform import read_audio
from syncanim.config import RenderConfig, RuntimeConfig
from syncanim.errors import CheckpointError, DataError
from syncanim.media.video import iter_frames, probe
from syncanim.render.pipeline import run_render


def speech_like(path, seconds=2.3, rate=44100, channels=2):
    t = np.arange(int(seconds * rate)) / rate
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    x = (0.3 * env * np.sin(2 * np.pi * 180 * t)).astype(np.float32)
    sf.write(path, np.stack([x] * channels, 1) if channels > 1 else x, rate)
    return path


@pytest.mark.parametrize("portrait,pose", [(False, "audio"), (False, "replay"), (True, "static")])
def test_render_matches_the_audio_duration(tiny_model, tmp_path, portrait, pose):
    wav = speech_like(tmp_path / "speech.wav")
    out = tmp_path / "out.mp4"
    r = run_render(tiny_model.layout.root, wav, out, RenderConfig(portrait=portrait, pose=pose),
                   RuntimeConfig(device="cpu"))
    info = probe(out)
    audio = read_audio(out)
    assert info.has_audio and info.fps == 25.0
    assert r.frames == info.num_frames == int(np.ceil(2.3 * 25))
    assert abs(info.duration_s - 2.3) <= 1 / 25
    assert abs(audio.duration_s - 2.3) <= 1 / 25
    frames = [f for _, f in iter_frames(out, 25, 0, 3)]
    assert frames[0].shape == (128, 128, 3) and frames[0].std() > 5


def test_long_audio_loops_the_replayed_poses(tiny_model, tmp_path):
    wav = speech_like(tmp_path / "long.wav", seconds=12.0, rate=16000, channels=1)  # longer than the 10 s clip
    r = run_render(tiny_model.layout.root, wav, tmp_path / "long.mp4", RenderConfig(pose="replay"),
                   RuntimeConfig(device="cpu"))
    assert r.frames == 300 and abs(probe(r.path).duration_s - 12.0) <= 1 / 25


def test_bad_audio_is_refused(tiny_model, tmp_path):
    cfg, rt = RenderConfig(), RuntimeConfig(device="cpu")
    with pytest.raises(DataError, match="not found"):
        run_render(tiny_model.layout.root, tmp_path / "none.wav", tmp_path / "o.mp4", cfg, rt)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    with pytest.raises(DataError):
        run_render(tiny_model.layout.root, bad, tmp_path / "o.mp4", cfg, rt)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    with pytest.raises(DataError, match="silent"):
        run_render(tiny_model.layout.root, silent, tmp_path / "o.mp4", cfg, rt)
    assert not (tmp_path / "o.mp4").exists()


def test_model_folder_problems_are_refused(tiny_model, tmp_path):
    import shutil

    wav = speech_like(tmp_path / "s.wav")
    with pytest.raises(CheckpointError, match="not a model folder"):
        run_render(tmp_path, wav, tmp_path / "o.mp4", RenderConfig(), RuntimeConfig(device="cpu"))
    old = tmp_path / "old"
    shutil.copytree(tiny_model.layout.root, old)
    info = json.loads((old / "model.json").read_text())
    info["format"] = 0
    (old / "model.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="format 0"):
        run_render(old, wav, tmp_path / "o.mp4", RenderConfig(), RuntimeConfig(device="cpu"))


def test_precomputed_features_render_what_the_backend_would(tiny_model, tmp_path):
    from syncanim.audio.precompute import speech_features_file
    from syncanim.registry import default_registry

    wav = speech_like(tmp_path / "speech.wav", seconds=1.0)
    feats = tmp_path / "speech.npy"
    shape = speech_features_file(tiny_model.layout.root, wav, feats, default_registry())
    assert shape[0] == 25
    cfg, rt = RenderConfig(), RuntimeConfig(device="cpu")
    a = run_render(tiny_model.layout.root, wav, tmp_path / "a.mp4", cfg, rt)
    b = run_render(tiny_model.layout.root, wav, tmp_path / "b.mp4", cfg, rt, features=feats)
    fa = np.stack([f for _, f in iter_frames(a.path, 25)])
    fb = np.stack([f for _, f in iter_frames(b.path, 25)])
    assert fa.shape == fb.shape and np.abs(fa.astype(int) - fb.astype(int)).max() <= 1
    np.save(tmp_path / "wrong.npy", np.zeros((25, 3, 7), np.float32))
    with pytest.raises(DataError, match="expects"):
        run_render(tiny_model.layout.root, wav, tmp_path / "c.mp4", cfg, rt, features=tmp_path / "wrong.npy")
    np.savez(tmp_path / "several.npz", a=np.zeros(3))
    with pytest.raises(DataError, match="single array"):
        run_render(tiny_model.layout.root, wav, tmp_path / "c.mp4", cfg, rt, features=tmp_path / "several.npz")


def _poses_rendered(monkeypatch, model_dir, wav, out, cfg):
    """Run a render and record the head rotations it renders: [T, 3, 3]."""
    from syncanim.stream import avatar

    seen = []
    person, batch = avatar.render_person, avatar.render_batch_uint8

    def spy_person(model, torso, camera, *a, **k):
        seen.append(camera.poses_numpy()[0])
        return person(model, torso, camera, *a, **k)

    def spy_batch(model, camera, *a, **k):
        seen.append(camera.poses_numpy()[0])
        return batch(model, camera, *a, **k)

    monkeypatch.setattr(avatar, "render_person", spy_person)
    monkeypatch.setattr(avatar, "render_batch_uint8", spy_batch)
    run_render(model_dir, wav, out, cfg, RuntimeConfig(device="cpu"))
    monkeypatch.undo()
    return np.concatenate(seen)


def test_audio_pose_comes_from_the_speech_and_old_models_replay(tiny_model, tmp_path, monkeypatch, caplog):
    import shutil

    from syncanim.model.folder import load_replay

    root = tiny_model.layout.root
    wav = speech_like(tmp_path / "speech.wav", seconds=3.0, rate=16000, channels=1)
    audio = _poses_rendered(monkeypatch, root, wav, tmp_path / "a.mp4", RenderConfig())
    again = _poses_rendered(monkeypatch, root, wav, tmp_path / "b.mp4", RenderConfig())
    other = _poses_rendered(monkeypatch, root, wav, tmp_path / "c.mp4", RenderConfig(seed=3))
    replay = _poses_rendered(monkeypatch, root, wav, tmp_path / "d.mp4", RenderConfig(pose="replay"))
    np.testing.assert_array_equal(audio, again)  # the same speech and seed: the same motion
    assert not np.allclose(audio, other, atol=1e-4)
    assert not np.allclose(audio, replay, atol=1e-4)
    np.testing.assert_allclose(replay, load_replay(tiny_model.layout).rotation[:75], atol=1e-5)
    # a model trained before the motion syncer: the poses replay, with a warning
    old = tmp_path / "old"
    shutil.copytree(root, old, ignore=shutil.ignore_patterns("checkpoint"))
    (old / "motion.safetensors").unlink()
    with caplog.at_level("WARNING"):
        legacy = _poses_rendered(monkeypatch, old, wav, tmp_path / "e.mp4", RenderConfig())
    np.testing.assert_allclose(legacy, replay, atol=1e-6)
    assert "no motion syncer" in caplog.text
