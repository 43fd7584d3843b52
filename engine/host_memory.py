"""How a training process treats the host memory it frees: it keeps it for the next step.

glibc's malloc hands freed memory back to the system once enough of it gathers at the top of its heap, and serves
large requests with mappings of their own that it unmaps on free, moving both limits as it goes. A training step
allocates and frees the same megabytes of activations and gradients every step, and under those rules the engine's
CPU step at bench size gave megabytes back and faulted them in again (a kernel trap and a page of zeros for each
page): 270-420 page faults a step against 7-38 for the bare loop beside it, about 1 % of the step
(`bench/train_overhead.py` prints both). With both limits raised, freed memory stays in the heap and the next step
reuses it; the process's resident size stays at its peak, which every step reaches anyway. Elsewhere (macOS, musl)
this does nothing.
"""

from __future__ import annotations

import ctypes
import functools

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>: free memory at the heap's top kept before returning it to the OS
M_MMAP_THRESHOLD = -3  # requests at least this large get a mapping of their own, unmapped (and lost) on free
KEEP_AT_TOP_BYTES = 1 << 30
# the largest own-mapping threshold glibc accepts differs by version; 32 MiB (its own dynamic ceiling) always is
OWN_MAPPING_FROM_BYTES = (1 << 30, 32 << 20)


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's trim and mmap thresholds for this process (once; setting either also stops glibc adjusting
    them itself). Whether they were set."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc: its allocator has its own policy, left as it is
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # the mmap threshold first: alone, a raised trim threshold would freeze it at 128 KiB, and every larger
    # request would then be mapped and faulted in afresh (27,800 faults a step at bench size)
    if not any(mallopt(M_MMAP_THRESHOLD, size) for size in OWN_MAPPING_FROM_BYTES):
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, KEEP_AT_TOP_BYTES))
