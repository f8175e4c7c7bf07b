"""Choosing the compute device once per run (pipelines pass it down; library code never picks one)."""

from __future__ import annotations

import logging

from .config import RuntimeConfig
from .errors import ResourceError

log = logging.getLogger(__name__)


def resolve_device(runtime: RuntimeConfig):
    """``runtime.device`` -> a ``torch.device``; "auto" takes CUDA when present and says which it took."""
    import torch

    if runtime.device == "cuda" or (runtime.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ResourceError("runtime.device is cuda but no CUDA device is available")
        log.info("device: cuda (%s)", torch.cuda.get_device_name(0))
        return torch.device("cuda")
    log.info("device: cpu")
    return torch.device("cpu")


def autocast_for(device, precision: str):
    """The mixed-precision context of a run: bf16 autocast on CUDA for "auto"/"bf16", else none."""
    from contextlib import nullcontext

    import torch

    if device.type == "cuda" and precision in ("auto", "bf16"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()
