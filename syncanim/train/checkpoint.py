"""Resumable training state: model, optimiser moments, step counts and the random generator.

Written as ``checkpoint/state.safetensors`` (tensors) then ``checkpoint/state.json`` (counters); the
JSON names the step the tensors hold, so a crash between the two writes is detected, not trusted.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from ..data.files import write_atomic, write_json_atomic
from ..errors import CheckpointError
from ..model.folder import ModelLayout


def save_checkpoint(layout: ModelLayout, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    gen: torch.Generator, counters: dict[str, int]) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    for i, st in opt.state_dict()["state"].items():
        for name, value in st.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"opt.{i}.{name}"] = t.detach().contiguous().cpu()
    tensors["generator"] = gen.get_state().contiguous().cpu()
    layout.checkpoint.mkdir(parents=True, exist_ok=True)
    write_atomic(layout.state, lambda p: save_file(tensors, str(p), metadata={"step": str(counters["step"])}))
    write_json_atomic(layout.state_info, dict(counters))


def load_checkpoint(layout: ModelLayout, model: torch.nn.Module, opt: torch.optim.Optimizer,
                    gen: torch.Generator) -> dict[str, Any]:
    """Restore everything in place; returns the counters. CheckpointError if inconsistent."""
    from safetensors import SafetensorError, safe_open

    try:
        counters = json.loads(layout.state_info.read_text())
        with safe_open(str(layout.state), framework="pt") as f:
            step = int(f.metadata().get("step", -1))
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (OSError, json.JSONDecodeError, SafetensorError, ValueError) as e:
        raise CheckpointError(f"cannot read the checkpoint in {layout.checkpoint}: {e}",
                              hint="delete the checkpoint folder to start the training over") from e
    if step != counters.get("step"):
        raise CheckpointError(f"the checkpoint in {layout.checkpoint} is half-written (step {step} vs "
                              f"{counters.get('step')})", hint="delete the checkpoint folder to start over")
    device = next(model.parameters()).device
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"the checkpoint does not fit this model: {str(e).splitlines()[0]}") from e
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            opt_state.setdefault(int(i), {})[name] = v if name == "step" else v.to(device)
    sd = opt.state_dict()
    sd["state"] = opt_state
    opt.load_state_dict(sd)
    gen.set_state(tensors["generator"])
    return counters
