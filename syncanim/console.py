"""Logging set-up and progress rendering on stderr (stdout is kept for machine output)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

#: A progress callback: ``progress(stage, done, total)`` or ``progress(stage, done, total, info)``;
#: ``total`` may be ``None`` when unknown; ``info`` is a short status text (loss, PSNR, speed).
ProgressFn = Callable[..., None]

err_console = Console(stderr=True)


def setup_logging(verbosity: int) -> None:
    """Route ``logging`` to a rich handler on stderr. ``verbosity``: -1 quiet, 0 normal, 1+ debug."""
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = RichHandler(console=err_console, show_path=verbosity > 0, show_time=False, markup=False)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("syncanim").setLevel(level)


def no_progress(stage: str, done: int, total: int | None, info: str | None = None) -> None:
    """A progress callback that draws nothing."""


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[ProgressFn]:
    """Yield a progress callback that draws one rich bar per stage name."""
    if not enabled:
        yield no_progress
        return
    columns = (
        TextColumn("[bold]{task.description:<14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    tasks: dict[str, int] = {}
    with Progress(*columns, console=err_console, transient=False) as bar:

        def update(stage: str, done: int, total: int | None, info: str | None = None) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total, info="")
            if info is None:
                bar.update(tasks[stage], completed=done, total=total)
            else:
                bar.update(tasks[stage], completed=done, total=total, info=info)

        yield update
