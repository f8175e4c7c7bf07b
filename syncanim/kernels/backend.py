"""Backend dispatch shared by the fused ops: names, ``auto`` resolution and the lazy Triton loader.

Backends:

- ``"ref"``: the plain-torch specification of an op (``*_ref``), any device.
- ``"torch"``: a faster plain-torch formulation, where an op has one (any device).
- ``"triton"``: a Triton kernel from ``extensions/triton/``. Needs CUDA tensors, or CPU tensors
  when ``TRITON_INTERPRET=1`` was set before the first Triton kernel was loaded (Triton's interpreter).
- ``"cuda"``: a compiled CUDA extension. None of the ops here ship one yet; naming it raises.
- ``"auto"``: the op's first preference that can run on the given tensors. The choice is logged
  once per op at INFO and kept in :func:`chosen_backends` for run metadata.

The Triton sources are plain Python files loaded by path on first use (never at import), from
``<checkout>/extensions/triton/`` or, in an installed wheel, ``syncanim/_extensions/triton/``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import torch

from ..errors import KernelUnavailable

log = logging.getLogger(__name__)

BACKENDS = ("auto", "ref", "torch", "triton", "cuda")

_lock = threading.RLock()  # re-entrant: a Triton source may load another (its helpers)
_modules: dict[str, ModuleType] = {}
_triton_error: str | None = None
_triton_checked = False
_chosen: dict[str, str] = {}


class BackendUnavailable(KernelUnavailable):
    """A named kernel backend cannot run here; the message is one line saying why (exit code 6 on the command line)."""


def triton_unavailable_reason() -> str | None:
    """Why Triton cannot be imported, or None when it can. The import is attempted once."""
    global _triton_error, _triton_checked
    with _lock:
        if not _triton_checked:
            try:
                import triton  # noqa: F401
            except Exception as e:  # a broken install raises more than ImportError
                _triton_error = f"triton cannot be imported ({type(e).__name__}: {e})".splitlines()[0]
            _triton_checked = True
        return _triton_error


def triton_interpreter_on() -> bool:
    """Whether Triton's interpreter is requested (``TRITON_INTERPRET=1``), which runs kernels on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _extension_dirs() -> list[Path]:
    here = Path(__file__).resolve().parent  # .../syncanim/kernels
    return [
        here.parent.parent / "extensions" / "triton",  # a source checkout
        here.parent / "_extensions" / "triton",  # an installed wheel (force-included)
    ]


def load_triton_module(name: str) -> ModuleType:
    """Import ``extensions/triton/<name>.py`` by file path (once) and return it.

    Raises BackendUnavailable when Triton does not import or the file is not shipped.
    """
    reason = triton_unavailable_reason()
    if reason is not None:
        raise BackendUnavailable(reason)
    with _lock:
        mod = _modules.get(name)
        if mod is not None:
            return mod
        dirs = _extension_dirs()
        path = next((d / f"{name}.py" for d in dirs if (d / f"{name}.py").is_file()), None)
        if path is None:
            raise BackendUnavailable(
                f"Triton source {name}.py not found in {' or '.join(str(d) for d in dirs)}"
            )
        mod_name = f"syncanim._triton_{name}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise BackendUnavailable(f"cannot load Triton source {path}")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = mod  # triton.jit and dataclasses look modules up by name
        try:
            spec.loader.exec_module(mod)
        except Exception as e:
            del sys.modules[mod_name]
            raise BackendUnavailable(f"loading {path.name} failed ({type(e).__name__}: {e})".splitlines()[0]) from e
        _modules[name] = mod
        log.debug("loaded Triton kernels from %s", path)
        return mod


def _why_not(backend: str, device: torch.device) -> str | None:
    """Why ``backend`` cannot run on tensors of ``device``, or None if it can."""
    if backend in ("ref", "torch"):
        return None
    if backend == "triton":
        reason = triton_unavailable_reason()
        if reason is not None:
            return reason
        if device.type == "cuda":
            return None
        if device.type == "cpu" and triton_interpreter_on():
            return None
        return f"the triton backend needs CUDA tensors (got {device.type}; TRITON_INTERPRET=1 runs it on CPU)"
    return f"no {backend} backend is built for this op"


def resolve_backend(op: str, backend: str, device: torch.device, supported: Sequence[str],
                    auto_order: Sequence[str]) -> str:
    """The backend to run ``op`` with on tensors of ``device``.

    ``supported``: the backends ``op`` implements. ``auto_order``: preference order for ``"auto"``
    (never the interpreter: ``auto`` picks ``triton`` on CUDA tensors only).
    Raises ValueError for an unknown name, BackendUnavailable for one that cannot run here.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} for {op}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        reason = (
            f"no {backend} backend (it has {', '.join(supported)})"
            if backend not in supported
            else _why_not(backend, device)
        )
        if reason is not None:
            raise BackendUnavailable(f"{op}: {reason}")
        return backend
    for cand in auto_order:
        if cand == "triton" and device.type != "cuda":
            continue
        if _why_not(cand, device) is None:
            if _chosen.get(op) != cand:
                _chosen[op] = cand
                log.info("%s: backend 'auto' chose %r for %s tensors", op, cand, device.type)
            return cand
    raise BackendUnavailable(f"{op}: no backend can run on {device.type} tensors")  # pragma: no cover


def chosen_backends() -> dict[str, str]:
    """The backend ``auto`` last chose per op (op name → backend), for run metadata."""
    return dict(_chosen)
