"""Timing with warm-up, synchronisation and robust statistics (median, p90)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def _sync(device: Any) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()


def time_calls(fn: Callable[[], Any], device: Any, warmup: int = 5, runs: int = 30) -> dict[str, float]:
    """Milliseconds per call of ``fn``: median, p90, min, mean over ``runs`` after ``warmup`` calls.

    The device is synchronised before and after each call, so asynchronous GPU work is counted.
    """
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(runs):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1000.0)
    times.sort()
    return {"median_ms": statistics.median(times), "p90_ms": times[min(len(times) - 1, int(0.9 * len(times)))],
            "min_ms": times[0], "mean_ms": statistics.fmean(times), "runs": runs}


def environment() -> dict[str, Any]:
    """What the numbers were measured on."""
    import os
    import platform

    import torch

    env: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                           "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    return env
