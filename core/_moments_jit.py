"""The compiled loops behind ``core.moments`` (imported only when Numba is used).

Both take a non-empty, 1-D, C-contiguous float32 or float64 array and
accumulate in float64. An indexed loop with reassociation allowed is what LLVM
vectorises; the no-NaN/no-Inf flags are left out so a NaN or Inf still shows in
the sums. ``cache=True`` keeps the machine code on disk between runs.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(nogil=True, cache=True, fastmath={"reassoc", "nsz", "contract", "arcp"})


@_jit
def sums(a):  # -> (sum, sum of squares, zero count)
    total = 0.0
    squares = 0.0
    zeros = 0
    for i in range(a.size):
        v = np.float64(a[i])
        total += v
        squares += v * v
        zeros += v == 0.0
    return total, squares, zeros


@_jit
def all_five(a):  # -> (sum, sum of squares, min, max, zero count); min/max don't vectorise
    total = 0.0
    squares = 0.0
    zeros = 0
    low = np.float64(a[0])
    high = low
    for i in range(a.size):
        v = np.float64(a[i])
        total += v
        squares += v * v
        zeros += v == 0.0
        if v < low:
            low = v
        if v > high:
            high = v
    return total, squares, low, high, zeros
