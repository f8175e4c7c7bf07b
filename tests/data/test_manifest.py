"""The dataset manifest (syncanim/data/manifest.py): round trip and the errors of an unfinished folder."""

from __future__ import annotations

import json

import pytest

from syncanim.data.manifest import (
    MANIFEST_SCHEMA,
    DatasetLayout,
    Manifest,
    SourceInfo,
    read_manifest,
    write_manifest,
)
from syncanim.errors import DataError


def make_manifest(**changes) -> Manifest:
    """What prep writes for a 2-minute 1080p talking-head clip (plausible values)."""
    source = SourceInfo(
        path="/videos/obama.mp4", fingerprint="3f2a9c0d11e4b5a6c7d8e9f0", width=1920, height=1080,
        fps=29.97, num_frames=3596, duration_s=119.98, codec="h264", audio_rate=48000,
    )
    fields = dict(
        syncanim_version="0.1.0", source=source, num_frames=3000, fps=25.0, duration_s=120.0, image_size=512,
        crop=[660, 120, 840], focal=1200.5, cx=256.0, cy=256.0, reprojection_error_px=0.8,
        reprojection_error_all_px=1.3, num_train=2727, num_val=273, frames_without_face=4,
        frames_interpolated=3, max_faces_seen=1, face_height_px=171.2, background_unseen_fraction=0.02,
        expressions=["blink_l", "blink_r", "brow", "mouth_open", "mouth_width"],
        expression_backend="landmark-geometry", audio_backend="logmel", audio_per_frame=4, audio_dim=80,
        sample_rate=16000, labels={"0": "background", "1": "head", "2": "neck", "3": "torso"},
        timings={"stream": 310.2, "head_pose": 42.0}, stream_cpu_s={"landmarks": 600.5},
        warnings=["the clip is 2 minutes long; 3-5 minutes give better results"],
    )
    fields.update(changes)
    return Manifest(**fields)


def test_layout_names():
    lay = DatasetLayout("/data/ds")
    assert lay.manifest.name == "manifest.json" and lay.manifest.parent == lay.root
    assert lay.frame(7).name == "000007.jpg" and lay.frame(7).parent == lay.frames_dir
    assert lay.parsing(123456).name == "123456.png"


def test_manifest_roundtrips(tmp_path):
    m = make_manifest()
    write_manifest(DatasetLayout(tmp_path), m)
    back = read_manifest(tmp_path)
    assert back == m
    assert back.schema_version == MANIFEST_SCHEMA
    assert back.source.audio_rate == 48000 and back.crop == [660, 120, 840]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]  # no temporary file left


def test_manifest_roundtrips_optional_fields(tmp_path):
    m = make_manifest(crop=None, source=make_manifest().source.model_copy(update={"audio_rate": None}),
                      warnings=[], timings={})
    write_manifest(DatasetLayout(str(tmp_path)), m)
    assert read_manifest(str(tmp_path)) == m


def test_manifest_is_frozen_and_strict():
    m = make_manifest()
    with pytest.raises(ValueError):
        m.num_frames = 1
    with pytest.raises(ValueError):
        make_manifest(unexpected=1)


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        read_manifest(tmp_path / "nope")
    assert info.value.exit_code == 4


def test_folder_without_manifest_points_to_prep(tmp_path):
    (tmp_path / "frames").mkdir()  # a prep that stopped half-way
    with pytest.raises(DataError, match="not a finished dataset") as info:
        read_manifest(tmp_path)
    assert "manifest.json" in str(info.value)
    assert info.value.hint is not None and "syncanim prep" in info.value.hint
    assert str(tmp_path) in info.value.hint


@pytest.mark.parametrize("version", [0, 2, None, "1"])
def test_other_schema_version(tmp_path, version):
    data = json.loads(make_manifest().model_dump_json())
    if version is None:
        del data["schema_version"]
    else:
        data["schema_version"] = version
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="schema") as info:
        read_manifest(tmp_path)
    assert info.value.hint is not None and "prep" in info.value.hint


@pytest.mark.parametrize("text", ["", "{", '{"schema_version": 1,', "not json", "[1, 2]", "null"])
def test_invalid_json(tmp_path, text):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(DataError):
        read_manifest(tmp_path)


def test_manifest_with_binary_garbage(tmp_path):
    (tmp_path / "manifest.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError):
        read_manifest(tmp_path)


def test_valid_json_with_missing_fields(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": MANIFEST_SCHEMA, "num_frames": 10}))
    with pytest.raises(DataError, match="invalid"):
        read_manifest(tmp_path)


def test_valid_json_with_a_wrong_type(tmp_path):
    data = json.loads(make_manifest().model_dump_json())
    data["num_frames"] = "many"
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="invalid"):
        read_manifest(tmp_path)
