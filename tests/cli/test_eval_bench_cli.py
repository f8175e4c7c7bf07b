"""eval / bench from the command line: JSON and tables, report folders, one-line errors."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from syncanim.cli import app

runner = CliRunner()


def test_eval_of_a_model_with_baselines_as_json(tiny_model, tmp_path):
    out = tmp_path / "report"
    r = runner.invoke(app, ["eval", str(tiny_model.layout.root), "--baselines", "--out", str(out), "--device", "cpu",
                            "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    names = [s["name"] for s in res["subjects"]]
    assert res["mode"] == "model" and names == ["model", "retrieval", "static", "ground truth"]
    model = res["subjects"][0]["fidelity"]
    assert 5 < model["psnr"] < 60 and 0 < model["ssim"] <= 1 and model["frames"] == res["frames"]
    assert "not measured" in res["lpips"]
    assert (out / "eval.json").is_file() and (out / "strip.png").is_file()


def test_eval_of_one_video_prints_a_table(sample_clip, tmp_path):
    path, _ = sample_clip
    r = runner.invoke(app, ["eval", "--video", str(path), "--out", str(tmp_path / "e"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "sync offset" in r.output and "blinks / min" in r.output and "report:" in r.output


def test_eval_bad_inputs_are_one_line(sample_clip, tmp_path):
    path, _ = sample_clip
    r = runner.invoke(app, ["eval"])
    assert r.exit_code == 3 and "nothing to evaluate" in r.output
    r = runner.invoke(app, ["eval", "--video", str(tmp_path / "missing.mp4"), "--out", str(tmp_path / "e")])
    assert r.exit_code != 0 and "Traceback" not in r.output
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(path.read_bytes()[:5000])
    r = runner.invoke(app, ["eval", "--video", str(corrupt), "--reference", str(path), "--out", str(tmp_path / "e")])
    assert r.exit_code != 0 and "Traceback" not in r.output and "error" in r.output
    r = runner.invoke(app, ["eval", str(tmp_path), "--out", str(tmp_path / "e")])
    assert r.exit_code == 7 and "not a model folder" in r.output
    (tmp_path / "file").write_bytes(b"")
    r = runner.invoke(app, ["eval", "--video", str(path), "--out", str(tmp_path / "file" / "e")])
    assert r.exit_code == 8 and "cannot write" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["eval", "--video", str(path), "--set", "eval.sync.window_s=-1"])
    assert r.exit_code == 3 and "eval.sync.window_s" in r.output


def test_bench_prints_every_stage_and_saves_json(tmp_path):
    save = tmp_path / "bench.json"
    r = runner.invoke(app, ["bench", "--device", "cpu", "--resolution", "96", "--runs", "2", "--warmup", "1",
                            "--save", str(save), "--peer-ms", "50"])
    assert r.exit_code == 0, r.output
    for stage in ("audio features", "conditioning", "head render", "composite", "encode", "end to end",
                  "frames per second", "vs peer"):
        assert stage in r.output
    data = json.loads(save.read_text())
    assert data["resolution"] == 96 and data["device"] == "cpu" and data["fps"] > 0
    assert data["peer"]["peer_ms"] == 50 and data["peer"]["speedup"] == pytest.approx(50 / data["peer"]["ours_ms"], rel=1e-2)


def test_bench_options_this_machine_cannot_do_are_one_line():
    r = runner.invoke(app, ["bench", "--device", "cpu", "--precision", "fp16", "--runs", "1"])
    assert r.exit_code == 3 and "fp16" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["bench", "--device", "cpu", "--resolution", "97"])
    assert r.exit_code == 3 and "bench.resolution" in r.output
    r = runner.invoke(app, ["bench", "--device", "cpu", "--peer-ms", "-1"])
    assert r.exit_code == 3 and "--peer-ms must be positive" in r.output
    r = runner.invoke(app, ["bench", "--device", "cpu", "--save", "/proc/no/bench.json"])  # checked before it runs
    assert r.exit_code == 8 and "cannot write" in r.output and "Traceback" not in r.output


def test_bench_dry_run_shows_the_settings():
    r = runner.invoke(app, ["bench", "--batch", "4", "--dry-run"])
    assert r.exit_code == 0 and "[bench]" in r.output and "batch = 4" in r.output


def test_eval_prints_no_native_notices_and_counts_frames(sample_clip, tmp_path):
    """MediaPipe's start-up notices (TensorFlow Lite, absl) never reach the terminal; the tracking bar knows its length."""
    import subprocess
    import sys

    path, truth = sample_clip
    r = subprocess.run([sys.executable, "-m", "syncanim.cli", "eval", "--video", str(path), "--out", str(tmp_path / "e")],
                       capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "120"})
    assert r.returncode == 0, r.stderr
    for noise in ("TensorFlow Lite", "absl", "inference_feedback_manager", "INFO     device"):
        assert noise not in r.stderr, r.stderr
    assert f"{truth.num_frames}/{truth.num_frames}" in r.stderr or "/?" not in r.stderr, r.stderr
