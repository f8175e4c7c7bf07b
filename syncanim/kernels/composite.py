"""Volume-rendering compositing of dense samples along rays.

With ``alpha_i = 1 - exp(-sigma_i * delta_i)``, transmittance ``T_i = prod_{j<i} (1 - alpha_j)`` and
weights ``w_i = alpha_i T_i``:

    color = sum_i w_i rgb_i + (1 - sum_i w_i) background,  opacity = sum_i w_i,  depth = sum_i w_i t_i.

Backends of :func:`composite_rays`: ``ref`` (:func:`composite_rays_ref`, the specification) and ``triton``
(one program per block of rays; backward by reverse accumulation, see ``extensions/triton/composite_kernels.py``).
"""

from __future__ import annotations

import torch

from .backend import load_triton_module, resolve_backend

__all__ = ["composite_rays", "composite_rays_ref", "SUPPORTED_DTYPES"]

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)  # computed in float32


def composite_rays_ref(sigma: torch.Tensor, rgb: torch.Tensor, deltas: torch.Tensor, t: torch.Tensor,
                       background: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reference (specification) of :func:`composite_rays`, plain torch in the inputs' dtype.

    sigma: [R, S] float (>= 0). rgb: [R, S, 3] float. deltas: [R, S] float (segment lengths).
    t: [R, S] float (sample depths). background: [R, 3] float or None (black).
    Returns color [R, 3], opacity [R], depth [R], weights [R, S]; differentiable in every input.
    No epsilon: ``torch.cumprod``'s backward handles zero factors (fully opaque samples) exactly.
    """
    alpha = 1 - torch.exp(-sigma * deltas)  # [R, S]
    trans = torch.cumprod(1 - alpha, dim=-1)  # [R, S] inclusive
    trans = torch.cat([torch.ones_like(trans[:, :1]), trans[:, :-1]], dim=-1)  # exclusive: T_0 = 1
    weights = alpha * trans  # [R, S]
    opacity = weights.sum(dim=-1)  # [R]
    color = (weights.unsqueeze(-1) * rgb).sum(dim=-2)  # [R, 3]
    if background is not None:
        color = color + (1 - opacity).unsqueeze(-1) * background
    depth = (weights * t).sum(dim=-1)  # [R]
    return color, opacity, depth, weights


class _CompositeTriton(torch.autograd.Function):
    """Triton forward and reverse-accumulation backward; differentiable in sigma, rgb and background."""

    @staticmethod
    def forward(ctx, sigma, rgb, deltas, t, background):
        mod = load_triton_module("composite_kernels")
        color, opacity, depth, weights = mod.composite_forward(sigma, rgb, deltas, t, background)
        ctx.save_for_backward(sigma, rgb, deltas, t, background, color, opacity, depth, weights)
        ctx.set_materialize_grads(False)
        return color, opacity, depth, weights

    @staticmethod
    def backward(ctx, g_color, g_opacity, g_depth, g_weights):
        sigma, rgb, deltas, t, background, color, opacity, depth, weights = ctx.saved_tensors
        r = sigma.shape[0]

        def dense(g, shape):
            return torch.zeros(shape, device=sigma.device, dtype=torch.float32) if g is None else g.float().contiguous()

        g_color = dense(g_color, (r, 3))
        g_opacity = dense(g_opacity, (r,))
        g_depth = dense(g_depth, (r,))
        g_weights = None if g_weights is None else g_weights.float().contiguous()
        mod = load_triton_module("composite_kernels")
        g_sigma, g_rgb = mod.composite_backward(sigma, rgb, deltas, t, background, color, opacity, depth, weights,
                                                g_color, g_opacity, g_depth, g_weights)
        g_bg = None
        if background is not None and ctx.needs_input_grad[4]:
            g_bg = g_color * (1 - opacity).unsqueeze(-1)  # [R, 3]
        return g_sigma, g_rgb, None, None, g_bg


def _composite_rays_triton(sigma, rgb, deltas, t, background):
    """``triton`` backend of :func:`composite_rays` (validated float32 contiguous inputs; same shapes)."""
    return _CompositeTriton.apply(sigma, rgb, deltas, t, background)


def _validate(sigma, rgb, deltas, t, background) -> None:
    if sigma.ndim != 2:
        raise ValueError(f"sigma must be [R, S], got {list(sigma.shape)}")
    r, s = sigma.shape
    for name, x, want in (("rgb", rgb, [r, s, 3]), ("deltas", deltas, [r, s]), ("t", t, [r, s]),
                          ("background", background, [r, 3])):
        if x is not None and list(x.shape) != want:
            raise ValueError(f"{name} must be {want} for sigma {list(sigma.shape)}, got {list(x.shape)}")
    for name, x in (("sigma", sigma), ("rgb", rgb), ("deltas", deltas), ("t", t), ("background", background)):
        if x is None:
            continue
        if x.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"{name} has dtype {x.dtype}; supported: float32, bfloat16, float16")
        if x.device != sigma.device:
            raise ValueError(f"{name} on {x.device} but sigma on {sigma.device}")
    for name, x in (("deltas", deltas), ("t", t)):
        if x.requires_grad:
            raise ValueError(f"composite_rays does not differentiate {name}; pass {name}.detach()")


def composite_rays(sigma: torch.Tensor, rgb: torch.Tensor, deltas: torch.Tensor, t: torch.Tensor,
                   background: torch.Tensor | None = None, backend: str = "auto"
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite dense samples along rays (emission-absorption volume rendering).

    sigma: [R, S] float (densities >= 0). rgb: [R, S, 3] float in [0, 1]. deltas: [R, S] float (segment
    lengths). t: [R, S] float (sample depths, e.g. segment midpoints). background: [R, 3] float or None (black).
    Supported dtypes: float32, bfloat16, float16 (each input upcast to float32; outputs are float32).
    backend: ``"auto"`` (triton on CUDA tensors when Triton imports, else ref), ``"ref"`` or ``"triton"``.
    Returns color [R, 3], opacity [R], depth [R], weights [R, S], float32. Differentiable in sigma, rgb
    and background; deltas and t must not require grad. Raises ValueError on bad inputs, BackendUnavailable
    for a backend that cannot run.
    """
    _validate(sigma, rgb, deltas, t, background)
    chosen = resolve_backend("composite_rays", backend, sigma.device, ("ref", "triton"), ("triton", "ref"))
    sigma, rgb, deltas, t = (x.float().contiguous() for x in (sigma, rgb, deltas, t))
    if background is not None:
        background = background.float().contiguous()
    if chosen == "ref":
        return composite_rays_ref(sigma, rgb, deltas, t, background)
    return _composite_rays_triton(sigma, rgb, deltas, t, background)
