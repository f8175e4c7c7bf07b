"""Reading weight files that users place themselves (LPIPS, SyncNet): one-line errors that say what
belongs where."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError


def read_state(path: Path, what: str, hint: str, unwrap: bool = False) -> dict[str, torch.Tensor]:
    """A ``{name: tensor}`` mapping from ``path`` (safetensors, or torch.load with weights_only).

    ``what`` names the weights in errors, ``hint`` the file that belongs at ``path``. With ``unwrap``,
    a checkpoint that keeps its weights under a ``state_dict`` entry is unwrapped.
    """
    place = f"place {hint} there"
    if not path.is_file():
        raise CheckpointError(f"{what} not found at {path}: {place}")
    try:
        if path.suffix == ".safetensors":
            from safetensors import SafetensorError
            from safetensors.torch import load_file

            try:
                state = load_file(str(path), device="cpu")
            except SafetensorError as e:
                raise ValueError(str(e)) from e
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as e:  # arbitrary bytes make torch.load raise almost anything (KeyError, IndexError, ...)
        raise CheckpointError(f"{what} at {path} cannot be read ({type(e).__name__}: {_first_line(e)}): {place}") from e
    if unwrap and isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{what} at {path} are not a state dict of tensors: {place}")
    return dict(state)


def check_layout(state: Mapping[str, torch.Tensor], module: nn.Module, path: Path, what: str, hint: str,
                 ignored: frozenset[str] = frozenset(),
                 optional: Callable[[str], bool] = lambda key: False) -> dict[str, torch.Tensor]:
    """The keys of ``state`` that ``module`` expects. Any missing key (unless ``optional(key)``),
    unexpected key (beyond ``ignored``) or mis-shaped tensor raises one CheckpointError naming them."""
    expected = {k: v.shape for k, v in module.state_dict().items()}
    missing = sorted(k for k in set(expected) - set(state) if not optional(k))
    unexpected = sorted(set(state) - set(expected) - ignored)
    shapes = sorted(f"{k} {tuple(state[k].shape)} != {tuple(s)}" for k, s in expected.items()
                    if k in state and state[k].shape != s)
    problems = [f"{kind} {_few(items)}" for kind, items in
                (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if items]
    if problems:
        raise CheckpointError(f"{what} at {path} do not fit ({'; '.join(problems)}): place {hint} there")
    return {k: state[k] for k in expected if k in state}


def _few(items: list[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""
