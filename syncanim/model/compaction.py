"""Stream compaction with static shapes: the positions of a mask's set entries, in a buffer of fixed size.

``mask.nonzero()`` has a data-dependent shape, so the host waits for the device to learn it, and a CUDA
graph cannot capture it. :func:`compact_slots` writes the same positions into a buffer of ``capacity``
slots instead, and says how many there were: the renderer evaluates that many field points whatever the
frame, and a frame that wanted more is known by its count (the caller renders it again with room).
"""

from __future__ import annotations

import torch


def compact_slots(mask: torch.Tensor, capacity: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The flat indices of ``mask``'s True entries, in order, in ``capacity`` slots. No host synchronisation.

    mask: [N] bool. Returns (index [capacity] long: the i-th True entry's index for i < count, 0 in the slots
    after it; valid [capacity] bool: slot i holds an entry; count [] long: how many entries ``mask`` has,
    which may exceed ``capacity``: the entries past it are left out).
    """
    n = mask.numel()
    pos = torch.cumsum(mask.to(torch.int64), 0) - 1  # [N]: the slot of each set entry
    count = pos[-1] + 1 if n else torch.zeros((), dtype=torch.int64, device=mask.device)
    slot = torch.where(mask & (pos < capacity), pos, capacity)  # the rest to a slot past the end
    index = torch.zeros(capacity + 1, dtype=torch.int64, device=mask.device)
    index.scatter_(0, slot, torch.arange(n, device=mask.device))
    valid = torch.arange(capacity, device=mask.device) < count
    return index[:capacity], valid, count
