import hashlib
import json
import os
import shutil

import numpy as np
import pytest

from syncanim.audio.waveform import Waveform, read_audio
from syncanim.config import SampleConfig
from syncanim.errors import ConfigError
from syncanim.media.video import iter_frames, probe
from syncanim.sample import SampleTruth, generate_sample
from syncanim.sample.generate import (
    LEAD_S,
    MAX_ANGLE_DEG,
    blink_curve,
    mouth_track,
    plan_sample,
    render_frames,
    sample_speech,
)

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

SHORT = SampleConfig(seconds=3.6)  # 90 frames: one blink, speech cut at a pause


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """The short sample generated twice, into two folders."""
    out = []
    for name in ("a", "b"):
        path = tmp_path_factory.mktemp(name) / "sample.mp4"
        calls: list[tuple] = []
        truth = generate_sample(path, SHORT, progress=lambda s, d, t, calls=calls: calls.append((s, d, t)))
        out.append((path, truth, calls))
    return out


@pytest.fixture(scope="module")
def frames(clips):
    path, truth, _ = clips[0]
    return [rgb for _, rgb in iter_frames(path, truth.fps)]


@pytest.fixture(scope="module")
def tracked(frames):
    """MediaPipe FaceMesh landmarks per frame ([478, 2] pixels), None where no face was found."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    import mediapipe as mp

    out = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True) as mesh:
        for rgb in frames:
            res = mesh.process(rgb)
            if not res.multi_face_landmarks:
                out.append(None)
                continue
            h, w = rgb.shape[:2]
            out.append(np.array([[p.x * w, p.y * h] for p in res.multi_face_landmarks[0].landmark]))
    return out


def _dist(lm, a, b):
    return float(np.linalg.norm(lm[a] - lm[b]))


def _eye_aspect(lm):
    left = (_dist(lm, 160, 144) + _dist(lm, 158, 153)) / (2 * _dist(lm, 33, 133))
    right = (_dist(lm, 385, 380) + _dist(lm, 387, 373)) / (2 * _dist(lm, 362, 263))
    return 0.5 * (left + right)


def test_writes_video_with_audio_and_truth(clips):
    path, truth, calls = clips[0]
    info = probe(path)
    assert (info.width, info.height) == (512, 512)
    assert info.fps == pytest.approx(25.0)
    assert info.num_frames == truth.num_frames == 90
    assert info.has_audio and info.audio_rate == 16000
    audio = read_audio(path)
    assert audio.duration_s == pytest.approx(truth.duration_s, abs=0.1)
    assert audio.rms() > 0.01
    assert not list(path.parent.glob("*.part"))
    saved = json.loads(path.with_suffix(".json").read_text())
    assert SampleTruth.from_dict(saved) == truth
    assert calls[0] == ("sample", 0, 90) and calls[-1] == ("sample", 90, 90)


def test_truth_is_plausible(clips):
    truth = clips[0][1]
    n = truth.num_frames
    mouth, blink = np.array(truth.mouth_open), np.array(truth.blink)
    assert mouth.shape == blink.shape == (n,)
    assert mouth.min() >= 0 and mouth.max() <= 1 and blink.min() >= 0 and blink.max() <= 1
    assert np.all(mouth[: int(LEAD_S * truth.fps) - 1] == 0)  # silence before the speech
    assert mouth.max() > 0.7 and (mouth > 0.3).mean() > 0.3
    assert len(truth.blink_frames) >= 1 and all(blink[k] == 1 for k in truth.blink_frames)
    assert 2 <= (blink > 0.5).sum() / len(truth.blink_frames) <= 5  # ~200 ms each at 25 fps
    angle, shift = np.array(truth.head_angle_deg), np.array(truth.head_shift_px)
    assert shift.shape == (n, 2) and np.abs(angle).max() <= MAX_ANGLE_DEG + 1e-6
    assert np.abs(np.diff(angle)).max() < 0.5  # smooth: well under a degree per frame
    assert np.abs(angle).max() > 0.5 and np.abs(shift).max() > 1  # but it does move


def test_same_config_same_bytes(clips):
    (a, ta, _), (b, tb, _) = clips
    assert ta == tb
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    assert a.with_suffix(".json").read_bytes() == b.with_suffix(".json").read_bytes()


def test_seed_changes_blinks_and_head_motion():
    t0, w0 = plan_sample(SHORT)
    t1, w1 = plan_sample(SHORT.model_copy(update={"seed": 1}))
    np.testing.assert_array_equal(w0.samples, w1.samples)  # same speech
    assert t0.mouth_open == t1.mouth_open
    assert t0.head_angle_deg != t1.head_angle_deg and t0.blink != t1.blink


def test_facemesh_follows_mouth_and_blinks(clips, tracked):
    truth = clips[0][1]
    assert all(lm is not None for lm in tracked), "FaceMesh lost the face"
    lips = np.array([_dist(lm, 13, 14) for lm in tracked])
    r = np.corrcoef(lips, truth.mouth_open)[0, 1]
    assert r > 0.7, f"inner-lip distance vs mouth_open: r={r:.2f}"
    ear = np.array([_eye_aspect(lm) for lm in tracked])
    away = [k for k in range(truth.num_frames) if all(abs(k - b) >= 6 for b in truth.blink_frames)]
    at = ear[truth.blink_frames]
    assert at.max() < 0.6 * np.median(ear[away]), (at, np.median(ear[away]))


def test_other_sizes_render():
    config = SampleConfig(seconds=2.0, size=256)
    truth, _ = plan_sample(config)
    first = next(render_frames(truth))
    assert first.shape == (256, 256, 3) and first.dtype == np.uint8
    assert truth.head_pivot_px == [v / 2 for v in plan_sample(SHORT)[0].head_pivot_px]


def test_output_must_be_mp4(tmp_path):
    with pytest.raises(ConfigError, match="mp4"):
        generate_sample(tmp_path / "sample.json", SHORT)
    assert not list(tmp_path.iterdir())


def test_short_speech_is_padded_and_long_speech_cut():
    n = 16000 * 4
    short, span, wpm = sample_speech(SampleConfig(seconds=4.0, text="Hello there."), n)
    assert len(short.samples) == n and wpm == 150
    assert span[0] == pytest.approx(LEAD_S) and span[1] < 2.5
    assert np.all(short.samples[: int(LEAD_S * 16000)] == 0)
    long, span, wpm = sample_speech(SampleConfig(seconds=4.0), n)  # the default text takes ~11 s
    assert len(long.samples) == n and wpm > 150
    assert span[1] <= 4.0 and long.rms() > 0.01


def test_mouth_track_follows_loudness():
    sr = 16000
    t = np.arange(2 * sr) / sr
    x = np.where((t > 0.5) & (t < 1.5), 0.3 * np.sin(2 * np.pi * 220 * t), 0.0).astype(np.float32)
    m = mouth_track(Waveform(x, sr), 25.0, 50)
    assert m.shape == (50,)
    assert m[:10].max() == 0 and m[42:].max() == 0
    assert m[15:35].min() > 0.9
    assert np.all(mouth_track(Waveform(np.zeros(sr, np.float32), sr), 25.0, 25) == 0)


def test_blink_curve_shape():
    t = np.linspace(-0.5, 0.5, 1001)
    b = blink_curve(t, 0.0)
    assert b.max() == 1 and b[500] == 1
    assert b[np.abs(t) > 0.15].max() == 0
    closed = t[b > 0.5]
    assert 0.08 < closed[-1] - closed[0] < 0.16
