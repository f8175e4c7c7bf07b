"""Whole torso frames in one fused launch (rendering, no gradients): the torso field's weights packed for the kernel.

:func:`pack_torso` lays a :class:`syncanim.model.torso.TorsoField` out as the Triton kernel
(``extensions/triton/torso_kernels.py``) reads it: each linear layer transposed to ``[in, out]`` and zero-padded
to powers of two (at least 16, what ``tl.dot`` takes), the first layer of each MLP without its pose-code
columns (the code's share is a per-frame bias, :func:`torso_frames`), and the feature planes of every level in
one flat buffer, each ``[r, r, F]`` (a texel's features side by side), with each encoding column's level
resolution and first element. Zero padding changes nothing: padded inputs meet zero weights, padded outputs are
unused.

:func:`torso_frames` runs the kernel. Its reference is ``TorsoField.render`` with the ``ref`` backend (the
module's own forward, plain torch); the tests compare the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .backend import load_triton_module
from .field import _block, _pad

#: tl.dot inputs: float32 products, three TF32 products (about float32's accuracy), one TF32 product
PRECISIONS = ("ieee", "tf32x3", "tf32")


@dataclass(frozen=True)
class PackedTorso:
    """A torso field as the kernel reads it: ``weights`` (name -> padded float32 matrix or bias), the pose code's
    columns of the two first layers (``code1``, ``ccode1``: [6, H_P]) and their biases (``bias1``, ``cbias1``:
    [H_P]), the planes (``planes``: flat float32) and per encoding column its level's resolution (``col_res``
    [LF_P] int32, 0 for padding) and first element (``col_base`` [LF_P] int64)."""

    weights: dict[str, torch.Tensor]
    code1: torch.Tensor
    bias1: torch.Tensor
    ccode1: torch.Tensor
    cbias1: torch.Tensor
    planes: torch.Tensor
    col_res: torch.Tensor
    col_base: torch.Tensor


def pack_torso(planes: list[torch.Tensor], offset: list[torch.nn.Linear], colour: list[torch.nn.Linear],
               code_dim: int) -> PackedTorso:
    """Pack the field: ``planes`` [1, F, r, r] per level, the offset MLP's three linear layers (position encoding
    + code -> hidden -> hidden -> 2) and the colour MLP's three (features + code -> hidden -> hidden -> 4)."""
    o1, o2, o3 = offset
    c1, c2, c3 = colour
    pe = o1.in_features - code_dim
    lf = c1.in_features - code_dim
    h = o2.in_features
    pe_p, lf_p, h_p = _pad(pe), _pad(lf), _pad(h)
    dev = o1.weight.device

    def bias(layer: torch.nn.Linear, n: int) -> torch.Tensor:
        return _block(layer.bias.detach()[None], 1, n)[0]

    w1, wc1 = o1.weight.detach(), c1.weight.detach()
    weights = {
        "w1": _block(w1[:, :pe].t(), pe_p, h_p), "w2": _block(o2.weight.detach().t(), h_p, h_p), "b2": bias(o2, h_p),
        "w3": _block(o3.weight.detach().t(), h_p, 16), "b3": bias(o3, 16),
        "wc1": _block(wc1[:, :lf].t(), lf_p, h_p), "wc2": _block(c2.weight.detach().t(), h_p, h_p),
        "bc2": bias(c2, h_p), "wc3": _block(c3.weight.detach().t(), h_p, 16), "bc3": bias(c3, 16),
    }
    flat, res, base, start = [], [], [], 0
    for plane in planes:
        f, r = plane.shape[1], plane.shape[-1]
        flat.append(plane.detach()[0].permute(1, 2, 0).reshape(-1).float())  # [r, r, F]
        res += [r] * f
        base += [start + i for i in range(f)]
        start += r * r * f
    res += [0] * (lf_p - len(res))
    base += [0] * (lf_p - len(base))
    return PackedTorso(weights, _block(w1[:, pe:].t(), code_dim, h_p), bias(o1, h_p), _block(wc1[:, lf:].t(), code_dim, h_p),
                       bias(c1, h_p), torch.cat(flat).contiguous(),
                       torch.tensor(res, dtype=torch.int32, device=dev), torch.tensor(base, dtype=torch.int64, device=dev))


def torso_frames(packed: PackedTorso, code: torch.Tensor, plate: torch.Tensor, size: int, frequencies: int,
                 features: int, max_offset: float, precision: str = "tf32x3",
                 launch: dict[str, int] | None = None) -> torch.Tensor:
    """Whole frames of pose codes ``code`` [B, 6] over ``plate`` ([S, S, 3], or [B, S, S, 3] per frame; float in
    [0, 1]) at ``size`` S -> [B, S, S, 3] float32. ``precision``: of the MLP products (:data:`PRECISIONS`; tf32x3,
    the default, was the fastest on an H200, about float32's accuracy: 6e-5 from the reference at most);
    ``launch``: the kernel's ``block`` and ``num_warps`` when not its defaults (benchmarks/kernels_gpu.py)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    mod = load_triton_module("torso_kernels")
    c = code.float()
    bias1 = (c @ packed.code1 + packed.bias1).contiguous()  # [B, H_P]
    cbias = (c @ packed.ccode1 + packed.cbias1).contiguous()
    flat = plate.float().reshape(-1 if plate.dim() == 4 else 1, size * size, 3).contiguous()
    return mod.torso_forward(bias1, cbias, flat, packed.weights, packed.planes, packed.col_res, packed.col_base, size,
                             frequencies, features, max_offset, precision, **(launch or {}))
