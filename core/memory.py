"""Process memory settings that make NumPy's big temporaries cheap.

A conv step allocates large temporaries (im2col columns, gradients). glibc
returns big freed blocks to the OS, and the next step pays about 1,000 page
faults to get them back. ``keep_freed_memory`` raises glibc's trim and mmap
thresholds so freed blocks stay in the heap and are reused.

The app also holds large, long-lived sets of Python objects (a 10,000-node
graph is about 100,000; a recording's events), and allocates small ones in
bursts (the first paint of a big graph: about 60,000). With the cyclic
collector's default first threshold of 700 allocations, such a burst runs
some 85 young collections and, once the older generations fill, a full one
over everything alive: 42-47 ms of a 100 ms first paint.
``collect_less_often`` raises that threshold: young collections run about 14
times less often, and full ones stop landing inside such bursts.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
GC_YOUNG = 10_000  # allocations between young collections (CPython's default: 700)


def keep_freed_memory(trim_mib: int = 512, mmap_mib: int = 64) -> bool:
    """Tune glibc malloc for this process; False where it is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = mallopt(M_MMAP_THRESHOLD, mmap_mib * 2**20) == 1
    return ok and mallopt(M_TRIM_THRESHOLD, trim_mib * 2**20) == 1


def collect_less_often(young: int = GC_YOUNG) -> None:
    """Raise the cyclic GC's first threshold to ``young`` (the older two stay):
    see the module docstring. Cycles are still collected, a little later."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(max(young, 1), older, oldest)


def tune_process() -> None:
    """What gradstep's entry point sets for its process (and what a bench that
    measures the app sets too): glibc keeps freed memory, the GC collects less
    often."""
    keep_freed_memory()
    collect_less_often()
