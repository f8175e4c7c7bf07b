"""The exception hierarchy and its exit codes (syncanim/errors.py)."""

from __future__ import annotations

import concurrent.futures
import pickle

import pytest

from syncanim import errors
from syncanim.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    KernelUnavailable,
    PluginError,
    ResourceError,
    SyncanimError,
)

# STYLE.md, "Errors": 2 is Typer's usage error, 130 interrupted, 1 a bug
EXIT_CODES = {
    ConfigError: 3,
    DataError: 4,
    PluginError: 5,
    KernelUnavailable: 6,
    CheckpointError: 7,
    ResourceError: 8,
}
ALL = [SyncanimError, *EXIT_CODES]


@pytest.mark.parametrize(("cls", "code"), EXIT_CODES.items(), ids=lambda x: getattr(x, "__name__", str(x)))
def test_exit_code_per_class(cls, code):
    assert issubclass(cls, SyncanimError)
    assert cls.exit_code == code
    assert cls("boom").exit_code == code


def test_base_class_exit_code_is_the_bug_code():
    assert SyncanimError.exit_code == 1


def test_exit_codes_are_distinct_and_avoid_reserved_ones():
    codes = list(EXIT_CODES.values())
    assert len(set(codes)) == len(codes)
    assert not set(codes) & {0, 1, 2, 130}


def test_every_error_class_in_the_module_has_an_expected_code():
    found = {obj for obj in vars(errors).values()
             if isinstance(obj, type) and issubclass(obj, SyncanimError) and obj is not SyncanimError}
    assert found == set(EXIT_CODES)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_message_and_hint(cls):
    e = cls("the video has no frames", hint="give a longer clip")
    assert str(e) == "the video has no frames"  # the hint is not glued onto the message
    assert e.message == "the video has no frames"
    assert e.hint == "give a longer clip"
    assert cls("x").hint is None
    assert isinstance(e, Exception)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@pytest.mark.parametrize("hint", [None, "run `syncanim prep` again"])
def test_errors_survive_pickling(cls, hint):
    e = cls("dataset folder not found: /data/x", hint=hint)
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is cls
    assert back.message == e.message and str(back) == str(e)
    assert back.hint == hint
    assert back.exit_code == e.exit_code


def test_hint_keyword_and_positional_are_the_same():
    assert DataError("m", "h").hint == DataError("m", hint="h").hint == "h"


def _raise_in_worker(hint):
    raise DataError("decoding failed at frame 12", hint=hint)


def test_errors_cross_a_process_boundary():
    with concurrent.futures.ProcessPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(_raise_in_worker, "the file may be truncated")
        with pytest.raises(DataError) as info:
            fut.result(timeout=60)
    assert str(info.value) == "decoding failed at frame 12"
    assert info.value.hint == "the file may be truncated"
    assert info.value.exit_code == 4


def test_chained_cause_is_kept():
    try:
        try:
            raise ValueError("bad sample rate")
        except ValueError as inner:
            raise DataError("cannot decode audio") from inner
    except DataError as outer:
        assert isinstance(outer.__cause__, ValueError)
