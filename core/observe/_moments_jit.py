"""The compiled loops behind ``core.observe.moments`` (imported only when Numba is used).

Each takes a non-empty, 1-D, C-contiguous array. An indexed loop with
reassociation allowed is what LLVM vectorises; the no-NaN/no-Inf flags are
left out so a NaN or Inf still shows in the sums. ``cache=True`` keeps the
machine code on disk between runs.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(nogil=True, cache=True, fastmath={"reassoc", "nsz", "contract", "arcp"})

BLOCK32 = 1024  # float32 lanes sum this many elements before float64 takes over
_LOW_BITS = np.int32(0x7FFFFFFF)


@_jit
def _block32(a, bits):
    # Sums in float32 vector lanes (16 to a vector, no conversions); min and max
    # through the bits as ordered integers (below), which vectorise where float
    # min/max with NaN rules do not. Zeros counted in float32: exact, a block
    # holds far fewer than 2**24 elements.
    total = np.float32(0.0)
    squares = np.float32(0.0)
    zeros = np.float32(0.0)
    low = np.int32(0x7FFFFFFF)
    high = np.int32(-0x80000000)
    for i in range(a.size):
        v = a[i]
        total += v
        squares += v * v
        zeros += np.float32(1.0) if v == np.float32(0.0) else np.float32(0.0)
        b = bits[i]
        key = b ^ ((b >> 31) & _LOW_BITS)  # float order as int32 order (NaNs aside)
        low = min(low, key)
        high = max(high, key)
    return total, squares, zeros, low, high


@_jit
def moments32(a):  # float32 -> (sum, sum of squares, min, max, zero count)
    # one pass over memory; blocks of float32 partial sums are added in float64
    # (relative error about 1e-9 on normal data, where float32 throughout loses
    # about 1e-4 over a million elements)
    bits = a.view(np.int32)
    total = 0.0
    squares = 0.0
    zeros = 0
    low = np.int32(0x7FFFFFFF)
    high = np.int32(-0x80000000)
    for start in range(0, a.size, BLOCK32):
        stop = start + BLOCK32
        t, s, z, lo, hi = _block32(a[start:stop], bits[start:stop])
        total += t
        squares += s
        zeros += int(z)
        low = min(low, lo)
        high = max(high, hi)
    keys = np.empty(2, np.int32)
    keys[0] = low ^ ((low >> 31) & _LOW_BITS)  # the transform is its own inverse
    keys[1] = high ^ ((high >> 31) & _LOW_BITS)
    values = keys.view(np.float32)
    return total, squares, np.float64(values[0]), np.float64(values[1]), zeros


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


@_jit
def centred(a, mean):  # -> (sum of (v - mean), sum of (v - mean)**2), in float64
    shift = 0.0
    squares = 0.0
    for i in range(a.size):
        d = np.float64(a[i]) - mean
        shift += d
        squares += d * d
    return shift, squares
