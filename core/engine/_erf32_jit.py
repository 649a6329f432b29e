"""The compiled loop behind ``core.engine.erf32`` (imported only when it first runs).

No fastmath flags: the loop rounds exactly as ``erf32.numpy_loop`` does (no
fused multiply-adds, no reordering). ``error_model="numpy"`` drops the
division-by-zero check, which would keep LLVM from vectorising the loop.
``cache=True`` keeps the machine code on disk between runs.

The coefficients come in as arguments, not as globals: Numba would compile
globals in as constants and its disk cache, which watches this file only,
would keep serving the old ones after a refit changed ``erf32.py``. As
tuples they are constants to the loop all the same (LLVM unrolls the Horner
loops over them and vectorises the loop over the elements).
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(nogil=True, cache=True, error_model="numpy")
def erf32(x, out, clamp, p, q):
    """erf of a 1-D, C-contiguous float32 array into another (or the same)
    one: ``x * P(x*x) / Q(x*x)`` in float64 with ``|x| <= clamp``, odd."""
    for i in range(x.size):
        v = np.float64(x[i])
        a = abs(v)
        a = clamp if a > clamp else a  # NaN stays NaN
        t = a * a
        num = p[-1]
        for k in range(len(p) - 2, -1, -1):
            num = num * t + p[k]
        den = q[-1]
        for k in range(len(q) - 2, -1, -1):
            den = den * t + q[k]
        out[i] = np.float32(math.copysign(a * (num / den), v))
