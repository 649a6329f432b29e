"""Process memory settings that make NumPy's big temporaries cheap.

A conv step allocates large temporaries (im2col columns, gradients). glibc
returns big freed blocks to the OS, and the next step pays about 1,000 page
faults to get them back. ``keep_freed_memory`` raises glibc's trim and mmap
thresholds so freed blocks stay in the heap and are reused.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


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
