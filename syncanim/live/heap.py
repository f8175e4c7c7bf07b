"""Keeping a long-running process's memory flat under glibc.

glibc raises its mmap threshold each time a large block is freed, after which blocks of that size come
from the heap arenas and, freed in a different order by several threads, stay held by the process. Over
a 30-minute live session on a CPU that grew the process by ~25 % with no growth in live objects. Fixing
the threshold (what ``MALLOC_MMAP_THRESHOLD_`` does) returns large blocks to the system when freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)


def fix_mmap_threshold(kib: int) -> bool:
    """Serve blocks of ``kib`` KiB and more by mmap, returned to the system when freed (glibc only).

    ``kib`` 0 leaves the allocator as it is. True when the setting took effect.
    """
    if kib <= 0 or not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        log.debug("no mallopt in %s: memory allocator left as it is", name)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, int(kib) * 1024))
