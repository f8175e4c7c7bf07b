"""Fused ops with plain-torch references and fast backends.

Each op has a public dispatcher (``backend="auto" | "ref" | "torch" | "triton"``), a ``*_ref`` torch
specification and at least one fast path. Importing this package imports torch only: Triton sources in
``extensions/triton/`` are loaded, and compiled, on first use of the ``triton`` backend.
"""

from .backend import BackendUnavailable, chosen_backends
from .composite import composite_rays, composite_rays_ref
from .hashgrid import GridSpec, grid_spec, hash_index, triplane_encode, triplane_encode_ref

__all__ = [
    "BackendUnavailable",
    "GridSpec",
    "chosen_backends",
    "composite_rays",
    "composite_rays_ref",
    "grid_spec",
    "hash_index",
    "triplane_encode",
    "triplane_encode_ref",
]
