"""``run_prep`` on the built-in sample: every stage's output, checked against the sample's ground truth."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from syncanim.audio.waveform import read_audio
from syncanim.config import Config, PluginSection, PrepConfig, RuntimeConfig
from syncanim.data.labels import BACKGROUND, FACE, HEAD, NECK, TORSO
from syncanim.data.manifest import read_manifest
from syncanim.data.track import load_track
from syncanim.face.headpose import LandmarkBAConfig
from syncanim.geometry import matrix_to_euler
from syncanim.prep.pipeline import run_prep

STAGES = ("scan", "stream", "landmarks", "background", "head_pose", "expressions", "audio")


def _corr(a, b) -> float:
    return float(np.corrcoef(np.asarray(a, float), np.asarray(b, float))[0, 1])


def test_every_output_is_written(prepared_sample, sample_clip):
    _, truth = sample_clip
    lay, m = prepared_sample.layout, prepared_sample.manifest
    n = truth.num_frames
    assert read_manifest(lay.root).model_dump(exclude={"timings"}) == m.model_dump(exclude={"timings"})
    assert (m.num_frames, m.fps, m.image_size) == (n, 25.0, 512)
    assert abs(m.duration_s - truth.duration_s) < 0.05
    assert len(list(lay.frames_dir.glob("*.jpg"))) == n and len(list(lay.parsing_dir.glob("*.png"))) == n
    assert np.load(lay.landmarks).shape == (n, 478, 3)
    assert np.load(lay.landmarks_found).all() and m.frames_without_face == 0
    assert np.load(lay.expressions).shape == (n, len(m.expressions))
    assert np.load(lay.audio_features).shape == (n, m.audio_per_frame, m.audio_dim) == (n, 2, 512)
    assert abs(read_audio(lay.audio).duration_s - truth.duration_s) < 0.05
    for f in ("contact_sheet.png", "head_pose.png", "expressions.png", "report.md"):
        assert (lay.report_dir / f).stat().st_size > 1000
    assert set(STAGES) <= set(m.timings) and m.timings["total"] > 0
    assert lay.config.is_file() and "[prep]" in lay.config.read_text()
    assert not list(lay.root.rglob("*.part"))


def test_split_and_camera_transforms(prepared_sample):
    lay, m = prepared_sample.layout, prepared_sample.manifest
    train = json.loads(lay.transforms_train.read_text())
    val = json.loads(lay.transforms_val.read_text())
    assert m.num_val == int(np.ceil(m.num_frames / 11)) and m.num_train + m.num_val == m.num_frames
    assert [f["img_id"] for f in train["frames"]] == list(range(m.num_train))
    assert [f["img_id"] for f in val["frames"]] == list(range(m.num_train, m.num_frames))
    assert train["focal_len"] == pytest.approx(m.focal)
    c2w = np.array(train["frames"][0]["transform_matrix"])
    assert c2w.shape == (4, 4) and np.allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-6)


def test_head_tracking_follows_the_known_head_roll(prepared_sample, sample_clip):
    _, truth = sample_clip
    m = prepared_sample.manifest
    track = load_track(prepared_sample.layout.track)
    roll = np.degrees(matrix_to_euler(track.rotation)[:, 2])
    assert m.reprojection_error_px < 1.0
    assert 300 < m.focal < 3000
    # the sample's angle is counter-clockwise on screen; a positive roll about the camera's forward
    # axis (x right, y down) turns the face clockwise on screen: the two have opposite signs
    assert _corr(roll, -np.asarray(truth.head_angle_deg)) > 0.9
    # the sample turns the head by a few degrees: the tracked swing has the same size
    assert np.ptp(roll) == pytest.approx(np.ptp(truth.head_angle_deg), rel=0.35)


def test_expressions_find_the_blinks_and_the_mouth(prepared_sample, sample_clip):
    _, truth = sample_clip
    m = prepared_sample.manifest
    ex = np.load(prepared_sample.layout.expressions)
    blink = ex[:, [m.expressions.index("blink_left"), m.expressions.index("blink_right")]].mean(1)
    for k in truth.blink_frames:
        assert blink[k - 1:k + 2].max() > 0.7, f"blink at frame {k} missed"
    far = np.ones(len(blink), bool)
    for k in truth.blink_frames:
        far[max(0, k - 6):k + 7] = False
    assert np.median(blink[far]) < 0.2 and blink[far].max() < 0.6
    assert _corr(ex[:, m.expressions.index("mouth_open")], truth.mouth_open) > 0.7


def test_masks_partition_the_person(prepared_sample):
    lay = prepared_sample.layout
    lms = np.load(lay.landmarks)
    for k in (0, 125, 249):
        labels = cv2.imread(str(lay.parsing(k)), cv2.IMREAD_UNCHANGED)
        assert labels.shape == (512, 512) and labels.max() <= FACE
        p = lms[k, :, :2].round().astype(int)
        # nose tip, mouth and cheeks are face; the top of the frame's corners are background
        for i in (1, 13, 14, 50, 280):
            assert labels[p[i, 1], p[i, 0]] == FACE
        assert labels[5, 5] == BACKGROUND
        # the neck sits below the chin, the torso lower still
        chin_y = lms[k, 152, 1]
        ys_neck = np.nonzero(labels == NECK)[0]
        assert len(ys_neck) > 500 and np.median(ys_neck) > chin_y
        assert (labels[-40:] == TORSO).mean() > 0.3
        assert (labels == HEAD).sum() > 2000  # hair


def test_background_plate_matches_the_static_background(prepared_sample):
    lay = prepared_sample.layout
    plate = cv2.imread(str(lay.background))
    unseen = cv2.imread(str(lay.background_unseen), cv2.IMREAD_GRAYSCALE) > 0
    frame = cv2.imread(str(lay.frame(100)))
    labels = cv2.imread(str(lay.parsing(100)), cv2.IMREAD_UNCHANGED)
    far = cv2.erode((labels == BACKGROUND).astype(np.uint8), np.ones((31, 31), np.uint8)) > 0
    region = far & ~unseen
    assert region.sum() > 10000
    diff = np.abs(plate.astype(int) - frame.astype(int))[region].mean()
    assert diff < 6.0
    assert prepared_sample.manifest.background_unseen_fraction == pytest.approx(unseen.mean(), abs=1e-6)


def test_audio_features_follow_the_speech(prepared_sample, sample_clip):
    _, truth = sample_clip
    # a linear read-out fitted on the first half of the clip predicts the mouth of the second half
    feats = np.load(prepared_sample.layout.audio_features)
    n = len(feats)
    x = np.c_[feats.reshape(n, -1), np.ones(n)]
    h = n // 2
    w = np.linalg.solve(x[:h].T @ x[:h] + 10 * np.eye(x.shape[1]), x[:h].T @ truth.mouth_open[:h])
    assert _corr(x[h:] @ w, truth.mouth_open[h:]) > 0.6


def test_short_clip_is_warned_about(prepared_sample):
    assert any("10.0 s long" in w for w in prepared_sample.manifest.warnings)


def test_rerun_skips_every_finished_stage(prepared_sample, sample_clip):
    path, _ = sample_clip
    cfg = Config()
    again = run_prep(path, prepared_sample.layout.root, cfg.prep, cfg.runtime)
    assert again.ran == []
    assert set(STAGES) <= set(again.skipped)
    same = again.manifest.model_dump(exclude={"timings"})
    assert same == prepared_sample.manifest.model_dump(exclude={"timings"})


def test_head_pose_runs_again_when_the_tracker_settings_change(prepared_sample, sample_clip, tmp_path):
    """The stage is keyed by the tracker's settings with its defaults: naming a default changes nothing, a new
    value (or a new default in a later version) runs the head pose again, and only what depends on it."""
    path, _ = sample_clip
    out = tmp_path / "copy"
    shutil.copytree(prepared_sample.layout.root, out)
    cfg = Config()
    kind = cfg.prep.head_pose.kind
    default = LandmarkBAConfig().flow_weight
    named = cfg.prep.model_copy(update={"head_pose": PluginSection(kind=kind, flow_weight=default)})
    assert run_prep(path, out, named, cfg.runtime).ran == []
    changed = cfg.prep.model_copy(update={"head_pose": PluginSection(kind=kind, flow_weight=default / 2)})
    again = run_prep(path, out, changed, cfg.runtime)
    assert again.ran == ["head_pose"]
    lighter, default_track = load_track(out / "track.npz"), load_track(prepared_sample.layout.track)
    assert not np.allclose(lighter.rotation, default_track.rotation)


def test_interrupted_run_resumes_without_redoing_finished_chunks(sample_clip, tmp_path):
    path, _ = sample_clip
    prep = PrepConfig(chunk_frames=64)
    runtime = RuntimeConfig(workers=1)
    out = tmp_path / "ds"

    def stop_midway(stage, done, total):
        if stage == "frames" and done >= 140:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_prep(path, out, prep, runtime, progress=stop_midway)
    assert not (out / "manifest.json").exists()
    assert not list(out.rglob("*.part"))
    chunks = sorted((out / ".syncanim" / "chunks").glob("*.npz"))
    assert [c.name for c in chunks] == ["00000.npz", "00001.npz"]
    stamps = {c.name: c.stat().st_mtime_ns for c in chunks}

    result = run_prep(path, out, prep, runtime)
    assert result.manifest.num_frames == 250 and "stream" in result.ran
    for name, stamp in stamps.items():
        assert (out / ".syncanim" / "chunks" / name).stat().st_mtime_ns == stamp, f"chunk {name} was redone"
    assert len(list((out / "frames").glob("*.jpg"))) == 250


def test_a_crash_in_a_late_stage_keeps_the_earlier_ones(prepared_sample, sample_clip, tmp_path, monkeypatch):
    path, _ = sample_clip
    out = tmp_path / "copy"
    shutil.copytree(prepared_sample.layout.root, out)
    (out / "expressions.npy").unlink()  # make the expressions stage run again
    from syncanim.prep import expressions

    def boom(*a, **k):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(expressions, "landmark_expressions", boom)
    cfg = Config()
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_prep(path, out, cfg.prep, cfg.runtime)
    assert (out / "landmarks.npy").is_file() and (out / "track.npz").is_file()
    assert not (out / "manifest.json").exists()
    monkeypatch.undo()
    again = run_prep(path, out, cfg.prep, cfg.runtime)
    assert again.ran == ["expressions"]
    assert np.allclose(np.load(out / "expressions.npy"), np.load(prepared_sample.layout.expressions))


def test_other_frame_rates_are_resampled(tmp_path):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from syncanim.config import SampleConfig
    from syncanim.sample.generate import generate_sample

    clip = tmp_path / "thirty.mp4"
    generate_sample(clip, SampleConfig(seconds=3.0, fps=30, size=256))
    cfg = Config()
    result = run_prep(clip, tmp_path / "ds", cfg.prep.model_copy(update={"size": 256, "min_train_s": 2.0}), cfg.runtime)
    m = result.manifest
    assert m.num_frames == 75 and m.fps == 25.0 and m.image_size == 256
    assert any("30.00 fps" in w for w in m.warnings)
