"""The head's field at points in one fused launch (rendering, no gradients): weights packed for the kernel.

:func:`pack_field` lays the weights of a :class:`syncanim.model.field.HeadField` out as the Triton kernel
(``extensions/triton/field_kernels.py``) reads them: each linear layer transposed to ``[in, out]`` and
zero-padded to powers of two (at least 16, what ``tl.dot`` takes), the first density layer split by its
inputs (encoding, gated mouth, gated expressions) and the first colour layer too (geometry features,
direction harmonics; the lighting latent's part becomes a per-frame bias). Zero padding changes nothing:
padded inputs meet zero weights, padded outputs are zero and unused.

:func:`field_points_triton` runs the kernel. Its reference is ``HeadField.points`` with any other backend
(the module's own forward, plain torch); the tests compare the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .backend import load_triton_module
from .hashgrid import GridSpec, _level_meta

PRECISIONS = ("ieee", "tf32")  # tl.dot inputs: float32 products, or TF32 tensor cores (10-bit mantissa)


def _pad(n: int) -> int:
    """The padded size of a dimension of n: the next power of two, at least 16."""
    return max(16, 1 << (max(1, n) - 1).bit_length())


def _block(w: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """``w`` [r, c] zero-padded to [rows, cols] float32, contiguous."""
    out = torch.zeros(rows, cols, device=w.device, dtype=torch.float32)
    out[: w.shape[0], : w.shape[1]] = w.float()
    return out


@dataclass(frozen=True)
class Scatter:
    """Where a field's results at N points go: point n's to row ``pos[n]`` of ``sigma`` [M] and ``rgb`` [M, 3]
    (float32, contiguous, zero where written) when ``valid[n]``; the other points are dropped. pos: [N] int64,
    distinct where valid; valid: [N] bool."""

    sigma: torch.Tensor
    rgb: torch.Tensor
    pos: torch.Tensor
    valid: torch.Tensor

    def add(self, sigma: torch.Tensor, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write results computed at the N points (sigma [N], rgb [N, 3]) as a kernel would, in plain torch
        (no host synchronisation: the dropped points add zeros). Returns the target buffers."""
        self.sigma.index_add_(0, self.pos, torch.where(self.valid, sigma.float(), 0.0))
        self.rgb.index_add_(0, self.pos, torch.where(self.valid[:, None], rgb.float(), 0.0))
        return self.sigma, self.rgb


@dataclass(frozen=True)
class Regions:
    """Where a frame's codes act: points outside ``speech_box`` read ``mouth_rest`` [A] instead of their frame's
    mouth vector, points outside ``expression_box`` read ``expression_rest`` [E] instead of their frame's
    expressions. Boxes: [2, 3] (lo, hi) in the head box's unit coordinates; one holding the whole unit box leaves
    its code everywhere."""

    speech_box: torch.Tensor
    mouth_rest: torch.Tensor
    expression_box: torch.Tensor
    expression_rest: torch.Tensor

    def to(self, device: torch.device | str) -> Regions:
        return Regions(*(t.to(device) for t in (self.speech_box, self.mouth_rest, self.expression_box,
                                                 self.expression_rest)))


@dataclass(frozen=True)
class PackedField:
    """A field's weights as the kernel reads them (``weights``: name -> padded float32 matrix or bias), the
    lighting latent's columns of the first colour layer (``latent_weight`` [L, H_P]) and its bias
    (``color_bias`` [H_P]), and the padded widths."""

    weights: dict[str, torch.Tensor]
    latent_weight: torch.Tensor
    color_bias: torch.Tensor
    audio_pad: int
    expr_pad: int
    hidden_pad: int


def pack_field(spec: GridSpec, gates: tuple[torch.nn.Linear, torch.nn.Linear], density: list[torch.nn.Linear],
               color: list[torch.nn.Linear]) -> PackedField:
    """Pack the field's layers: ``gates`` = (audio gate, expression gate), ``density`` = the density MLP's three
    linear layers (encoding + gated mouth + gated expressions -> hidden -> hidden -> 1 + geometry), ``color`` =
    the colour MLP's two (geometry + 9 harmonics + latent -> hidden -> 3)."""
    enc = 3 * spec.levels * spec.features
    ga, ge = gates
    d1, d2, d3 = density
    c1, c2 = color
    a, e, h, g = ga.out_features, ge.out_features, d2.in_features, d3.out_features
    enc_p, a_p, e_p, h_p, g_p = _pad(enc), _pad(a), _pad(e), _pad(h), _pad(g)
    geo = g - 1
    w1, wc1 = d1.weight.detach(), c1.weight.detach()
    wc1g = torch.zeros(g_p, h_p, device=w1.device)
    wc1g[1:g, :h] = wc1[:, :geo].t().float()  # row 0 meets the density column: not a colour input

    def bias(layer: torch.nn.Linear, n: int) -> torch.Tensor:
        return _block(layer.bias.detach()[None], 1, n)[0]

    weights = {
        "wga": _block(ga.weight.detach().t(), enc_p, a_p), "bga": bias(ga, a_p),
        "wge": _block(ge.weight.detach().t(), enc_p, e_p), "bge": bias(ge, e_p),
        "w1e": _block(w1[:, :enc].t(), enc_p, h_p), "w1a": _block(w1[:, enc:enc + a].t(), a_p, h_p),
        "w1x": _block(w1[:, enc + a:].t(), e_p, h_p), "b1": bias(d1, h_p),
        "w2": _block(d2.weight.detach().t(), h_p, h_p), "b2": bias(d2, h_p),
        "w3": _block(d3.weight.detach().t(), h_p, g_p), "b3": bias(d3, g_p),
        "wc1g": wc1g, "wc1s": _block(wc1[:, geo:geo + 9].t(), 16, h_p),
        "wc2": _block(c2.weight.detach().t(), h_p, 16), "bc2": bias(c2, 16),
    }
    return PackedField(weights, _block(wc1[:, geo + 9:].t(), wc1.shape[1] - geo - 9, h_p), bias(c1, h_p),
                       a_p, e_p, h_p)


def field_points_triton(packed: PackedField, spec: GridSpec, tables: torch.Tensor, coords: torch.Tensor,
                        ray: torch.Tensor, dirs: torch.Tensor, ray_frame: torch.Tensor | None, audio: torch.Tensor,
                        expr: torch.Tensor, latent: torch.Tensor, precision: str = "ieee", *,
                        encoding: torch.Tensor | None = None, into: Scatter | None = None,
                        launch: dict[str, int] | None = None, regions: Regions | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Density and colour at points, fused. coords: [N, 3] unit box; ray: [N] long, the ray of each point;
    dirs: [R, 3] unit ray directions; ray_frame: [R] long, the frame of each ray (row of the conditioning), or
    None when there is one frame; audio [B, A], expr [B, E], latent [B, L]: per frame. ``precision``: of the
    MLP products (:data:`PRECISIONS`); ``encoding``: the points' tri-plane encoding [N, 3 * levels * features]
    when already computed (then only the MLPs run fused, and ``tables`` is not read); ``into``: where the results
    go instead of new buffers (:class:`Scatter`); ``launch``: the kernel's ``block`` and ``num_warps`` when not its
    defaults (benchmarks/kernels_gpu.py); ``regions``: where the mouth and expression codes act (:class:`Regions`).
    Returns sigma [N] (>= 0), rgb [N, 3] float32, or ``into``'s buffers."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    mod = load_triton_module("field_kernels")
    b = audio.shape[0]
    frames_a = _block(audio.reshape(b, -1), b, packed.audio_pad)
    frames_e = _block(expr.reshape(b, -1), b, packed.expr_pad)
    cbias = (latent.float() @ packed.latent_weight + packed.color_bias).contiguous()  # [B, H_P]
    frame = None if ray_frame is None else ray_frame.to(torch.int32).contiguous()
    target = None if into is None else (into.sigma, into.rgb, into.pos.contiguous(), into.valid.contiguous())
    coords = coords.float().contiguous()
    region = None if regions is None else (
        torch.cat([regions.speech_box.float().reshape(6), regions.expression_box.float().reshape(6)]).contiguous(),
        torch.cat([_block(regions.mouth_rest.detach().reshape(1, -1), 1, packed.audio_pad)[0],
                   _block(regions.expression_rest.detach().reshape(1, -1), 1, packed.expr_pad)[0]]).contiguous())
    if encoding is not None:
        return mod.field_mlp_forward(encoding.float().contiguous(), ray.to(torch.int32).contiguous(),
                                     dirs.float().contiguous(), frame, frames_a, frames_e, cbias, packed.weights,
                                     precision, into=target, coords=coords, regions=region, **(launch or {}))
    return mod.field_forward(coords, ray.to(torch.int32).contiguous(), dirs.float().contiguous(),
                             frame, frames_a, frames_e, cbias, tables.detach().float().contiguous(),
                             _level_meta(spec, coords.device), packed.weights, spec.levels, spec.features, spec.rows,
                             spec.log2_table, precision, into=target, regions=region, **(launch or {}))
