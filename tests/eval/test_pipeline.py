"""``run_eval`` end to end (syncanim/eval/pipeline.py): the built-in sample and variants of it, bad
inputs, a tiny trained model with baselines, and a metric plugin through an isolated registry."""

from __future__ import annotations

import dataclasses
import json
import shutil
from importlib.metadata import EntryPoint
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from syncanim.audio.waveform import Waveform, read_audio
from syncanim.config import PluginSection, RenderConfig, RuntimeConfig
from syncanim.errors import CheckpointError, ConfigError, DataError
from syncanim.eval.pipeline import run_eval
from syncanim.media.video import VideoWriter, iter_frames, probe
from syncanim.registry import Registry
from syncanim.sample.generate import render_frames

CPU = RuntimeConfig(device="cpu")
SHORT = 40  # frames of the short clips used for the two-video checks


def write_clip(path, frames, fps, wave: Waveform | None = None):
    h, w = frames[0].shape[:2]
    with VideoWriter(path, fps, w, h, audio=wave) as vw:
        for f in frames:
            vw.write(f)
    return path


@pytest.fixture(scope="module")
def clips(sample_clip, tmp_path_factory):
    """Variants of the built-in sample: audio delayed by 200 ms, mouth frozen, and short clips."""
    path, truth = sample_clip
    root = tmp_path_factory.mktemp("eval-clips")
    wave = read_audio(path)
    frames = [f for _, f in iter_frames(path, truth.fps, 0, truth.num_frames)]
    d = int(0.2 * wave.sample_rate)
    late = Waveform(np.concatenate([np.zeros(d, np.float32), wave.samples[:-d]]), wave.sample_rate)
    frozen = dataclasses.replace(truth, mouth_open=[0.0] * truth.num_frames)
    # another clip's speech: the second half of the sentence under the first half's mouth, and back
    swapped = Waveform(np.roll(wave.samples, len(wave.samples) // 2), wave.sample_rate)
    short_wave = Waveform(wave.samples[: int(SHORT / truth.fps * wave.sample_rate)], wave.sample_rate)
    out = {
        "late": write_clip(root / "late.mp4", frames, truth.fps, late),
        "frozen": write_clip(root / "frozen.mp4", list(render_frames(frozen)), truth.fps, wave),
        "swapped": write_clip(root / "swapped.mp4", frames, truth.fps, swapped),
        "short": write_clip(root / "short.mp4", frames[:SHORT], truth.fps, short_wave),
        "short_cut": write_clip(root / "short_cut.mp4", frames[:SHORT - 5], truth.fps, short_wave),
        "short_small": write_clip(root / "short_small.mp4", [cv2.resize(f, (256, 256)) for f in frames[:SHORT]],
                                  truth.fps, short_wave),
        "short_30fps": write_clip(root / "short_30fps.mp4", frames[:SHORT], 30.0, short_wave),
        "short_silent": write_clip(root / "short_silent.mp4", frames[:SHORT], truth.fps),
    }
    out["short_copy"] = root / "short_copy.mp4"
    shutil.copy(out["short"], out["short_copy"])
    return out


@pytest.fixture(scope="module")
def sample_eval(sample_clip, tmp_path_factory):
    path, _ = sample_clip
    return run_eval(tmp_path_factory.mktemp("eval-sample") / "report", video=path, runtime=CPU)


# --- the built-in sample: sync, blinks, head motion ------------------------------------------------


def test_in_sync_sample_reads_zero_offset(sample_eval):
    sync = sample_eval.subject("video").clip.sync
    assert sample_eval.mode == "video" and sample_eval.frames == 250
    assert abs(sync.offset_frames) <= 1
    assert sync.confidence > 0.5 and sync.contrast > 0.4
    assert sync.windows_used >= 10


def test_audio_delayed_200ms_reads_minus_5_frames(clips, sample_eval, tmp_path):
    res = run_eval(tmp_path / "late", video=clips["late"], runtime=CPU)
    sync = res.subject("video").clip.sync
    # the sound comes 5 frames after the mouth moves: the video leads, so the offset is negative
    assert abs(sync.offset_frames - (-5)) <= 1
    assert abs(sync.offset_s + 0.2) <= 0.04
    assert sync.confidence > 0.5
    # a negative offset is explained where it is shown, in the notes and report.md
    assert any("mouth leads the sound" in n for n in res.notes)
    assert "mouth leads the sound" in (tmp_path / "late" / "report.md").read_text()
    assert not any("mouth leads the sound" in n for n in sample_eval.notes)


def test_frozen_mouth_scores_clearly_worse(clips, sample_eval, tmp_path):
    good = sample_eval.subject("video").clip.sync.confidence
    res = run_eval(tmp_path / "frozen", video=clips["frozen"], runtime=CPU)
    frozen = res.subject("video").clip.sync.confidence
    assert frozen < 0.5 * good and frozen < 0.35


def test_footage_with_other_speech_scores_clearly_worse(clips, sample_eval, tmp_path):
    good = sample_eval.subject("video").clip.sync.confidence
    res = run_eval(tmp_path / "swapped", video=clips["swapped"], runtime=CPU)
    swapped = res.subject("video").clip.sync.confidence
    assert swapped < 0.5 * good


def test_blinks_of_the_sample_are_found(sample_eval, sample_clip):
    _, truth = sample_clip
    blinks = sample_eval.subject("video").clip.blinks
    assert blinks.count == len(truth.blink_frames)  # no extra ones
    for found, true in zip(blinks.frames, sorted(truth.blink_frames), strict=True):
        assert abs(found - true) <= 2
    assert blinks.rate_per_min == pytest.approx(len(truth.blink_frames) / (truth.duration_s / 60))


def test_head_motion_of_the_sample(sample_eval, sample_clip):
    _, truth = sample_clip
    head = sample_eval.subject("video").clip.head
    roll_std = float(np.std(truth.head_angle_deg))  # the sample only rolls its head
    assert head.amplitude_axes_deg[2] == pytest.approx(roll_std, rel=0.25)
    assert head.frames == 250 and 0 < head.jitter_deg < 3.0


def test_report_folder_and_json(sample_eval):
    out = sample_eval.files
    for name in ("eval.json", "report.md", "strip.png", "sync.png", "sync_windows.png"):
        assert name in out and Path(out[name]).is_file()
    data = json.loads(Path(out["eval.json"]).read_text())
    assert data["mode"] == "video" and data["subjects"][0]["clip"]["sync"]["offset_frames"] is not None
    assert "per_frame.csv" not in out  # no reference: no per-frame comparison
    strip = cv2.imread(out["strip.png"])
    assert strip.shape[0] == 192 and strip.shape[1] == 6 * 192
    md = Path(out["report.md"]).read_text()
    assert "sync offset" in md and "blinks" in md


# --- two videos ------------------------------------------------------------------------------------


def test_identical_videos_give_infinite_psnr_and_zero_lmd(clips, tmp_path):
    res = run_eval(tmp_path / "same", video=clips["short"], reference=clips["short_copy"], runtime=CPU)
    fid = res.subject("video").fidelity
    assert res.mode == "pair" and fid.frames == SHORT
    assert fid.psnr == np.inf and fid.psnr_face == np.inf and fid.identical_frames == SHORT
    assert fid.psnr_face_frames == SHORT
    assert fid.ssim == pytest.approx(1.0, abs=1e-6)
    assert fid.lmd == 0.0 and fid.lmd_centered == 0.0 and fid.lmd_frames == SHORT
    assert fid.lpips is None and "alexnet-owt-7be5be79.pth" in res.lpips
    assert res.subject("reference").role == "reference"
    rows = dict((r[0], r[1:]) for r in res.table_rows())
    assert rows["PSNR (dB)"] == ("inf", "-") and rows["LMD (px @512)"][0] == "0.00"
    data = json.loads(Path(res.files["eval.json"]).read_text())
    assert data["subjects"][0]["fidelity"]["psnr"] is None  # JSON has no inf: written as null
    assert "per_frame.csv" in res.files and "per_frame.png" in res.files


def test_a_reference_without_audio_skips_its_sync_with_a_note(clips, tmp_path):
    res = run_eval(tmp_path / "silent", video=clips["short_silent"], reference=clips["short"], runtime=CPU)
    video = res.subject("video")
    assert video.clip.sync is None and any("no audio track" in n for n in video.notes)
    assert video.fidelity.psnr > 30  # the same frames, encoded twice


@pytest.mark.parametrize("other,match", [("short_cut", "frame counts differ"), ("short_small", "frame sizes differ"),
                                         ("short_30fps", "frame rates differ")])
def test_mismatched_reference_is_refused(clips, tmp_path, other, match):
    with pytest.raises(DataError, match=match):
        run_eval(tmp_path / "x", video=clips["short"], reference=clips[other], runtime=CPU)
    assert not (tmp_path / "x").exists()  # nothing written


def test_bad_inputs_are_refused(clips, tmp_path):
    with pytest.raises(DataError, match="no audio track"):
        run_eval(tmp_path / "a", video=clips["short_silent"], runtime=CPU)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(clips["short"].read_bytes()[:3000])
    with pytest.raises(DataError):
        run_eval(tmp_path / "b", video=corrupt, reference=clips["short"], runtime=CPU)
    with pytest.raises(DataError, match="not found"):
        run_eval(tmp_path / "c", video=tmp_path / "missing.mp4", runtime=CPU)
    named_like_output = tmp_path / "strip.png"
    shutil.copy(clips["short"], named_like_output)
    with pytest.raises(DataError, match="would replace the input"):  # never overwrite an input
        run_eval(tmp_path, video=named_like_output, runtime=CPU)
    assert named_like_output.read_bytes() == clips["short"].read_bytes()
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        run_eval(tmp_path / "d", runtime=CPU)
    with pytest.raises(ConfigError, match="--lpips-linear is missing"):
        run_eval(tmp_path / "e", video=clips["short"], reference=clips["short_copy"], lpips_backbone=corrupt,
                 runtime=CPU)
    with pytest.raises(CheckpointError, match="LPIPS backbone weights"):
        run_eval(tmp_path / "f", video=clips["short"], reference=clips["short_copy"], lpips_backbone=corrupt,
                 lpips_linear=corrupt, runtime=CPU)


# --- a model and its baselines ---------------------------------------------------------------------


def test_model_mode_with_baselines(tiny_model, tmp_path):
    res = run_eval(tmp_path / "model", model=tiny_model.layout.root, baselines=True, runtime=CPU,
                   render=RenderConfig(frames_per_call=8))
    assert res.mode == "model"
    assert [s.name for s in res.subjects] == ["model", "retrieval", "static", "ground truth"]
    n = res.frames
    assert n > 0 and res.render_fps > 0
    for name in ("model", "retrieval", "static"):
        fid = res.subject(name).fidelity
        assert fid.frames == n and np.isfinite(fid.psnr) and 0 < fid.ssim < 1
        assert fid.psnr_face_frames == n
    assert res.subject("ground truth").fidelity is None
    header = res.table_header()
    assert header == ("figure", "model", "retrieval", "static", "ground truth")
    assert all(len(row) == len(header) for row in res.table_rows())
    for name in ("eval.json", "report.md", "per_frame.csv", "per_frame.png", "strip.png"):
        assert (tmp_path / "model" / name).is_file()
    lines = (tmp_path / "model" / "per_frame.csv").read_text().splitlines()
    assert len(lines) == 1 + 3 * n


def test_model_without_its_dataset_is_refused(tiny_model, tmp_path):
    moved = tmp_path / "model"
    shutil.copytree(tiny_model.layout.root, moved)
    info = json.loads((moved / "model.json").read_text())
    info["dataset"] = str(tmp_path / "gone")
    (moved / "model.json").write_text(json.dumps(info))
    with pytest.raises(DataError, match="is not at"):
        run_eval(tmp_path / "out", model=moved, runtime=CPU)
    with pytest.raises(ConfigError):
        run_eval(tmp_path / "out", model=moved, video=moved / "x.mp4", reference=moved / "y.mp4", runtime=CPU)
    with pytest.raises(ConfigError):
        run_eval(tmp_path / "out", model=moved, video=moved / "x.mp4", baselines=True, runtime=CPU)


# --- a metric plugin -------------------------------------------------------------------------------


def test_metric_plugin_through_the_registry(clips, tmp_path):
    from syncanim.eval.syncnet import SyncNetColor

    torch.manual_seed(0)
    weights = tmp_path / "syncnet.pth"
    torch.save(SyncNetColor().state_dict(), weights)
    reg = Registry(entry_points=[EntryPoint(name="syncnet", group="syncanim.metrics",
                                            value="syncanim.eval.syncnet:SPEC")])
    frames = [f for _, f in iter_frames(clips["short"], 25.0, 0, 12)]
    wave = read_audio(clips["short"])
    clip = write_clip(tmp_path / "twelve.mp4", frames, 25.0, Waveform(wave.samples[:7680], wave.sample_rate))
    assert probe(clip).num_frames == 12
    res = run_eval(tmp_path / "out", video=clip, runtime=CPU, registry=reg,
                   metrics=[PluginSection(kind="syncnet", weights=str(weights))])
    figs = res.subject("video").metrics["syncnet"]
    assert figs["windows"] == 8  # windows of 5 frames whose 0.2 s of mel fit in 0.48 s of audio
    assert 0 <= figs["lse_d"] <= 2 and figs["lse_c"] >= 0 and abs(figs["offset"]) <= 15
    assert any(row[0] == "syncnet lse_d" for row in res.table_rows())
    sync = res.subject("video").clip.sync  # 12 frames: shorter than one sync window
    assert sync.offset_frames is None and sync.windows_used == 0 and "shorter" in sync.note
