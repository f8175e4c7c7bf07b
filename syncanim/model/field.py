"""The head's radiance field: tri-plane hash grids, region-gated audio/expression conditioning, MLPs.

Per point ``x`` (in the unit head box): the tri-plane encoding ``e(x)`` (xy, yz, xz planes, multi-
resolution hash grids); region attention ``a(x) = sigmoid(A e(x))`` and ``b(x) = sigmoid(B e(x))``
scale the frame's audio vector and expression vector per channel, so the field learns where speech
acts (the mouth, jaw) and where expressions act (eyes, brows); a density MLP reads
``[e(x), a(x) * audio, b(x) * expression]`` and gives the density and geometry features; a colour MLP
reads those features, the view direction (spherical harmonics, degree 2) and the frame's lighting
latent.
"""

from __future__ import annotations

import logging
from itertools import accumulate

import torch
import torch.nn.functional as F
from torch import nn

from ..kernels.backend import resolve_backend
from ..kernels.field import PRECISIONS, PackedField, Regions, Scatter, field_points_triton, pack_field
from ..kernels.hashgrid import GridSpec, triplane_encode
from .rays import outside_box

log = logging.getLogger(__name__)

#: what :meth:`HeadField.points` runs in one kernel: nothing (off), everything after the encoding (mlp), all
FUSED = ("off", "mlp", "all")


def sh_degree2(dirs: torch.Tensor) -> torch.Tensor:
    """Real spherical harmonics up to degree 2 of unit directions. [N, 3] -> [N, 9]."""
    x, y, z = dirs.unbind(-1)
    return torch.stack([
        torch.full_like(x, 0.28209479177387814),
        -0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x,
        1.0925484305920792 * x * y, -1.0925484305920792 * y * z,
        0.31539156525252005 * (2 * z * z - x * x - y * y),
        -1.0925484305920792 * x * z, 0.5462742152960396 * (x * x - y * y),
    ], -1)


def split_linear(layer: nn.Linear, *parts: torch.Tensor) -> torch.Tensor:
    """``layer(torch.cat(parts, -1))`` without the concatenation: one matrix product per part, accumulated in
    place into the first's. parts: [N, D_i] (or [1, D_i], the same row for every point: folded into the bias),
    sum D_i = layer.in_features, the first [N, D_0] -> [N, out_features]."""
    w, bias = layer.weight, layer.bias
    ends = list(accumulate(p.shape[-1] for p in parts))
    starts = [0, *ends[:-1]]
    if ends[-1] != w.shape[1]:
        raise ValueError(f"split_linear: parts of {ends[-1]} features for a layer of {w.shape[1]}")
    blocks = [(p, w[:, a:b]) for p, a, b in zip(parts, starts, ends, strict=True)]
    (first, w0), rest = blocks[0], blocks[1:]
    shared = [p.shape[0] == 1 and first.shape[0] != 1 for p, _ in rest]  # one row for all: part of the bias
    for (p, wp), one in zip(rest, shared, strict=True):
        if one:
            row = (p.to(wp.dtype) @ wp.t())[0]
            bias = row if bias is None else bias + row
    out = F.linear(first, w0, bias)
    for (p, wp), one in zip(rest, shared, strict=True):
        if not one:
            out.addmm_(p.to(out.dtype), wp.t().to(out.dtype))
    return out


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def limit_codes(regions: Regions, x_unit: torch.Tensor, audio: torch.Tensor,
                expr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each point's mouth vector and expressions where its codes act (:class:`~syncanim.kernels.field.Regions`):
    x_unit [N, 3]; audio [N, A] or [1, A]; expr [N, E] or [1, E] -> [N, A], [N, E]."""
    audio = torch.where(outside_box(x_unit, regions.speech_box)[:, None], regions.mouth_rest.to(audio.dtype), audio)
    expr = torch.where(outside_box(x_unit, regions.expression_box)[:, None],
                       regions.expression_rest.to(expr.dtype), expr)
    return audio, expr


class HeadField(nn.Module):
    """Density and colour at points, conditioned per point on audio, expression and a lighting latent."""

    def __init__(self, spec: GridSpec, audio_dim: int, expr_dim: int, latent_dim: int,
                 hidden: int = 64, geo_dim: int = 15, backend: str = "auto", density_bias: float = 0.0) -> None:
        """``backend``: of the kernels (the ``triton`` one can render the whole field in one launch: :meth:`points`)."""
        super().__init__()
        self.spec = spec
        self.backend = backend
        self._packed: tuple[tuple, PackedField] | None = None
        self.fused_error: str | None = None  # why the fused kernel failed here (``auto`` then stops using it)
        self.tables = nn.Parameter(torch.empty(3, spec.rows, spec.features).uniform_(-1e-4, 1e-4))
        enc = 3 * spec.levels * spec.features
        self.enc_dim = enc
        self.audio_gate = nn.Linear(enc, audio_dim)
        self.expr_gate = nn.Linear(enc, expr_dim)
        self.density_net = mlp([enc + audio_dim + expr_dim, hidden, hidden, 1 + geo_dim])
        self.color_net = mlp([geo_dim + 9 + latent_dim, hidden, 3])
        with torch.no_grad():  # start half-opaque: the density only has to be learned down or up from there
            self.density_net[-1].bias[0] = density_bias

    def encode(self, x_unit: torch.Tensor) -> torch.Tensor:
        """x_unit: [N, 3] in [-1, 1] -> [N, enc_dim]."""
        return triplane_encode(x_unit.float().contiguous(), self.tables, self.spec, backend=self.backend)

    def _hidden(self, x_unit: torch.Tensor, audio: torch.Tensor, expr: torch.Tensor):
        e = self.encode(x_unit)
        ga = torch.sigmoid(self.audio_gate(e))
        ge = torch.sigmoid(self.expr_gate(e))
        # the density net's first layer on [e, ga * audio, ge * expr], one product per block of its columns
        # accumulated in place: the same sum without writing the concatenation out
        h = split_linear(self.density_net[0], e, ga * audio, ge * expr)
        return self.density_net[1:](h), ga, ge

    def density(self, x_unit: torch.Tensor, audio: torch.Tensor, expr: torch.Tensor) -> torch.Tensor:
        """x_unit: [N, 3]; audio: [N, A]; expr: [N, E] -> sigma [N] (no colour: for the occupancy grid)."""
        h, _, _ = self._hidden(x_unit, audio, expr)
        return torch.exp(h[:, 0].float().clamp(max=15.0))

    def forward(self, x_unit: torch.Tensor, dirs: torch.Tensor, audio: torch.Tensor, expr: torch.Tensor,
                latent: torch.Tensor) -> dict[str, torch.Tensor]:
        """x_unit, dirs: [N, 3]; audio: [N, A]; expr: [N, E]; latent: [N, L] (the last three may be [1, .]: one
        frame's, for every point) -> sigma [N] (>= 0), rgb [N, 3] in [0, 1], audio_gate [N, A], expr_gate [N, E]."""
        h, ga, ge = self._hidden(x_unit, audio, expr)
        sigma = torch.exp(h[:, 0].float().clamp(max=15.0))
        c = split_linear(self.color_net[0], h[:, 1:], sh_degree2(dirs), latent)
        rgb = torch.sigmoid(self.color_net[1:](c).float())
        return {"sigma": sigma, "rgb": rgb, "audio_gate": ga, "expr_gate": ge}

    def points(self, x_unit: torch.Tensor, ray: torch.Tensor, dirs: torch.Tensor, ray_frame: torch.Tensor | None,
               audio: torch.Tensor, expr: torch.Tensor, latent: torch.Tensor, fused: str = "all",
               precision: str = "ieee", into: Scatter | None = None,
               regions: Regions | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Density and colour at points for rendering (no gradients), each point read on its ray.

        x_unit: [N, 3]; ray: [N] long, the ray of each point; dirs: [R, 3] unit ray directions; ray_frame: [R]
        long, the frame (row of the conditioning) of each ray, or None when there is one frame; audio [B, A],
        expr [B, E], latent [B, L]. Returns sigma [N], rgb [N, 3] float32. ``fused`` (:data:`FUSED`): with
        ``all``, the ``triton`` backend (``auto`` on CUDA) runs the whole field in one kernel; with ``mlp``, the
        encoder's own kernel and then everything after it in one kernel; their matrix products in ``precision``
        (:data:`syncanim.kernels.field.PRECISIONS`). With ``off``, on the other backends, and under ``auto`` once
        the kernel has failed to compile or launch here (a warning, :attr:`fused_error`), :meth:`forward` on
        gathered inputs (the reference). ``into``: the results go to its buffers' rows (the kernels store them
        there), which are returned. ``regions``: where the frame's mouth and expression codes act
        (:func:`limit_codes`, :meth:`NerfHead.regions`).
        """
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
        if fused not in FUSED:
            raise ValueError(f"unknown fused mode {fused!r}; choose one of {', '.join(FUSED)}")
        if fused != "off" and self.fused_error is None and resolve_backend(
                "field_points", self.backend, x_unit.device, ("ref", "torch", "triton"), ("triton", "torch")) == "triton":
            try:
                return field_points_triton(self.packed(), self.spec, self.tables, x_unit, ray, dirs, ray_frame, audio,
                                           expr, latent, precision,
                                           encoding=self.encode(x_unit) if fused == "mlp" else None, into=into,
                                           regions=regions)
            except torch.OutOfMemoryError:
                raise
            except Exception as e:  # a kernel that does not compile or launch on this GPU / Triton
                if self.backend == "triton":  # asked for by name: say so
                    raise
                self.fused_error = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                log.warning("the fused field kernel cannot run here (%s); rendering with the per-op kernels",
                            self.fused_error)
        frame = None if ray_frame is None else ray_frame.index_select(0, ray)
        audio, expr, latent = (x if frame is None else x.index_select(0, frame) for x in (audio, expr, latent))
        if regions is not None:
            audio, expr = limit_codes(regions, x_unit, audio, expr)
        f = self(x_unit, dirs.index_select(0, ray), audio, expr, latent)
        if into is not None:
            return into.add(f["sigma"], f["rgb"])
        return f["sigma"].float(), f["rgb"].float()

    def packed(self) -> PackedField:
        """The weights as the fused kernel reads them, packed again whenever a weight has changed."""
        layers = [self.audio_gate, self.expr_gate, *self.density_net[::2], *self.color_net[::2]]
        key = tuple((p.data_ptr(), p._version, p.device) for layer in layers for p in layer.parameters())
        if self._packed is None or self._packed[0] != key:
            self._packed = (key, pack_field(self.spec, (self.audio_gate, self.expr_gate), list(self.density_net[::2]),
                                            list(self.color_net[::2])))
        return self._packed[1]
