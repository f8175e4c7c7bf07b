"""The motion syncer: fitted on a made-up subject, it moves as much as they do, smoothly, causally,
differently for different speech, streams exactly as it renders, and survives a model folder."""

import numpy as np
import pytest
import torch

from syncanim.config import MotionTrainConfig
from syncanim.geometry import axis_angle_to_matrix, matrix_to_euler
from syncanim.motion.filters import lowpass, lowpass_alpha
from syncanim.motion.syncer import Motion, generate_motion
from syncanim.train.motion import fit_motion

FPS = 25.0
BASE = np.array([[1, 0, 0], [0, -1, 0], [0, 0, -1.0]])  # the head facing the camera


def _speech(n, seed):
    """Features [n, 2, 8] (smooth in time, like speech) and each frame's loudness [n]."""
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(n, 2, 8, generator=g)
    f = (f + torch.roll(f, 1, 0) + torch.roll(f, 2, 0)) / 3
    rms = np.where((np.arange(n) // 40) % 3 == 2, 0.0, 0.1)  # 1.6 s of speech, 0.8 s of pause
    return f, rms


def _subject(n=1500, seed=0):
    """A made-up subject: head yaw partly follows the speech, everything sways slowly, the head shifts sideways as it
    turns (pivoting at the neck), blinks every ~3 s."""
    feats, rms = _speech(n, seed)
    rng = np.random.default_rng(seed)
    alpha = lowpass_alpha(FPS, 1.0)
    drive = lowpass(feats.flatten(1).numpy() @ rng.standard_normal((16, 1)), lowpass_alpha(FPS, 3.0))[:, 0]
    sway = lowpass(np.cumsum(rng.standard_normal((n, 6)), 0) * 0.02, alpha)
    sway -= lowpass(sway, lowpass_alpha(FPS, 0.1))  # no slow drift
    rotvec = np.stack([sway[:, 0] * 0.5, drive / drive.std() * 0.05 + sway[:, 1], sway[:, 2] * 0.5], 1)
    rotation = BASE @ axis_angle_to_matrix(rotvec)
    translation = np.array([0.0, 0.0, 0.6]) + sway[:, 3:6] * 0.1
    translation[:, 0] += 0.5 * rotvec[:, 1]
    closure = np.full((n, 2), 0.1)
    for p in range(40, n - 8, 70):
        closure[p:p + 7] += np.array([0.2, 0.5, 0.9, 1.0, 0.8, 0.4, 0.1])[:, None]
    expressions = np.concatenate([closure, sway[:, :1] * 3], 1)
    return feats, rms, rotation.astype(np.float32), translation.astype(np.float32), expressions.astype(np.float32)


@pytest.fixture(scope="module")
def fitted():
    feats, rms, rot, trans, expr = _subject()
    cfg = MotionTrainConfig(steps=200, batch=256, run=32, hidden=16, past=6, future=2)
    syncer, report = fit_motion(feats, rms, rot, trans, expr, 1500, FPS, cfg, torch.Generator().manual_seed(0))
    return syncer, report, (feats, rms, rot, trans, expr)


def _amplitude_jitter(rotation):
    """Total spread of the angles (degrees) and mean |second difference| (degrees / frame^2), about the
    camera-facing base rotation (so no angle wraps)."""
    e = np.degrees(matrix_to_euler(BASE.T @ rotation.astype(np.float64)))
    return np.sqrt(e.var(0).sum()), np.abs(np.diff(e, 2, axis=0)).sum(1).mean()


def test_new_speech_moves_the_head_like_the_subject(fitted):
    syncer, report, (_, _, rot, _, expr) = fitted
    assert max(report.holdout_correlation[:6]) > 0.3  # the yaw that follows the speech is found on unseen frames
    assert report.blinks_found == len(range(40, 1500 - 8, 70))
    feats, rms = _speech(3000, seed=7)  # speech the syncer never heard
    motion = generate_motion(syncer, feats, rms)
    assert len(motion) == 3000 and motion.expressions.shape == (3000, 3)
    amp, jitter = _amplitude_jitter(motion.rotation)
    amp0, jitter0 = _amplitude_jitter(rot)
    assert 0.7 * amp0 < amp < 1.3 * amp0
    assert jitter <= jitter0
    blinks_per_min = (np.diff((motion.expressions[:, :2].min(1) > 0.5).astype(int)) == 1).sum() / 2.0
    assert 0.7 * report.blink_rate_per_min < blinks_per_min < 1.3 * report.blink_rate_per_min
    assert 0.5 * expr[:, 2].std() < motion.expressions[:, 2].std() < 1.5 * expr[:, 2].std()


def test_new_speech_turns_and_shifts_the_head_together_as_the_subject_does(fitted):
    """The pose's channels keep the clip's covariance: the sideways shift follows the turn as closely as in the clip,
    and the poses lie as near the clip's as its own do (Mahalanobis distance under the clip's covariance)."""
    from syncanim.motion.syncer import motion_channels

    syncer, _, (_, _, rot, trans, _) = fitted
    motion = generate_motion(syncer, *_speech(3000, seed=7))
    mean_rot = syncer.mean_rotation.numpy().astype(np.float64)
    seen = motion_channels(mean_rot, rot, trans)
    made = motion_channels(mean_rot, motion.rotation, motion.translation)
    assert np.corrcoef(seen[:, 1], seen[:, 3])[0, 1] > 0.9
    assert np.corrcoef(made[:, 1], made[:, 3])[0, 1] > 0.8
    prec = np.linalg.inv(np.cov(seen.T))

    def distance(x):
        d = x - seen.mean(0)
        return np.sqrt(np.einsum("ni,ij,nj->n", d, prec, d))

    assert np.median(distance(made)) < 1.5 * np.median(distance(seen))


def test_motion_basis_whitens_the_pose_and_inverts():
    from syncanim.motion.syncer import motion_basis

    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 7)) * [1, 2, 3, 0.1, 0.2, 0.3, 5] + 4
    x[:, 3] += 0.05 * x[:, 1]  # correlated channels
    mean, basis = motion_basis(x)
    u = (x - mean) @ np.linalg.inv(basis)
    cov = np.cov(u.T, bias=True)
    np.testing.assert_allclose(cov[:6, :6], np.eye(6), atol=1e-9)  # the pose: uncorrelated, unit variance
    assert cov[6, 6] == pytest.approx(1.0)
    np.testing.assert_allclose(mean + u @ basis, x, atol=1e-9)
    np.testing.assert_allclose(basis[6], [0, 0, 0, 0, 0, 0, x[:, 6].std()])  # the brow on its own
    assert np.all(basis[:6, 6] == 0)
    var = (basis[:6, :6] / x[:, :6].std(0)) ** 2  # component k's variance in standardised channels: row sums
    assert np.all(np.diff(var.sum(1)) <= 1e-12)  # by decreasing variance


def test_a_syncer_saved_channel_by_channel_still_loads(tmp_path):
    """Syncers saved before the pose's principal components kept each channel's spread (``scale``): it becomes
    their basis, and they move as before."""
    from types import SimpleNamespace

    from safetensors.torch import load_file, save_file

    from syncanim.model.folder import ModelLayout
    from syncanim.motion.store import load_motion, motion_section, save_motion

    feats, rms, rot, trans, expr = _subject(n=300)
    cfg = MotionTrainConfig(steps=20, batch=64, run=16, hidden=8, past=4, future=1)
    syncer, report = fit_motion(feats, rms, rot, trans, expr, 300, FPS, cfg, torch.Generator().manual_seed(0))
    scale = torch.tensor([0.02, 0.03, 0.01, 0.004, 0.003, 0.002, 0.5])
    with torch.no_grad():
        syncer.basis.copy_(torch.diag(scale))
    layout = ModelLayout(tmp_path)
    save_motion(layout, syncer)
    state = load_file(str(layout.motion))
    del state["basis"]
    state["scale"] = scale
    save_file(state, str(layout.motion))
    info = SimpleNamespace(motion=motion_section(syncer, {}))  # all load_motion reads of model.json
    old = load_motion(layout, info)
    a, b = generate_motion(syncer, feats, rms), generate_motion(old, feats, rms)
    np.testing.assert_allclose(a.rotation, b.rotation, atol=1e-6)
    np.testing.assert_allclose(a.translation, b.translation, atol=1e-6)


def test_different_speech_gives_different_motion_and_the_same_speech_the_same(fitted):
    syncer = fitted[0]
    a = generate_motion(syncer, *_speech(1000, seed=1))
    b = generate_motion(syncer, *_speech(1000, seed=2))
    again = generate_motion(syncer, *_speech(1000, seed=1))
    np.testing.assert_array_equal(a.rotation, again.rotation)
    ya, yb = (matrix_to_euler(BASE.T @ m.rotation.astype(np.float64))[:, 1] for m in (a, b))
    assert abs(np.corrcoef(ya, yb)[0, 1]) < 0.5
    other_seed = generate_motion(syncer, *_speech(1000, seed=1), seed=5)
    assert not np.allclose(other_seed.rotation, a.rotation)


def test_streaming_in_chunks_gives_the_same_frames_and_is_causal(fitted):
    syncer = fitted[0]
    feats, rms = _speech(400, seed=3)
    whole = generate_motion(syncer, feats, rms)
    stream = syncer.stream()
    parts, k = [], 0
    for size in [1, 5, 2, 30, 7, 100, 255]:
        parts.append(stream.push(feats[k:k + size], rms[k:k + size]))
        k += size
    parts.append(stream.flush())
    chunked = Motion.concat(parts)
    for name in ("rotation", "translation", "expressions"):
        np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), atol=1e-5, err_msg=name)
    # frame t depends on speech up to t + future only
    future = syncer.arch.future
    changed = feats.clone()
    changed[200 + future + 1:] = torch.randn_like(changed[200 + future + 1:])
    other = generate_motion(syncer, changed, rms)
    np.testing.assert_allclose(other.rotation[:201], whole.rotation[:201], atol=1e-6)
    assert not np.allclose(other.rotation[260:], whole.rotation[260:])


def test_streams_pushed_together_give_each_its_own_motion(fitted):
    """push_streams runs the net once for the streams that give out as many frames: each stream's motion is the
    one it gets pushed alone, whatever the chunks (including empty ones) of the others."""
    from syncanim.motion.syncer import push_streams

    syncer = fitted[0]
    speech = [_speech(120, seed=s) for s in (4, 5, 6)]
    alone = [generate_motion(syncer, f, r, seed=i) for i, (f, r) in enumerate(speech)]
    streams = [syncer.stream(seed=i) for i in range(3)]
    sizes = [[1] * 120, [3, 0, 2] * 24, [7, 1] * 15]  # the streams give out different numbers of frames a step
    starts = [0, 0, 0]
    got: list[list] = [[], [], []]
    for step in range(max(len(z) for z in sizes)):
        items = []
        for i, (f, r) in enumerate(speech):
            n = sizes[i][step] if step < len(sizes[i]) else 0
            items.append((streams[i], f[starts[i]:starts[i] + n], r[starts[i]:starts[i] + n]))
            starts[i] += n
        for i, m in enumerate(push_streams(items)):
            got[i].append(m)
    for i in range(3):
        assert starts[i] == 120
        together = Motion.concat([*got[i], streams[i].flush()])
        for name in ("rotation", "translation", "expressions"):
            np.testing.assert_allclose(getattr(together, name), getattr(alone[i], name), atol=1e-5, err_msg=name)


def test_silence_still_blinks_and_moves_a_little(fitted):
    syncer, _, (feats0, _, rot, _, _) = fitted
    speech, rms = _speech(250, seed=4)
    silent = torch.cat([speech, feats0[:1].expand(375, 2, 8)])  # 10 s of speech, then 15 s of silence
    motion = generate_motion(syncer, silent, np.r_[rms, np.zeros(375)])
    quiet = motion.expressions[250:, :2].min(1) > 0.5
    assert (np.diff(quiet.astype(int)) == 1).sum() >= 2  # blinks in the silence
    amp, _ = _amplitude_jitter(motion.rotation[250:])
    amp0, _ = _amplitude_jitter(rot)
    assert 0.05 * amp0 < amp < 1.3 * amp0  # the head still lives, not more than when speaking


def test_a_model_folder_keeps_the_syncer(fitted, tmp_path):
    from syncanim.model.folder import ModelInfo, ModelLayout
    from syncanim.motion.store import load_motion, motion_section, save_motion

    syncer = fitted[0]
    layout = ModelLayout(tmp_path)
    info = ModelInfo(model={}, audio={}, audio_per_frame=2, audio_dim=8, num_latents=1, expressions=[],
                     image_size=64, fps=FPS, focal=1.0, cx=0.0, cy=0.0, dataset="", sample_rate=16000, mouth={})
    assert load_motion(layout, info) is None  # a model without a syncer
    save_motion(layout, syncer)
    info = ModelInfo(**{**info.__dict__, "motion": motion_section(syncer, {})})
    loaded = load_motion(layout, info)
    feats, rms = _speech(300, seed=9)
    a, b = generate_motion(syncer, feats, rms), generate_motion(loaded, feats, rms)
    np.testing.assert_array_equal(a.expressions, b.expressions)
    np.testing.assert_allclose(a.rotation, b.rotation, atol=1e-6)
