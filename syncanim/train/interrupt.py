"""Ctrl-C during training stops between two steps, so the checkpoint it leaves resumes exactly.

A SIGINT that lands in the middle of a step would leave a state no uninterrupted run passes through (the random
generator already drawn for a batch that was never applied, or an update applied and not yet counted). While a
:class:`DeferredInterrupt` is entered, the first Ctrl-C only asks the loop to stop after the step it is in; a second
one interrupts at once, wherever it lands (the checkpoint then saved resumes, but not bit for bit).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

log = logging.getLogger(__name__)


class DeferredInterrupt:
    """Defers the first SIGINT while entered (module doc); ``requested`` tells the loop to stop, ``forced`` that a
    second Ctrl-C came. Outside the main thread (where Python delivers no signals) it changes nothing."""

    def __init__(self) -> None:
        self.requested = False
        self.forced = False
        self._previous: object = None
        self._installed = False
        self._saving = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._saving:
            self.requested = True
            log.warning("saving the checkpoint; stopping right after")
            return
        if self.requested:
            self.forced = True
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stopping after this step (Ctrl-C again to stop at once)")

    @contextlib.contextmanager
    def saving(self) -> Iterator[None]:
        """While the last checkpoint is written, Ctrl-C waits: a half-written checkpoint would lose the run."""
        self._saving = True
        try:
            yield
        finally:
            self._saving = False

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not signal.SIG_IGN:  # an ignored Ctrl-C (a background job) stays ignored
                self._previous = previous
                signal.signal(signal.SIGINT, self._handle)
                self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:  # a handler installed outside Python (getsignal: None) comes back as Python's own
            previous = self._previous if self._previous is not None else signal.default_int_handler
            signal.signal(signal.SIGINT, previous)  # type: ignore[arg-type]
            self._installed = False
