"""train / render / demo from the command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from syncanim.cli import app

runner = CliRunner()


def test_train_dry_run_shows_the_preset():
    r = runner.invoke(app, ["train", "ds", "--out", "m", "--preset", "cpu-quick", "--steps", "7", "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "head_steps = 7" in r.output and "log2_table = 14" in r.output


def test_train_on_an_unfinished_dataset_is_one_line(tmp_path):
    (tmp_path / "ds").mkdir()
    r = runner.invoke(app, ["train", str(tmp_path / "ds"), "--out", str(tmp_path / "m")])
    assert r.exit_code == 4 and "not a finished dataset" in r.output and "Traceback" not in r.output
    (tmp_path / "clip.mp4").write_bytes(b"")
    r = runner.invoke(app, ["train", str(tmp_path / "clip.mp4"), "--out", str(tmp_path / "m")])
    assert r.exit_code == 4 and "is a file" in r.output and "syncanim prep" in r.output


def test_options_that_would_be_ignored_or_make_no_sense_are_refused(tmp_path):
    r = runner.invoke(app, ["render", str(tmp_path), "--split", "val", "--audio", str(tmp_path / "x.wav")])
    assert r.exit_code == 3 and "--audio and --features go without --split" in r.output
    for args, words in ((["--seconds", "0"], "--seconds must be positive"),
                        (["--bench", "--audio", str(tmp_path / "x.wav"), "--reconnect-s", "-1"], "--reconnect-s must be"),
                        (["--loop"], "--loop repeats the --audio file")):
        r = runner.invoke(app, ["live", str(tmp_path), *args])
        assert r.exit_code == 3 and words in r.output, r.output


def test_render_needs_audio_and_a_model(tmp_path):
    r = runner.invoke(app, ["render", str(tmp_path)])
    assert r.exit_code == 3 and "--audio" in r.output
    r = runner.invoke(app, ["render", str(tmp_path), "--audio", str(tmp_path / "x.wav")])
    assert r.exit_code == 7 and "not a model folder" in r.output


def test_render_to_a_place_it_cannot_write_is_one_line_before_any_work(tiny_model, tmp_path):
    from syncanim.model.folder import dataset_path

    audio = dataset_path(tiny_model.layout.root, tiny_model.info) / "audio.wav"
    (tmp_path / "folder.mp4").mkdir()
    (tmp_path / "file").write_bytes(b"")
    for out in (tmp_path / "folder.mp4", tmp_path / "file" / "x.mp4"):
        r = runner.invoke(app, ["render", str(tiny_model.layout.root), "--audio", str(audio), "--out", str(out)])
        assert r.exit_code == 8 and "cannot write" in r.output and "Traceback" not in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.mp4"]


def test_validation_split_scores_the_model(tiny_model, tmp_path):
    r = runner.invoke(app, ["render", str(tiny_model.layout.root), "--split", "val", "--out", str(tmp_path / "val"),
                            "--json", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["frames"] == 23 and 5 < res["psnr"] < 60 and 0 < res["ssim"] <= 1
    assert (tmp_path / "val" / "val_side_by_side.mp4").is_file() and (tmp_path / "val" / "val_stills.png").is_file()
    assert (tmp_path / "val" / "val_metrics.json").is_file()


def test_demo_dry_run_picks_the_cpu_preset():
    r = runner.invoke(app, ["demo", "--dry-run"])
    assert r.exit_code == 0
    assert "size = 256" in r.output and 'crop = "subject"' in r.output


def test_out_of_memory_is_one_line_and_exit_8(tiny_dataset, tmp_path, monkeypatch):
    import torch

    import syncanim.train.trainer as trainer

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore details")

    monkeypatch.setattr(trainer, "run_train", oom)
    r = CliRunner().invoke(app, ["train", str(tiny_dataset.layout.root), "--out", str(tmp_path / "m")])
    assert r.exit_code == 8, r.output
    assert "Traceback" not in r.output and "out of memory (CUDA out of memory. Tried to allocate 2.00 GiB)" in r.output

    def other(*args, **kwargs):
        raise RuntimeError("some other failure")

    monkeypatch.setattr(trainer, "run_train", other)
    r = CliRunner().invoke(app, ["train", str(tiny_dataset.layout.root), "--out", str(tmp_path / "m")])
    assert r.exit_code == 1 and isinstance(r.exception, RuntimeError)  # a bug stays a bug, with its traceback


def test_a_kernel_backend_that_cannot_run_is_exit_6():
    import torch

    from syncanim.errors import KernelUnavailable
    from syncanim.kernels.backend import resolve_backend

    with pytest.raises(KernelUnavailable) as info:
        resolve_backend("triplane_encode", "triton", torch.device("meta"), ("torch", "triton"), ("triton", "torch"))
    assert info.value.exit_code == 6
