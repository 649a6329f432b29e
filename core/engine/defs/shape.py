"""Reductions and movement ops: forward through ``xp``, gradient in Tensor ops,
shape rule."""

from __future__ import annotations

import math

import numpy as np

from core.device import scatter_add
from core.engine import functional as F
from core.engine import indexing
from core.engine import shapes as S
from core.engine.ops import Op, define


def inverse(n: int) -> float:
    """1 / n, and NaN for an empty reduction (as a mean of nothing is NaN)."""
    return 1.0 / n if n else math.nan


def _size(shape, axis) -> int:
    if axis is None:
        return math.prod(shape)
    return math.prod(shape[a] for a in axis)


def reduce_sum(xp, a, axis=None, keepdims=False):
    """``a.sum(axis)``; on NumPy without the Python-level wrapper (small arrays)."""
    if xp is np:
        return np.add.reduce(a, axis=axis, keepdims=keepdims)
    return a.sum(axis=axis, keepdims=keepdims)


def reduce_max(xp, a, axis=None, keepdims=False):
    """``a.max(axis, keepdims)``; on NumPy without the Python-level wrapper."""
    if xp is np:
        return np.maximum.reduce(a, axis=axis, keepdims=keepdims)
    return a.max(axis=axis, keepdims=keepdims)


def sum_leading(xp, a, lead: int):
    """Sum over the first ``lead`` axes.

    NumPy reduces a non-last axis slowly when the last axis is short; a matmul
    with a ones vector does the same sum through BLAS.
    """
    if lead == 0:
        return a
    if a.dtype.kind != "f" or not a.flags.c_contiguous or a.size < 4096:
        return reduce_sum(xp, a, 0 if lead == 1 else tuple(range(lead)))
    rows = math.prod(a.shape[:lead])
    ones = xp.ones(rows, dtype=a.dtype)
    return (ones @ a.reshape(rows, -1)).reshape(a.shape[lead:])


def _sum(xp, a, axis, keepdims):
    if axis is not None and not keepdims and axis == tuple(range(len(axis))) and a.ndim > 1:
        if len(axis) < a.ndim:
            return sum_leading(xp, a, len(axis))
    return xp.sum(a, axis=axis, keepdims=keepdims)


def unreduce(g, shape, axis, keepdims):
    """Broadcast a reduced gradient ``g`` back to ``shape``."""
    if not keepdims:
        if axis is None:
            g = g.reshape(*([1] * len(shape)))
        else:
            kept = [1 if i in axis else s for i, s in enumerate(shape)]
            g = g.reshape(*kept)
    return g.expand(*shape)


def _sum_grad(ctx, g):
    a = ctx.inputs[0]
    return (unreduce(g, a.shape, ctx.attrs["axis"], ctx.attrs["keepdims"]),)


def _mean_grad(ctx, g):
    a = ctx.inputs[0]
    n = _size(a.shape, ctx.attrs["axis"])
    return (unreduce(g, a.shape, ctx.attrs["axis"], ctx.attrs["keepdims"]) * inverse(n),)


def _extreme_grad(ctx, g):
    (a,) = ctx.inputs
    axis, keepdims = ctx.attrs["axis"], ctx.attrs["keepdims"]
    out = unreduce(ctx.output, a.shape, axis, keepdims)
    mask = a.eq(out).astype(a.dtype)
    count = mask.sum(axis=axis, keepdims=True)
    return (unreduce(g, a.shape, axis, keepdims) * mask / count,)


def _var_grad(ctx, g):
    (a,) = ctx.inputs
    axis, keepdims = ctx.attrs["axis"], ctx.attrs["keepdims"]
    n = _size(a.shape, axis)
    centred = a - a.mean(axis=axis, keepdims=True)
    scale = 2.0 / max(n - ctx.attrs["correction"], 1)
    return (unreduce(g, a.shape, axis, keepdims) * centred * scale,)


def _sum_to(xp, a, shape):
    lead = a.ndim - len(shape)
    out = sum_leading(xp, a, lead) if lead else a
    if out.shape == shape:  # a bias's gradient: the leading axes were all
        return out
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and out.shape[i] != 1)
    if axes:
        out = out.sum(axis=axes, keepdims=True)
    if out.shape != shape:
        raise ValueError(f"cannot sum shape {a.shape} down to {shape}")
    return out


def _sum_to_grad(ctx, g):
    return (g.expand(*ctx.inputs[0].shape),)


def _var_infer(shapes, dtypes, attrs):
    shape = S.reduce_shape(tuple(shapes[0]), attrs["axis"], attrs["keepdims"])
    return shape, S.floating(dtypes[0])


define(Op.SUM, _sum, _sum_grad, infer=S.reduced)
define(
    Op.MEAN,
    lambda xp, a, axis, keepdims: xp.mean(a, axis=axis, keepdims=keepdims),
    _mean_grad,
    infer=_var_infer,
)
define(
    Op.MAX,
    lambda xp, a, axis, keepdims: xp.max(a, axis=axis, keepdims=keepdims),
    _extreme_grad,
    infer=S.reduced,
)
define(
    Op.MIN,
    lambda xp, a, axis, keepdims: xp.min(a, axis=axis, keepdims=keepdims),
    _extreme_grad,
    infer=S.reduced,
)
define(
    Op.VAR,
    lambda xp, a, axis, keepdims, correction: xp.var(
        a, axis=axis, keepdims=keepdims, ddof=correction
    ),
    _var_grad,
    infer=_var_infer,
)
define(Op.SUM_TO, _sum_to, _sum_to_grad, infer=S.fixed("shape"))


# -- movement ----------------------------------------------------------------


def _reshape_grad(ctx, g):
    return (g.reshape(*ctx.inputs[0].shape),)


def _permute_grad(ctx, g):
    axes = ctx.attrs["axes"]
    inverse = [0] * len(axes)
    for i, a in enumerate(axes):
        inverse[a] = i
    return (g.permute(*inverse),)


def _expand_grad(ctx, g):
    return (g.sum_to(ctx.inputs[0].shape),)


def _getitem(xp, a, *arrays, index):
    return a[indexing.decode(index, arrays)]


def _getitem_infer(shapes, dtypes, attrs):
    # Index arrays of the given shapes (zeros: always in range); a boolean
    # mask's result length depends on its values, so it is -1 here.
    spec = attrs["index"]
    masks = [d.kind == "b" for d in dtypes[1:]]
    dummies = [np.zeros(s, np.intp) for s in shapes[1:]]
    if any(masks):
        return _masked_shape(shapes, spec, masks), np.dtype(dtypes[0])
    probe = np.broadcast_to(np.empty((), dtypes[0]), shapes[0])
    return probe[indexing.decode(spec, dummies)].shape, np.dtype(dtypes[0])


def _masked_shape(shapes, spec, masks):
    probe = np.broadcast_to(np.empty((), np.int8), shapes[0])
    arrays = [np.ones(s, bool) if m else np.zeros(s, np.intp) for s, m in zip(shapes[1:], masks)]
    shape = list(probe[indexing.decode(spec, arrays)].shape)
    first = next(i for i, p in enumerate(spec) if not isinstance(p, int) and p[0] == "index")
    shape[min(first, len(shape) - 1)] = -1
    return tuple(shape)


def _index_add(xp, g, *arrays, shape, index):
    out = xp.zeros(shape, dtype=g.dtype)
    where = indexing.decode(index, arrays)
    if indexing.is_basic(index):
        out[where] = g
    else:
        scatter_add(xp, out, where, g)
    return out


def _getitem_grad(ctx, g):
    x, *arrays = ctx.inputs
    gx = F.index_add_spec(g, x.shape, ctx.attrs["index"], tuple(arrays))
    return (gx, *[None] * len(arrays))  # index arrays take no gradient


def _scatter_add_grad(ctx, g):
    _values, *arrays = ctx.inputs
    return (g[indexing.decode(ctx.attrs["index"], arrays)], *[None] * len(arrays))


def _concat_grad(ctx, g):
    axis = ctx.attrs["axis"]
    grads = []
    start = 0
    for t in ctx.inputs:
        stop = start + t.shape[axis]
        grads.append(g[(slice(None),) * axis + (slice(start, stop),)])
        start = stop
    return tuple(grads)


def _stack_grad(ctx, g):
    axis = ctx.attrs["axis"]
    return tuple(g[(slice(None),) * axis + (i,)] for i in range(len(ctx.inputs)))


def _pad(xp, a, pad, value):
    return xp.pad(a, pad, mode="constant", constant_values=value)


def _pad_grad(ctx, g):
    shape = ctx.inputs[0].shape
    index = tuple(slice(lo, lo + n) for (lo, _hi), n in zip(ctx.attrs["pad"], shape))
    return (g[index],)


def _permute_infer(shapes, dtypes, attrs):
    return tuple(shapes[0][a] for a in attrs["axes"]), np.dtype(dtypes[0])


def _concat_infer(shapes, dtypes, attrs):
    axis = attrs["axis"]
    shape = list(shapes[0])
    shape[axis] = sum(s[axis] for s in shapes)
    return tuple(shape), np.result_type(*dtypes)


def _stack_infer(shapes, dtypes, attrs):
    shape = list(shapes[0])
    shape.insert(attrs["axis"], len(shapes))
    return tuple(shape), np.result_type(*dtypes)


def _pad_infer(shapes, dtypes, attrs):
    shape = tuple(n + lo + hi for n, (lo, hi) in zip(shapes[0], attrs["pad"]))
    return shape, np.dtype(dtypes[0])


define(Op.RESHAPE, lambda xp, a, shape: a.reshape(shape), _reshape_grad, infer=S.fixed("shape"))
define(Op.PERMUTE, lambda xp, a, axes: a.transpose(axes), _permute_grad, infer=_permute_infer)
define(
    Op.EXPAND,
    lambda xp, a, shape: xp.broadcast_to(a, shape),
    _expand_grad,
    infer=S.fixed("shape"),
)
define(Op.GETITEM, _getitem, _getitem_grad, infer=_getitem_infer)
define(
    Op.SCATTER_ADD,
    _index_add,
    _scatter_add_grad,
    infer=S.fixed("shape"),
)
define(
    Op.CONCAT,
    lambda xp, *arrays, axis: xp.concatenate(arrays, axis=axis),
    _concat_grad,
    infer=_concat_infer,
)
define(
    Op.STACK,
    lambda xp, *arrays, axis: xp.stack(arrays, axis=axis),
    _stack_grad,
    infer=_stack_infer,
)
define(Op.PAD, _pad, _pad_grad, infer=_pad_infer)
# the same value, cut from the graph (as aten::detach): no copy, no gradient
define(Op.DETACH, lambda xp, a: a, None, infer=S.same)
