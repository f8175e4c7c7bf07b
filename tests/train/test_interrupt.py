"""Deferred Ctrl-C in training (syncanim/train/interrupt.py), with real SIGINTs sent to this process."""

from __future__ import annotations

import signal

import pytest

from syncanim.train.interrupt import DeferredInterrupt


def test_first_ctrl_c_asks_a_second_stops_and_none_breaks_a_save(python_ctrl_c):
    before = signal.getsignal(signal.SIGINT)
    with DeferredInterrupt() as stop, stop.saving():
        signal.raise_signal(signal.SIGINT)  # during a regular checkpoint: the loop stops after it
    assert stop.requested and not stop.forced
    with DeferredInterrupt() as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.requested and not stop.forced  # no exception: the step goes on
        with stop.saving():
            signal.raise_signal(signal.SIGINT)  # during the last checkpoint: waits
        assert not stop.forced
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert stop.forced
    assert signal.getsignal(signal.SIGINT) is before


def test_an_ignored_ctrl_c_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with DeferredInterrupt() as stop:
            signal.raise_signal(signal.SIGINT)
            assert not stop.requested
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
