"""The compiled loops behind ``core.moments`` (imported only when Numba is used).

Each takes a non-empty, 1-D, C-contiguous float32 or float64 array. An indexed
loop with reassociation allowed is what LLVM vectorises; the no-NaN/no-Inf
flags are left out so a NaN or Inf still shows in the sums. ``cache=True``
keeps the machine code on disk between runs.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(nogil=True, cache=True, fastmath={"reassoc", "nsz", "contract", "arcp"})

BLOCK32 = 1024  # float32 lanes sum this many elements before float64 takes over


@_jit
def _block32(a):  # float32 lanes: 16 of them per vector, and no conversions
    total = np.float32(0.0)
    squares = np.float32(0.0)
    zeros = np.float32(0.0)  # exact: a block holds far fewer than 2**24 elements
    for i in range(a.size):
        v = a[i]
        total += v
        squares += v * v
        zeros += np.float32(1.0) if v == np.float32(0.0) else np.float32(0.0)
    return total, squares, zeros


@_jit
def sums32(a):  # float32 -> (sum, sum of squares, zero count), blocks summed in float64
    # relative error about 1e-9 against float64 sums on normal data, where
    # float32 throughout would lose about 1e-4 over a million elements
    total = 0.0
    squares = 0.0
    zeros = 0
    for start in range(0, a.size, BLOCK32):
        t, s, z = _block32(a[start : start + BLOCK32])
        total += t
        squares += s
        zeros += int(z)
    return total, squares, zeros


@_jit
def sums64(a):  # float64 -> (sum, sum of squares, zero count)
    total = 0.0
    squares = 0.0
    zeros = 0
    for i in range(a.size):
        v = a[i]
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
