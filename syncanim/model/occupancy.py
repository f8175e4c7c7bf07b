"""An occupancy grid over the head box: samples in cells the head never fills are skipped.

The grid keeps, per cell, a decaying maximum of the density seen there (as nerfacc's estimator does):
each update evaluates the density at a jittered point of every cell under a few audio/expression
conditions, keeps ``max(old * decay, new)``, and marks a cell occupied when a sample there could be
visible (``density * bin length > threshold``), grown by a cell or two so that a mouth opening
under another condition is not cut. The same pure functions run on CPU and GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cell_points(res: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    """One point per cell of a res^3 grid over [-1, 1]^3, jittered inside the cell with a generator
    (cell centres without). -> [res^3, 3], ordered like ``grid.reshape(-1)`` for grid[ix, iy, iz]."""
    idx = torch.arange(res, device=device, dtype=torch.float32)
    gx, gy, gz = torch.meshgrid(idx, idx, idx, indexing="ij")
    cells = torch.stack([gx, gy, gz], -1).reshape(-1, 3)
    if generator is None:
        u = torch.full_like(cells, 0.5)
    else:
        u = torch.rand(cells.shape, generator=generator, device=generator.device).to(cells)
    return (cells + u) / res * 2.0 - 1.0


def lookup(occupied: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    """occupied: [G, G, G] bool, unit: [..., 3] in the unit box -> [...] bool (outside: False)."""
    g = occupied.shape[0]
    ijk = ((unit + 1.0) * 0.5 * g).floor().long()
    inside = ((ijk >= 0) & (ijk < g)).all(-1)
    ijk = ijk.clamp(0, g - 1)
    return occupied[ijk[..., 0], ijk[..., 1], ijk[..., 2]] & inside


def occupied_cells(density: torch.Tensor, bin_length: float, threshold: float, grow: int = 1) -> torch.Tensor:
    """density: [G, G, G] -> bool grid of cells where a sample could be visible, grown by ``grow`` cells."""
    occ = (density * bin_length > threshold).float()[None, None]
    if grow:
        occ = F.max_pool3d(occ, 2 * grow + 1, stride=1, padding=grow)
    return occ[0, 0] > 0
