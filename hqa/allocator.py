"""Keep freed memory in the process, so that large per-step tensors are not page-faulted in
afresh every step (Linux, glibc).

glibc serves large allocations with a fresh ``mmap`` and returns them to the OS on free
(always above 32 MB; below that until its adaptive threshold has grown past them), so each
[N, K] tensor of a quantizer step (134 MB at batch 512 for MNIST's layer 1) costs ~33k page
faults, each zeroing a page, on every step. Measured on the 2-core CPU of
this project (``python -m benchmarks.speed``): that churn, not arithmetic, was most of a
straightforward layer-1 step. Serving allocations from the heap and not trimming it lets
the next step reuse the same pages. The cost is that the process keeps its peak memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's <malloc.h>
_M_MMAP_MAX = -4


def keep_freed_memory(trim_threshold_bytes: int = 2**30) -> bool:
    """Make this process's glibc malloc keep freed memory (no ``mmap`` per large tensor, no
    trimming below ``trim_threshold_bytes`` of free heap). Affects allocations made after
    the call, and cannot be undone to a fresh process's state (glibc then stops adapting its
    thresholds), so call it once at start-up. Returns False, changing nothing, where the C
    library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold_bytes))
