"""Resumable stages (syncanim/prep/cache.py): content fingerprints, stage keys and stage records."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from syncanim.prep.cache import StageRecords, fingerprint, stage_key

MiB = 1 << 20


def random_file(path: Path, size: int, seed: int = 0) -> Path:
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


# --- fingerprint ---------------------------------------------------------------------------


def test_fingerprint_is_stable_and_short(tmp_path):
    p = random_file(tmp_path / "v.mp4", 1000)
    assert fingerprint(p) == fingerprint(str(p))
    assert len(fingerprint(p)) == 24
    int(fingerprint(p), 16)  # hex


@pytest.mark.parametrize("where", ["start", "end"])
def test_fingerprint_changes_with_the_content_of_a_large_file(tmp_path, where):
    p = random_file(tmp_path / "v.mp4", 3 * MiB + 123)
    before = fingerprint(p)
    flip_byte(p, 0 if where == "start" else p.stat().st_size - 1)
    assert fingerprint(p) != before


def test_fingerprint_changes_with_the_content_of_a_small_file(tmp_path):
    p = random_file(tmp_path / "v.mp4", 5000)
    before = fingerprint(p)
    flip_byte(p, 2500)
    assert fingerprint(p) != before


def test_fingerprint_changes_at_the_end_of_a_mid_sized_file(tmp_path):
    p = random_file(tmp_path / "v.mp4", MiB + MiB // 2)
    before = fingerprint(p)
    flip_byte(p, p.stat().st_size - 1)
    assert fingerprint(p) != before


def test_fingerprint_changes_with_the_size(tmp_path):
    p = random_file(tmp_path / "v.mp4", 3 * MiB)
    before = fingerprint(p)
    with p.open("ab") as f:
        f.write(b"\0")
    assert fingerprint(p) != before


def test_fingerprint_ignores_mtime_and_location(tmp_path):
    p = random_file(tmp_path / "v.mp4", 3 * MiB)
    before = fingerprint(p)
    os.utime(p, (1_000_000_000, 1_000_000_000))
    assert fingerprint(p) == before
    copy = tmp_path / "elsewhere" / "renamed.mp4"
    copy.parent.mkdir()
    shutil.copy(p, copy)
    assert fingerprint(copy) == before


def test_fingerprint_differs_between_files(tmp_path):
    a = random_file(tmp_path / "a", 3 * MiB, seed=1)
    b = random_file(tmp_path / "b", 3 * MiB, seed=2)
    assert fingerprint(a) != fingerprint(b)


def test_fingerprint_of_an_empty_file(tmp_path):
    p = tmp_path / "empty"
    p.write_bytes(b"")
    assert len(fingerprint(p)) == 24


# --- stage_key -----------------------------------------------------------------------------


def test_stage_key_is_stable():
    parts = ({"fps": 25.0, "size": 512}, "abc123", 3)
    assert stage_key(*parts) == stage_key(*parts)
    assert len(stage_key(*parts)) == 24


def test_stage_key_ignores_dict_key_order():
    a = {"fps": 25.0, "size": 512, "audio": {"kind": "logmel", "n_mels": 80}}
    b = {"audio": {"n_mels": 80, "kind": "logmel"}, "size": 512, "fps": 25.0}
    assert stage_key(a, "fp") == stage_key(b, "fp")


@pytest.mark.parametrize(
    "other",
    [({"fps": 30.0, "size": 512}, "fp"), ({"fps": 25.0, "size": 512}, "fp2"), ({"fps": 25.0}, "fp"),
     ("fp", {"fps": 25.0, "size": 512})],
    ids=["value", "upstream", "missing-key", "part-order"],
)
def test_stage_key_changes_with_the_inputs(other):
    assert stage_key({"fps": 25.0, "size": 512}, "fp") != stage_key(*other)


def test_stage_key_accepts_paths():
    assert stage_key(Path("/a/b")) == stage_key(Path("/a/b"))
    assert stage_key(Path("/a/b")) != stage_key(Path("/a/c"))


# --- StageRecords --------------------------------------------------------------------------


@pytest.fixture
def records(tmp_path) -> StageRecords:
    return StageRecords(tmp_path / ".syncanim")


def make_outputs(root: Path, *names: str) -> list[str]:
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        (root / n).write_text("x")
    return list(names)


def test_not_done_before_marking(records, tmp_path):
    assert not records.done("landmarks", "k1", tmp_path)
    assert records.read("landmarks") is None


def test_mark_then_done(records, tmp_path):
    outs = make_outputs(tmp_path, "landmarks.npy", "frames/000000.jpg")
    records.mark("landmarks", "k1", outs, info={"frames": 10})
    assert records.done("landmarks", "k1", tmp_path)
    rec = records.read("landmarks")
    assert rec == {"key": "k1", "outputs": outs, "info": {"frames": 10}}
    assert (tmp_path / ".syncanim" / "stages" / "landmarks.json").is_file()


def test_not_done_with_another_key(records, tmp_path):
    records.mark("landmarks", "k1", make_outputs(tmp_path, "landmarks.npy"))
    assert not records.done("landmarks", "k2", tmp_path)


def test_not_done_when_an_output_is_missing(records, tmp_path):
    outs = make_outputs(tmp_path, "a.npy", "b.npy")
    records.mark("stage", "k", outs)
    (tmp_path / "b.npy").unlink()
    assert not records.done("stage", "k", tmp_path)


def test_outputs_are_relative_to_root(records, tmp_path):
    outs = make_outputs(tmp_path / "ds", "a.npy")
    records.mark("stage", "k", outs)
    assert records.done("stage", "k", tmp_path / "ds")
    assert not records.done("stage", "k", tmp_path / "other")


def test_stage_without_outputs(records, tmp_path):
    records.mark("probe", "k", [])
    assert records.done("probe", "k", tmp_path)


def test_forget(records, tmp_path):
    records.mark("stage", "k", make_outputs(tmp_path, "a.npy"))
    records.forget("stage")
    assert not records.done("stage", "k", tmp_path)
    assert records.read("stage") is None
    records.forget("stage")  # forgetting twice is fine
    records.forget("never-marked")


def test_records_are_per_stage(records, tmp_path):
    records.mark("a", "k", [])
    records.mark("b", "k", [])
    records.forget("a")
    assert not records.done("a", "k", tmp_path)
    assert records.done("b", "k", tmp_path)


def test_mark_again_replaces_the_record(records, tmp_path):
    records.mark("stage", "k1", [])
    records.mark("stage", "k2", [], info={"n": 1})
    assert not records.done("stage", "k1", tmp_path)
    assert records.done("stage", "k2", tmp_path)
    assert records.read("stage")["info"] == {"n": 1}


def test_a_corrupt_record_means_not_done(records, tmp_path):
    records.mark("stage", "k", [])
    (tmp_path / ".syncanim" / "stages" / "stage.json").write_text('{"key": "k", "outp')  # cut off mid-write
    assert records.read("stage") is None
    assert not records.done("stage", "k", tmp_path)


def test_records_survive_a_new_instance(tmp_path):
    StageRecords(tmp_path / ".syncanim").mark("stage", "k", [])
    assert StageRecords(tmp_path / ".syncanim").done("stage", "k", tmp_path)
