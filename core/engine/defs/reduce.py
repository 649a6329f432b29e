"""More reductions and the scans: prod, any/all, argmax/argmin, cumsum and
cumprod. Forward through ``xp``, gradient in Tensor ops, shape rule.

The gradients of prod and cumprod never divide by the input (a zero in it
would give NaN): they multiply exclusive products, made with cumprod, so they
are exact at zeros and differentiable again.
"""

from __future__ import annotations

import math

import numpy as np

from core.engine import functional as F
from core.engine import shapes as S
from core.engine.defs.shape import unreduce
from core.engine.dispatch import apply, constant
from core.engine.ops import Op, define

_BOOL = np.dtype(bool)
_INT64 = np.dtype(np.int64)


def _ones(like, shape):
    return constant(1.0, like=like).expand(*shape)


def cumprod(t, axis: int, reverse: bool = False):
    return apply(Op.CUMPROD, (t,), {"axis": axis, "reverse": reverse})


def cumsum(t, axis: int, reverse: bool = False):
    return apply(Op.CUMSUM, (t,), {"axis": axis, "reverse": reverse})


def flip(t, axis: int):
    return t[(slice(None),) * axis + (slice(None, None, -1),)]


def _inverse(perm):
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return out


def exclusive_product(a, axes: tuple[int, ...]):
    """For each element of ``a``, the product of the other elements of its
    slice over ``axes`` (as a tensor shaped as ``a``), without a division."""
    kept = [i for i in range(a.ndim) if i not in axes]
    perm = kept + list(axes)
    t = a.permute(*perm)
    lead = t.shape[: len(kept)]
    n = math.prod(a.shape[i] for i in axes)
    flat = t.reshape(*lead, n)
    one = _ones(a, (*lead, 1))
    last = flat.ndim - 1
    left = cumprod(F.cat([one, flat[..., :-1]], axis=-1), last)
    right = cumprod(F.cat([flat[..., 1:], one], axis=-1), last, reverse=True)
    return (left * right).reshape(*t.shape).permute(*_inverse(perm))


def _prod_grad(ctx, g):
    (a,) = ctx.inputs
    axis, keepdims = ctx.attrs["axis"], ctx.attrs["keepdims"]
    axes = tuple(range(a.ndim)) if axis is None else axis
    spread = unreduce(g, a.shape, axis, keepdims)
    if not axes or a.numel() == 0:
        return (spread,)
    return (spread * exclusive_product(a, axes),)


def _bool_reduced(shapes, dtypes, attrs):
    return S.reduce_shape(tuple(shapes[0]), attrs["axis"], attrs["keepdims"]), _BOOL


def _arg_reduced(shapes, dtypes, attrs):
    axis = attrs["axis"]
    shape = S.reduce_shape(tuple(shapes[0]), None if axis is None else (axis,), attrs["keepdims"])
    return shape, _INT64


def _prod_infer(shapes, dtypes, attrs):
    shape = S.reduce_shape(tuple(shapes[0]), attrs["axis"], attrs["keepdims"])
    return shape, np.prod(np.ones(1, dtypes[0])).dtype


define(
    Op.PROD,
    lambda xp, a, axis, keepdims: xp.asarray(xp.prod(a, axis=axis, keepdims=keepdims)),
    _prod_grad,
    infer=_prod_infer,
)
define(
    Op.ANY,
    lambda xp, a, axis, keepdims: xp.asarray(xp.any(a, axis=axis, keepdims=keepdims)),
    None,
    infer=_bool_reduced,
)
define(
    Op.ALL,
    lambda xp, a, axis, keepdims: xp.asarray(xp.all(a, axis=axis, keepdims=keepdims)),
    None,
    infer=_bool_reduced,
)


def _argmax(xp, a, axis, keepdims):
    return xp.asarray(xp.argmax(a, axis=axis, keepdims=keepdims)).astype(np.int64)


def _argmin(xp, a, axis, keepdims):
    return xp.asarray(xp.argmin(a, axis=axis, keepdims=keepdims)).astype(np.int64)


define(Op.ARGMAX, _argmax, None, infer=_arg_reduced)
define(Op.ARGMIN, _argmin, None, infer=_arg_reduced)

# -- scans ------------------------------------------------------------------------


def _scan(name: str):
    def forward(xp, a, axis, reverse):
        fn = getattr(xp, name)
        if not reverse:
            return fn(a, axis=axis)
        return xp.ascontiguousarray(xp.flip(fn(xp.flip(a, axis), axis=axis), axis))

    return forward


def _scan_infer(shapes, dtypes, attrs):
    return tuple(shapes[0]), np.cumsum(np.ones(1, dtypes[0])).dtype


def _cumsum_grad(ctx, g):
    a = ctx.attrs
    return (cumsum(g, a["axis"], not a["reverse"]),)


def _cumprod_vjp(a, g, axis: int):
    """d cumprod(a) along ``axis``, applied to ``g``: entry i sums, over j >= i,
    g_j times the product of a_k for k <= j, k != i (no division)."""
    n = a.shape[axis]
    if n == 0:
        return g
    at, gt = a.transpose(axis, -1), g.transpose(axis, -1)
    last = at.ndim - 1
    before = cumprod(F.cat([_ones(a, (*at.shape[:-1], 1)), at[..., :-1]], axis=-1), last)
    later = constant(np.triu(np.ones((n, n), bool), 1), device=a.device)  # [i, k]: k > i
    upper = constant(np.triu(np.ones((n, n), bool)), device=a.device)  # [i, j]: j >= i
    between = cumprod(F.where(later, at.unsqueeze(-2), 1.0), last + 1)  # prod_{i<k<=j} a_k
    summed = F.where(upper, between * gt.unsqueeze(-2), 0.0).sum(axis=-1)
    return (before * summed).transpose(axis, -1)


def _cumprod_grad(ctx, g):
    (a,) = ctx.inputs
    axis = ctx.attrs["axis"]
    if ctx.attrs["reverse"]:
        return (flip(_cumprod_vjp(flip(a, axis), flip(g, axis), axis), axis),)
    return (_cumprod_vjp(a, g, axis),)


define(Op.CUMSUM, _scan("cumsum"), _cumsum_grad, infer=_scan_infer)
define(Op.CUMPROD, _scan("cumprod"), _cumprod_grad, infer=_scan_infer)
