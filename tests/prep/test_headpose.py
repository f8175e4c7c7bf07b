"""Prep's head-pose stage: the landmark-ba tracker as an entry point, NeRF transforms of a track, track files."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from syncanim import geometry as g
from syncanim.data.track import HeadTrack, load_track, save_track
from syncanim.errors import DataError
from syncanim.face import headpose as hp
from syncanim.prep import headpose as ph

SIZE = (512, 512)


def test_spec_resolves_through_an_entry_point():
    from importlib import metadata

    from syncanim.registry import Registry

    ep = metadata.EntryPoint(name="landmark-ba", value="syncanim.prep.headpose:SPEC",
                             group="syncanim.head_trackers")
    spec = Registry(entry_points=[ep]).get("syncanim.head_trackers", "landmark-ba")
    assert spec is ph.SPEC and spec.config_model is hp.LandmarkBAConfig
    assert isinstance(spec.build(hp.LandmarkBAConfig()), hp.LandmarkBATracker)
    assert spec.check(hp.LandmarkBAConfig()) is None


def _track(n: int, seed: int = 0) -> HeadTrack:
    rng = np.random.default_rng(seed)
    rot = g.axis_angle_to_matrix(rng.normal(scale=0.2, size=(n, 3)))
    trans = np.column_stack([rng.normal(scale=0.01, size=(n, 2)), rng.uniform(0.9, 1.1, n)])
    return HeadTrack(rotation=rot, translation=trans, focal=1100.0, cx=256.0, cy=256.0,
                     canonical=rng.normal(size=(478, 3)).astype(np.float32), reprojection_error_px=0.5,
                     reprojection_error_all_px=0.9, per_frame_error_px=rng.uniform(size=n).astype(np.float32))


def test_nerf_transforms_invert_the_pose_and_split_off_the_last_frames():
    track = _track(100)
    train, val = ph.nerf_transforms(track, SIZE, 1 / 11)
    assert len(val["frames"]) == math.ceil(100 / 11) == 10 and len(train["frames"]) == 90
    assert [f["img_id"] for f in train["frames"] + val["frames"]] == list(range(100))
    assert all(f["aud_id"] == f["img_id"] for f in train["frames"] + val["frames"])
    assert (train["focal_len"], train["cx"], train["cy"]) == (1100.0, 256.0, 256.0) == (
        val["focal_len"], val["cx"], val["cy"])
    c2w = np.array([f["transform_matrix"] for f in train["frames"] + val["frames"]])  # [N, 4, 4]
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenGL camera axes -> OpenCV camera axes
    pose = g.pose_matrix(track.rotation, track.translation)
    np.testing.assert_allclose(c2w @ flip @ pose, np.broadcast_to(np.eye(4), (100, 4, 4)), atol=1e-9)
    json.dumps(train)  # plain JSON types only


def test_nerf_transforms_rescale_intrinsics_and_reject_bad_splits():
    track = _track(12)
    train, val = ph.nerf_transforms(track, (1024, 1024), 0.25)
    assert (train["focal_len"], train["cx"], train["cy"]) == (2200.0, 512.0, 512.0)
    assert len(val["frames"]) == 3 and len(train["frames"]) == 9
    with pytest.raises(DataError, match="aspect ratio"):
        ph.nerf_transforms(track, (512, 256), 0.25)
    with pytest.raises(DataError, match="too few"):
        ph.nerf_transforms(_track(1), SIZE, 0.25)
    with pytest.raises(DataError, match="val_fraction"):
        ph.nerf_transforms(track, SIZE, 0.0)


def test_save_and_load_round_trip(tmp_path):
    track = _track(30)
    path = tmp_path / "head_pose.npz"
    save_track(path, track)
    assert [p.name for p in tmp_path.iterdir()] == ["head_pose.npz"]  # no temporary file left behind
    back = load_track(path)
    for field in ("rotation", "translation", "canonical", "per_frame_error_px"):
        np.testing.assert_array_equal(getattr(back, field), getattr(track, field))
        assert getattr(back, field).dtype == getattr(track, field).dtype
    assert (back.focal, back.cx, back.cy) == (track.focal, track.cx, track.cy)
    assert (back.reprojection_error_px, back.reprojection_error_all_px) == (0.5, 0.9)


def test_load_rejects_missing_and_foreign_files(tmp_path):
    with pytest.raises(DataError, match="cannot read head track"):
        load_track(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="cannot read head track"):
        load_track(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", rotation=np.eye(3)[None])
    with pytest.raises(DataError, match="not a head track"):
        load_track(tmp_path / "other.npz")
