"""The compute device and the autocast precision of a run, each chosen once by the pipeline and passed down.

Library code never picks either: :func:`resolve_device` and :func:`resolve_precision` turn the
configured names into what the run uses, and :func:`autocast` opens the context for a resolved
precision. Naming a precision the device cannot do is a :class:`~syncanim.errors.ConfigError`;
only ``"auto"`` chooses, and it says what it chose.
"""

from __future__ import annotations

import logging

from .config import RuntimeConfig
from .errors import ConfigError, ResourceError

log = logging.getLogger(__name__)

#: resolved precisions: the autocast dtype of the render or training step (fp32: no autocast)
PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_device(runtime: RuntimeConfig):
    """``runtime.device`` -> a ``torch.device``; "auto" takes CUDA when present (logged at debug level)."""
    import torch

    if runtime.device == "cuda" or (runtime.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ResourceError("runtime.device is cuda but no CUDA device is available")
        log.debug("device: cuda (%s)", torch.cuda.get_device_name(0))
        return torch.device("cuda")
    log.debug("device: cpu")
    return torch.device("cpu")


def resolve_precision(device, precision: str) -> str:
    """``precision`` ("auto" | "fp32" | "bf16" | "fp16") on ``device`` -> the one used: fp32 | bf16 | fp16.

    "auto" takes bf16 on a CUDA device that supports it and fp32 everywhere else, and logs its choice.
    A named precision is used as named, or refused with ConfigError where the device cannot do it:
    fp16 on a CPU (torch has no fp16 autocast there), bf16 on a CUDA device without bf16 support.
    bf16 on a CPU runs (CPU autocast supports it; on most CPUs it is slower than fp32).
    """
    import torch

    if precision == "auto":
        fast = device.type == "cuda" and torch.cuda.is_bf16_supported()
        chosen = "bf16" if fast else "fp32"
        log.info("precision: auto -> %s on %s", chosen, device.type)
        return chosen
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}", hint="use auto, fp32, bf16 or fp16")
    if device.type == "cpu" and precision == "fp16":
        raise ConfigError("precision fp16 is not supported on CPU (no fp16 autocast there)",
                          hint="use fp32, or bf16 (slower than fp32 on most CPUs)")
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"precision bf16 is not supported by {torch.cuda.get_device_name(device)}",
                          hint="use fp16, fp32 or auto")
    return precision


def autocast(device, precision: str, cache: bool = True):
    """The autocast context of a resolved ``precision`` (:func:`resolve_precision`) on ``device``: none
    for fp32. ``cache``: autocast's cache of weights cast to the lower precision (off inside CUDA graph capture)."""
    from contextlib import nullcontext

    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"autocast takes a resolved precision ({' | '.join(PRECISIONS)}), got {precision!r}")
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache)


class HostCopies:
    """Host (numpy) copies of some device tensors, read back again only when one of them has changed: a read-back
    waits for all the work queued on the device, which a per-frame path should not."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._arrays: tuple = ()

    def of(self, *tensors) -> tuple:
        """The tensors' values as numpy arrays (cached by each tensor's storage and in-place version)."""
        key = tuple((t.data_ptr(), t._version, str(t.device)) for t in tensors)
        if key != self._key:
            self._key, self._arrays = key, tuple(t.detach().cpu().numpy() for t in tensors)
        return self._arrays


def to_device(array, device, dtype=None):
    """A host array on ``device`` without waiting for the device: on CUDA the values are staged in page-locked
    memory and copied behind the work queued on the current stream (a plain ``.to(device)`` from pageable memory
    waits for all of it); elsewhere a tensor view or copy. ``array``: numpy array or CPU tensor; ``dtype``: a
    torch dtype to convert to first. -> a tensor on ``device``."""
    import numpy as np
    import torch

    t = torch.from_numpy(np.ascontiguousarray(array)) if isinstance(array, np.ndarray) else array
    if dtype is not None:
        t = t.to(dtype)
    device = torch.device(device)
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)
