"""More elementwise ops (PyTorch's math functions): forward through ``xp``,
gradient in Tensor ops, shape rule and expression tree, side by side.

Rounding (floor, ceil, round, trunc) is piecewise constant: those ops have no
gradient rule, so their outputs never require grad (PyTorch's gradient there
is zero; a graph that uses them gets the same numbers).
"""

from __future__ import annotations

import math

import numpy as np

from core.engine import expr as E
from core.engine import functional as F
from core.engine import shapes as S
from core.engine.dispatch import apply
from core.engine.ops import Op, define

x, y = E.In(0), E.In(1)
_LN2 = math.log(2.0)
_LN10 = math.log(10.0)


def _expr(tree: E.Expr):
    return lambda attrs: tree


def _log1p_grad(ctx, g):
    return (g / (ctx.inputs[0] + 1.0),)


def _expm1_grad(ctx, g):
    return (g * (ctx.output + 1.0),)


def _log2_grad(ctx, g):
    return (g / (ctx.inputs[0] * _LN2),)


def _log10_grad(ctx, g):
    return (g / (ctx.inputs[0] * _LN10),)


def _exp2_grad(ctx, g):
    return (g * ctx.output * _LN2,)


def _sin_grad(ctx, g):
    return (g * apply(Op.COS, ctx.inputs),)


def _cos_grad(ctx, g):
    return (-g * apply(Op.SIN, ctx.inputs),)


def _clone_grad(ctx, g):
    return (g,)


def _copy(xp, a, b):
    # ``a.copy_(b)``: b, broadcast to a's shape, in a's dtype (a's values unused)
    return xp.array(xp.broadcast_to(b.astype(a.dtype, copy=False), a.shape))


def _copy_grad(ctx, g):
    source = ctx.inputs[1]
    return None, (g.astype(source.dtype) if ctx.needs(1) else None)


def _copy_infer(shapes, dtypes, attrs):
    return tuple(shapes[0]), np.dtype(dtypes[0])


# -- softplus: log(1 + exp(beta x)) / beta, linear above the threshold -------------


def _softplus(xp, a, beta, threshold):
    dt = a.dtype.type
    scaled = a * dt(beta)
    with np.errstate(over="ignore"):  # exp overflows where the linear branch is taken
        return xp.where(scaled > dt(threshold), a, xp.log1p(xp.exp(scaled)) / dt(beta))


def _softplus_expr(attrs):
    beta, threshold = attrs["beta"], attrs["threshold"]
    scaled = x * beta
    return E.where(E.gt(scaled, threshold), x, E.log1p(E.exp(scaled)) / beta)


def _softplus_grad(ctx, g):
    (a,) = ctx.inputs
    scaled = a * ctx.attrs["beta"]
    return (F.where(scaled > ctx.attrs["threshold"], g, g * scaled.sigmoid()),)


# -- nan_to_num -------------------------------------------------------------------


def _nan_to_num(xp, a, nan, posinf, neginf):
    return xp.nan_to_num(a, copy=True, nan=nan, posinf=posinf, neginf=neginf)


def _nan_to_num_expr(attrs):
    inf = math.inf
    finite = E.where(E.eq(x, inf), attrs["posinf"], E.where(E.eq(x, -inf), attrs["neginf"], x))
    return E.where(E.ne(x, x), attrs["nan"], finite)


def _nan_to_num_grad(ctx, g):
    (a,) = ctx.inputs
    return (F.where(a.abs() < math.inf, g, 0.0),)


# -- fmod and remainder --------------------------------------------------------------


def _fmod_grad(ctx, g):
    a, b = ctx.inputs
    gb = -g * apply(Op.TRUNC, (a / b,)) if ctx.needs(1) else None
    return g, gb


def _remainder_grad(ctx, g):
    a, b = ctx.inputs
    gb = -g * apply(Op.FLOOR, (a / b,)) if ctx.needs(1) else None
    return g, gb


_UF, _U = S.same_float, S.same
define(Op.LOG1P, lambda xp, a: xp.log1p(a), _log1p_grad, infer=_UF, expr=_expr(E.log1p(x)))
define(Op.EXPM1, lambda xp, a: xp.expm1(a), _expm1_grad, infer=_UF, expr=_expr(E.expm1(x)))
define(Op.LOG2, lambda xp, a: xp.log2(a), _log2_grad, infer=_UF, expr=_expr(E.log2(x)))
define(Op.LOG10, lambda xp, a: xp.log10(a), _log10_grad, infer=_UF, expr=_expr(E.log10(x)))
define(Op.EXP2, lambda xp, a: xp.exp2(a), _exp2_grad, infer=_UF, expr=_expr(E.exp2(x)))
define(Op.SIN, lambda xp, a: xp.sin(a), _sin_grad, infer=_UF, expr=_expr(E.sin(x)))
define(Op.COS, lambda xp, a: xp.cos(a), _cos_grad, infer=_UF, expr=_expr(E.cos(x)))
define(Op.SOFTPLUS, _softplus, _softplus_grad, infer=_UF, expr=_softplus_expr)
define(Op.NAN_TO_NUM, _nan_to_num, _nan_to_num_grad, infer=_U, expr=_nan_to_num_expr)
define(Op.CLONE, lambda xp, a: a.copy(), _clone_grad, infer=_U, expr=_expr(x))
define(Op.COPY, _copy, _copy_grad, infer=_copy_infer, expr=_expr(y))
define(Op.FLOOR, lambda xp, a: xp.floor(a), None, infer=_UF, expr=_expr(E.floor(x)))
define(Op.CEIL, lambda xp, a: xp.ceil(a), None, infer=_UF, expr=_expr(E.ceil(x)))
define(Op.ROUND, lambda xp, a: xp.rint(a), None, infer=_UF, expr=_expr(E.rint(x)))
define(Op.TRUNC, lambda xp, a: xp.trunc(a), None, infer=_UF, expr=_expr(E.trunc(x)))
define(
    Op.FMOD,
    lambda xp, a, b: xp.fmod(a, b),
    _fmod_grad,
    infer=S.broadcast,
    expr=_expr(E.fmod(x, y)),
)
define(
    Op.REMAINDER,
    lambda xp, a, b: xp.remainder(a, b),
    _remainder_grad,
    infer=S.broadcast,
    expr=_expr(E.remainder(x, y)),
)
