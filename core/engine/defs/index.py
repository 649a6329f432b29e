"""Indexing along one axis (PyTorch's gather and scatter) and argsort: forward
through ``xp``, gradient in Tensor ops, shape rule. Index arrays are inputs.

``gather(x, axis, index)`` reads ``x`` at ``index`` along ``axis`` (the other
axes count up), as ``torch.gather``; ``scatter(x, axis, index, src)`` writes
``src`` there into a copy of ``x`` (with ``reduce="add"``: adds, repeats
summed), as ``torch.scatter``/``scatter_add``. Each is the other's gradient.
"""

from __future__ import annotations

import numpy as np

from core.device import scatter_add
from core.engine import functional as F
from core.engine.dispatch import apply, constant
from core.engine.ops import Op, define

_INT64 = np.dtype(np.int64)


def _check_index(xp, a, index, axis, src=None):
    if index.dtype.kind not in "iu":
        raise TypeError(f"the index must hold integers, got dtype {index.dtype}")
    if index.ndim != a.ndim:
        raise ValueError(f"the index has {index.ndim} dims, the tensor {a.ndim}")
    for d, (n, m) in enumerate(zip(index.shape, a.shape)):
        if d != axis and n > m:
            raise ValueError(f"index size {n} exceeds the tensor's {m} in dim {d}")
        if src is not None and n > src.shape[d]:
            raise ValueError(f"index size {n} exceeds src's {src.shape[d]} in dim {d}")
    if index.size and (int(index.min()) < 0 or int(index.max()) >= a.shape[axis]):
        raise IndexError(f"an index is outside 0..{a.shape[axis] - 1} along dim {axis}")


def _positions(xp, index, axis):
    """The full fancy index that ``index`` along ``axis`` stands for."""
    grids = []
    for d, n in enumerate(index.shape):
        if d == axis:
            grids.append(index)
        else:
            shape = [1] * index.ndim
            shape[d] = n
            grids.append(xp.arange(n).reshape(shape))
    return tuple(grids)


def _gather(xp, a, index, axis):
    _check_index(xp, a, index, axis)
    return a[_positions(xp, index, axis)]


def _gather_grad(ctx, g):
    a, index = ctx.inputs
    zeros = constant(0.0, like=g).expand(*a.shape)
    return apply(Op.SCATTER, (zeros, index, g), {"axis": ctx.attrs["axis"], "add": True}), None


def _scatter(xp, a, index, src, axis, add):
    if src.ndim == 0:
        src = xp.broadcast_to(src, index.shape)
    _check_index(xp, a, index, axis, src)
    out = xp.array(a)  # a new array (of a broadcast view too): inputs are never written
    where = _positions(xp, index, axis)
    values = src[tuple(slice(0, n) for n in index.shape)]
    if add:
        scatter_add(xp, out, where, values)
    else:
        out[where] = values
    return out


def _scatter_grad(ctx, g):
    a, index, src = ctx.inputs
    axis, add = ctx.attrs["axis"], ctx.attrs["add"]
    ga = gs = None
    if ctx.needs(0):
        if add:
            ga = g
        else:  # the written places do not come from ``a``
            ga = apply(Op.SCATTER, (g, index, constant(0.0, like=g)), ctx.attrs)
    if ctx.needs(2):
        gs = apply(Op.GATHER, (g, index), {"axis": axis})
        if gs.shape != src.shape:  # src larger than the index: the rest was unused
            gs = F.pad(gs, [(0, s - n) for s, n in zip(src.shape, gs.shape)])
    return ga, None, gs


def _argsort(xp, a, axis, descending):
    kind = "stable" if xp is np else None  # CuPy's sort is always stable
    if not descending:
        return xp.argsort(a, axis=axis, kind=kind).astype(np.int64)
    # stable and descending, NaN first (as PyTorch): sort the reversed input
    # ascending, then reverse the order
    n = a.shape[axis]
    flipped = xp.argsort(xp.flip(a, axis), axis=axis, kind=kind)
    return xp.ascontiguousarray(n - 1 - xp.flip(flipped, axis)).astype(np.int64)


def _gather_infer(shapes, dtypes, attrs):
    return tuple(shapes[1]), np.dtype(dtypes[0])


def _scatter_infer(shapes, dtypes, attrs):
    return tuple(shapes[0]), np.dtype(dtypes[0])


def _argsort_infer(shapes, dtypes, attrs):
    return tuple(shapes[0]), _INT64


def _nonzero(xp, a):
    if a.ndim == 0:  # as PyTorch: (1, 0) or (0, 0)
        return xp.zeros((int(bool(a)), 0), np.int64)
    return xp.stack(xp.nonzero(a), axis=-1).astype(np.int64)


def _nonzero_infer(shapes, dtypes, attrs):
    # the count depends on the values: -1, as a boolean mask's
    return (-1, len(shapes[0])), _INT64


define(Op.GATHER, _gather, _gather_grad, infer=_gather_infer, nondiff=(1,))
define(Op.SCATTER, _scatter, _scatter_grad, infer=_scatter_infer, nondiff=(1,))
define(Op.ARGSORT, _argsort, None, infer=_argsort_infer)
define(Op.NONZERO, _nonzero, None, infer=_nonzero_infer)
