"""Summary statistics of a tensor, as events carry them (``Stats``).

>>> import numpy as np
>>> s = summarize(np.array([1.0, -2.0, np.nan], dtype=np.float32))
>>> s.min, s.max, s.nan
(-2.0, 1.0, 1)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as _np

from core.observe.events import Stats
from core.observe.moments import centred_moments, moments

_recent: dict[int, tuple[Any, Stats]] = {}  # id(array) -> (array, stats), newest last
_RECENT_MAX = 32  # arrays kept alive by the cache; a step's gradients come back within a few


def summarize(array: Any) -> Stats:
    """Statistics of a NumPy or CuPy array, reduced on its own device.

    On the host, one compiled pass for a finite float array (``core.observe.moments``);
    on the GPU, five reductions and one host transfer. The same array object
    summarized again (a gradient handed from one backward rule to the next, an
    accumulated ``.grad``) is answered from a small cache.
    """
    hit = _recent.get(id(array))
    if hit is not None and hit[0] is array:
        return hit[1]
    stats = _summarize(array)
    if len(_recent) >= _RECENT_MAX:
        _recent.pop(next(iter(_recent)))
    _recent[id(array)] = (array, stats)
    return stats


def _summarize(array: Any) -> Stats:
    size = int(array.size)
    if size == 0:
        return Stats(math.nan, math.nan, math.nan, math.nan, 0.0, 0, 0, 0)
    if size == 1:  # scalars (losses, constants) are most events: no reductions
        v = float(array.reshape(-1)[0])
        if math.isnan(v):
            return Stats(math.nan, math.nan, math.nan, math.nan, math.nan, 1, 0, 1)
        if math.isinf(v):
            return Stats(math.nan, math.nan, math.nan, math.nan, math.nan, 0, 1, 1)
        return Stats(v, v, v, 0.0, abs(v), 0, 0, 1, int(v == 0.0))
    if isinstance(array, _np.ndarray):
        xp = _np
        flat = array.reshape(-1)
        if flat.dtype not in _HOST_FLOATS:
            flat = flat.astype(_np.float64)  # ints, bools, float16, byte-swapped
        total, squares, low, high, zeros = moments(flat)
    else:
        xp = _xp(array)
        flat = array.reshape(-1)
        if flat.dtype.kind != "f":
            flat = flat.astype(xp.float64)
        zeros = xp.count_nonzero(flat == 0)
        values = (flat.sum(dtype=xp.float64), xp.dot(flat, flat), flat.min(), flat.max(), zeros)
        values = xp.stack([xp.asarray(v, dtype=xp.float64) for v in values]).get()
        total, squares, low, high, zeros = values
    total, squares = float(total), float(squares)
    if not (math.isfinite(total) and math.isfinite(squares)):
        return _summarize_nonfinite(xp, array, size)
    low, high = float(low), float(high)
    mean = total / size
    var = squares / size - mean * mean
    if low == high:  # constant: exact, whatever the order of the sums
        mean, var = low, 0.0
    elif var < mean * mean:  # |mean| > std: the one-pass sums cancel, take two passes
        mean, var = centred_moments(xp, flat, mean)
    std = math.sqrt(max(var, 0.0))
    return Stats(low, high, mean, std, math.sqrt(squares), 0, 0, size, int(zeros))


_HOST_FLOATS = (_np.dtype(_np.float32), _np.dtype(_np.float64))  # what core.observe.moments reads


def _summarize_nonfinite(xp: Any, array: Any, size: int) -> Stats:
    """The exact path for arrays holding NaN or Inf (or overflowing sums)."""
    zeros = int(xp.count_nonzero(array == 0))
    if array.dtype.kind not in "fc":
        a = array.astype(xp.float64)
        return Stats(*_moments(xp, a), 0, 0, size, zeros)
    finite = xp.isfinite(array)
    nfinite = int(finite.sum())
    nan = int(xp.isnan(array).sum())
    if nfinite == size:
        return Stats(*_moments(xp, array), 0, 0, size, zeros)
    if nfinite == 0:
        nans = (math.nan,) * 5
        return Stats(*nans, nan, size - nan, size, 0)
    return Stats(*_moments(xp, array[finite]), nan, size - nfinite - nan, size, zeros)


def _moments(xp: Any, a: Any) -> tuple[float, float, float, float, float]:
    a64 = a.astype(xp.float64, copy=False)
    mean = float(a64.mean())
    return (
        float(a64.min()),
        float(a64.max()),
        mean,
        float(a64.std()),
        float(xp.sqrt((a64 * a64).sum())),
    )


def _xp(array: Any) -> Any:
    if isinstance(array, _np.ndarray):
        return _np
    from core import device

    return device.array_module(array)
