"""Timing with warm-up, synchronisation and robust statistics (median, p90, p95)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def _sync(device: Any) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``q`` percent of ``values`` at or below it."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def time_calls(fn: Callable[[], Any], device: Any, warmup: int = 5, runs: int = 30,
               events: bool = False) -> dict[str, float]:
    """Milliseconds per call of ``fn``: median, p90, p95, min, mean over ``runs`` after ``warmup`` calls.

    The device is synchronised before and after each call, so asynchronous GPU work is counted.
    With ``events`` on a CUDA device, CUDA events around each call also give the GPU-side time
    (``gpu_median_ms``, ``gpu_p95_ms``): time on the current stream from the call's start to its end,
    gaps where the GPU waits for the host's launches included, the final synchronisation excluded.
    """
    import torch

    use_events = events and getattr(device, "type", str(device)) == "cuda"
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    pairs = []
    for _ in range(runs):
        _sync(device)
        if use_events:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        t0 = time.perf_counter()
        fn()
        if use_events:
            end.record()
            pairs.append((start, end))
        _sync(device)
        times.append((time.perf_counter() - t0) * 1000.0)
    out = {"median_ms": statistics.median(times), "p90_ms": sorted(times)[min(len(times) - 1, int(0.9 * len(times)))],
           "p95_ms": percentile(times, 95), "min_ms": min(times), "mean_ms": statistics.fmean(times), "runs": runs}
    if use_events:
        gpu = [s.elapsed_time(e) for s, e in pairs]
        out.update(gpu_median_ms=statistics.median(gpu), gpu_p95_ms=percentile(gpu, 95))
    return out


def _cpu_model() -> str | None:
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment() -> dict[str, Any]:
    """What the numbers were measured on."""
    import os
    import platform

    import torch

    env: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
                           "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                           "cpu": _cpu_model(), "platform": platform.platform()}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    try:
        import triton

        env["triton"] = triton.__version__
    except ImportError:
        env["triton"] = None
    return env
