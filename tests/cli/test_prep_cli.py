"""``syncanim prep`` / ``plugins`` / ``sample`` from the command line: exit codes and one-line errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from syncanim.audio.waveform import Waveform
from syncanim.cli import app
from syncanim.media.video import VideoWriter

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def assert_one_line_error(result, code: int, *fragments: str):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    text = result.output.lower()
    assert "error:" in text
    for f in fragments:
        assert f.lower() in text, result.output


def tone(seconds: float) -> Waveform:
    t = np.arange(int(16000 * seconds)) / 16000
    return Waveform((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)


def write_clip(path, frames, audio: Waveform | None, fps: float = 25.0):
    h, w = frames[0].shape[:2]
    with VideoWriter(path, fps, w, h, audio=audio) as vw:
        for f in frames:
            vw.write(f)
    return path


def test_missing_file(tmp_path):
    assert_one_line_error(invoke("prep", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o")), 4, "not found")


def test_not_a_video(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video\n" * 100)
    assert_one_line_error(invoke("prep", str(p), "--out", str(tmp_path / "o")), 4, "not a readable video")


def test_video_without_audio(tmp_path, sample_clip):
    from syncanim.media.video import iter_frames

    src, _ = sample_clip
    frames = [f for _, f in iter_frames(src, 25, 0, 20)]
    clip = write_clip(tmp_path / "mute.mp4", frames, None)
    assert_one_line_error(invoke("prep", str(clip), "--out", str(tmp_path / "o")), 4, "no audio track")


def test_no_face(tmp_path):
    rng = np.random.default_rng(0)
    frames = [np.full((256, 256, 3), 90, np.uint8) + rng.integers(0, 30, (256, 256, 3), dtype=np.uint8) for _ in range(30)]
    clip = write_clip(tmp_path / "wall.mp4", frames, tone(1.2))
    r = invoke("prep", str(clip), "--out", str(tmp_path / "o"), "--set", "prep.min_train_s=1")
    assert_one_line_error(r, 4, "no face")


def test_too_short_to_train(tmp_path, sample_clip):
    from syncanim.media.video import iter_frames

    src, _ = sample_clip
    clip = write_clip(tmp_path / "short.mp4", [f for _, f in iter_frames(src, 25, 0, 25)], tone(1.0))
    out = tmp_path / "o"
    assert_one_line_error(invoke("prep", str(clip), "--out", str(out)), 4, "1.0 s long", "at least 5 s")
    assert not out.exists()  # refused before anything is written


def test_empty_file(tmp_path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    r = invoke("prep", str(p), "--out", str(tmp_path / "o"))
    assert_one_line_error(r, 4, "empty.mp4", "is empty")
    assert "errno" not in r.output.lower()


def test_tiny_resolution(tmp_path):
    frames = [np.full((96, 96, 3), 120, np.uint8) for _ in range(10)]
    clip = write_clip(tmp_path / "tiny.mp4", frames, tone(0.4))
    assert_one_line_error(invoke("prep", str(clip), "--out", str(tmp_path / "o")), 4, "96x96")


def test_truncated_file(tmp_path, sample_clip):
    src, _ = sample_clip
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 5])
    assert_one_line_error(invoke("prep", str(cut), "--out", str(tmp_path / "o")), 4)


def test_unwritable_output(tmp_path, sample_clip):
    src, _ = sample_clip
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    assert_one_line_error(invoke("prep", str(src), "--out", str(blocker / "sub")), 8, "cannot write")


def test_bad_setting_names_the_field(tmp_path, sample_clip):
    src, _ = sample_clip
    r = invoke("prep", str(src), "--out", str(tmp_path / "o"), "--set", "prep.fps=-1")
    assert_one_line_error(r, 3, "prep.fps")
    r = invoke("prep", str(src), "--out", str(tmp_path / "o"), "--set", "prep.masks.pose_evry=3")
    assert_one_line_error(r, 3, "pose_evry", "unknown setting")


def test_unknown_or_unavailable_component(tmp_path, sample_clip):
    src, _ = sample_clip
    r = invoke("prep", str(src), "--out", str(tmp_path / "o"), "--audio-backend", "nope")
    assert_one_line_error(r, 5, "nope", "logmel")
    r = invoke("prep", str(src), "--out", str(tmp_path / "o"), "--audio-backend", "hubert")
    assert_one_line_error(r, 5, "prep.audio.path")
    assert not (tmp_path / "o").exists()


def test_bad_input_leaves_an_existing_dataset_intact(tmp_path, prepared_sample):
    ds = tmp_path / "ds"
    shutil.copytree(prepared_sample.layout.root, ds)
    before = (ds / "manifest.json").read_bytes()
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"\x00" * 5000)
    assert_one_line_error(invoke("prep", str(bogus), "--out", str(ds)), 4)
    assert (ds / "manifest.json").read_bytes() == before


def test_dry_run_prints_the_resolved_config(tmp_path):
    r = invoke("prep", "whatever.mp4", "--size", "256", "--set", "prep.masks.pose_every=5", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "size = 256" in r.output and "pose_every = 5" in r.output
    import tomllib

    assert tomllib.loads(r.output)["prep"]["masks"]["kind"] == "mediapipe-geometric"


def test_dry_run_refuses_what_the_run_would_refuse():
    assert_one_line_error(invoke("prep", "x.mp4", "--audio-backend", "banana", "--dry-run"), 5, "'banana'")
    assert_one_line_error(invoke("prep", "x.mp4", "--set", "prep.masks.nosuch=3", "--dry-run"), 3, "prep.masks.nosuch")
    assert_one_line_error(invoke("train", "ds", "--out", "m", "--set", "model.kind=banana", "--dry-run"), 5, "'banana'")


def test_preset_and_unknown_preset():
    r = invoke("prep", "x.mp4", "--preset", "base", "--dry-run")
    assert r.exit_code == 0 and 'kind = "whisper"' in r.output
    assert_one_line_error(invoke("prep", "x.mp4", "--preset", "nope", "--dry-run"), 3, "unknown preset")


def test_json_output_of_a_finished_dataset(prepared_sample, sample_clip):
    src, _ = sample_clip
    r = runner.invoke(app, ["-q", "prep", str(src), "--out", str(prepared_sample.layout.root), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["num_frames"] == prepared_sample.manifest.num_frames
    for key in ("fps", "duration_s", "image_size", "focal", "reprojection_error_px", "timings", "warnings"):
        assert key in data


def test_plugins_lists_every_group():
    r = invoke("plugins", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    by_name = {(x["group"], x["name"]): x for x in rows}
    for key in [("decoders", "pyav"), ("trackers", "mediapipe-facemesh"), ("segmenters", "mediapipe-geometric"),
                ("backgrounds", "median-inpaint"), ("head_trackers", "landmark-ba"),
                ("expressions", "landmark-geometry"), ("asr", "logmel")]:
        assert by_name[key]["available"], by_name[key]
    assert not by_name[("asr", "hubert")]["available"]
    assert "prep.audio.path" in by_name[("asr", "hubert")]["status"]
    assert not by_name[("expressions", "mediapipe-blendshapes")]["available"]
    assert ("renderers", "tcnn-hashgrid") not in by_name  # nothing is advertised that does not ship
    table = invoke("plugins")
    assert table.exit_code == 0 and "mediapipe-facemesh" in table.output


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_sample_command(tmp_path):
    out = tmp_path / "s.mp4"
    r = invoke("sample", str(out), "--seconds", "2")
    assert r.exit_code == 0, r.output
    assert out.is_file() and out.with_suffix(".json").is_file()


def test_version():
    r = invoke("--version")
    assert r.exit_code == 0 and r.output.startswith("syncanim ")


def test_plugins_table_keeps_names_whole_at_80_columns():
    rows = json.loads(invoke("plugins", "--json").stdout)
    r = CliRunner().invoke(app, ["plugins"], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    assert max(len(line) for line in r.output.splitlines() if line.startswith(("┃", "│"))) <= 80
    table_names = {line.split("│")[2].strip() for line in r.output.splitlines() if line.startswith("│")}
    assert {x["name"] for x in rows} <= table_names
    for x in rows:  # what an unavailable component needs is printed whole, to be copied
        if not x["available"]:
            assert x["status"].partition(": ")[2] in r.output


def test_train_dry_run_checks_the_renderer_settings():
    assert_one_line_error(invoke("train", "ds", "--out", "m", "--set", "model.hidden=-3", "--dry-run"), 3,
                          "model.hidden")
    assert_one_line_error(invoke("train", "ds", "--out", "m", "--set", "model.mouth.nosuch=1", "--dry-run"), 3,
                          "model.mouth.nosuch: unknown setting")
