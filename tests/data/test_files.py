"""Atomic file writers (syncanim/data/files.py): complete files or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from syncanim.data.files import (
    save_npy_atomic,
    save_npz_atomic,
    writable_file,
    writable_folder,
    write_atomic,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from syncanim.errors import ResourceError


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_bytes(tmp_path):
    out = write_bytes_atomic(tmp_path / "a.bin", b"\x00\x01abc")
    assert out == tmp_path / "a.bin"
    assert out.read_bytes() == b"\x00\x01abc"
    assert listing(tmp_path) == ["a.bin"]


def test_write_text_is_utf8(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "héllo\n")
    assert (tmp_path / "a.txt").read_bytes() == "héllo\n".encode()


def test_write_json(tmp_path):
    obj = {"b": [1, 2.5, None], "a": {"x": "y"}}
    write_json_atomic(str(tmp_path / "a.json"), obj)  # str paths work too
    text = (tmp_path / "a.json").read_text()
    assert json.loads(text) == obj
    assert text.endswith("\n")
    assert listing(tmp_path) == ["a.json"]


def test_save_npy(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    save_npy_atomic(tmp_path / "a.npy", a)
    b = np.load(tmp_path / "a.npy")
    assert b.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert listing(tmp_path) == ["a.npy"]


def test_save_npy_refuses_objects(tmp_path):
    with pytest.raises(ValueError):
        save_npy_atomic(tmp_path / "a.npy", np.array([{"a": 1}], dtype=object))
    assert listing(tmp_path) == []


def test_save_npz(tmp_path):
    x, y = np.eye(3), np.array([True, False])
    save_npz_atomic(tmp_path / "t.npz", x=x, y=y)
    with np.load(tmp_path / "t.npz") as z:
        assert sorted(z.files) == ["x", "y"]
        np.testing.assert_array_equal(z["x"], x)
        np.testing.assert_array_equal(z["y"], y)
    assert listing(tmp_path) == ["t.npz"]


def test_overwrites_an_existing_file(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert listing(tmp_path) == ["a.txt"]


def test_writer_gets_a_temporary_path_next_to_the_target(tmp_path):
    seen = []

    def writer(tmp: Path) -> None:
        seen.append(tmp)
        assert not (tmp_path / "a.txt").exists()  # nothing under the real name while writing
        tmp.write_text("done")

    write_atomic(tmp_path / "a.txt", writer)
    assert seen[0].parent == tmp_path and seen[0] != tmp_path / "a.txt"
    assert (tmp_path / "a.txt").read_text() == "done"
    assert listing(tmp_path) == ["a.txt"]


class Boom(RuntimeError):
    pass


def half_writer(tmp: Path) -> None:
    tmp.write_bytes(b"half of the")
    raise Boom("disk full")


def test_failing_writer_leaves_nothing(tmp_path):
    with pytest.raises(Boom):
        write_atomic(tmp_path / "a.bin", half_writer)
    assert listing(tmp_path) == []


def test_writer_failing_before_creating_the_file(tmp_path):
    def writer(tmp: Path) -> None:
        raise Boom("no")

    with pytest.raises(Boom):
        write_atomic(tmp_path / "a.bin", writer)
    assert listing(tmp_path) == []


def test_failing_writer_leaves_an_existing_target_untouched(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"the complete old version")
    with pytest.raises(Boom):
        write_atomic(target, half_writer)
    assert target.read_bytes() == b"the complete old version"
    assert listing(tmp_path) == ["a.bin"]


def test_interrupt_leaves_nothing(tmp_path):
    def writer(tmp: Path) -> None:
        tmp.write_bytes(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "a.bin", writer)
    assert listing(tmp_path) == []


def test_missing_folder_raises_and_leaves_nothing(tmp_path):
    with pytest.raises(OSError):
        write_text_atomic(tmp_path / "no" / "such" / "a.txt", "x")
    assert listing(tmp_path) == []


def test_writable_checks_create_folders_and_refuse_what_cannot_be_written(tmp_path):
    assert writable_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()
    assert list((tmp_path / "a" / "b").iterdir()) == []  # the probe is gone
    assert writable_file(tmp_path / "c" / "d" / "x.json") == tmp_path / "c" / "d" / "x.json"
    assert writable_folder(tmp_path / "e", create=False) == tmp_path / "e"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # checks that create nothing left nothing
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(ResourceError, match="it is a folder"):
        writable_file(tmp_path / "a")
    for check in (lambda: writable_file(tmp_path / "f" / "x.json"), lambda: writable_folder(tmp_path / "f"),
                  lambda: writable_folder(tmp_path / "f" / "g", create=False)):
        with pytest.raises(ResourceError, match="cannot write to"):
            check()
