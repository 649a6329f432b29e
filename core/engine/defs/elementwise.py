"""Elementwise ops: forward through ``xp``, gradient in Tensor ops, shape rule and
the expression tree of one element (``core.engine.expr``), side by side.

The expression of an op computes what its forward computes, special values
included (a test holds every one to its forward on NaN, Inf and signed zeros).
"""

from __future__ import annotations

import math

import numpy as np

from core.engine import expr as E
from core.engine import functional as F
from core.engine import shapes as S
from core.engine.ops import Op, define

_GELU_K = math.sqrt(2.0 / math.pi)
_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
x, y, z = E.In(0), E.In(1), E.In(2)


def _expr(tree: E.Expr):
    """An expression that does not depend on the op's attributes."""
    return lambda attrs: tree


def _zeros_like(t):
    """Exact zeros shaped as ``t``: a constant, broadcast (no array made by hand)."""
    return F.constant(0.0, like=t).expand(*t.shape)


# -- binary ---------------------------------------------------------------------


def _add_grad(ctx, g):
    return g, g


def _add_scaled(xp, a, b, alpha):
    scaled = b * b.dtype.type(alpha)
    if scaled.shape != a.shape or scaled.dtype is not a.dtype:
        return a + scaled
    scaled += a  # one temporary for a + alpha * b (an optimizer's update)
    return scaled


def _add_scaled_grad(ctx, g):
    return g, (g * ctx.attrs["alpha"] if ctx.needs(1) else None)


def _sub_grad(ctx, g):
    return g, (-g if ctx.needs(1) else None)


def _mul_grad(ctx, g):
    a, b = ctx.inputs
    return (g * b if ctx.needs(0) else None), (g * a if ctx.needs(1) else None)


def _div_grad(ctx, g):
    a, b = ctx.inputs
    ga = g / b
    return ga, (-ga * a / b if ctx.needs(1) else None)


def _pow_grad(ctx, g):
    # At a base of 0 the true derivatives are 0 where PyTorch's are (exponent
    # 0 for the base; exponent >= 0 for the exponent), not 0 * inf = NaN.
    a, b = ctx.inputs
    ga = gb = None
    if ctx.needs(0):
        ga = F.where(b.eq(0.0), 0.0, g * b * a ** (b - 1.0))
    if ctx.needs(1):
        gb = F.where(a.eq(0.0) * (b >= 0.0), 0.0, g * ctx.output * F.log(a))
    return ga, gb


def _maximum_grad(ctx, g):
    a, b = ctx.inputs
    mask = a >= b
    ga = F.where(mask, g, 0.0) if ctx.needs(0) else None
    return ga, (F.where(mask, 0.0, g) if ctx.needs(1) else None)


def _minimum_grad(ctx, g):
    a, b = ctx.inputs
    mask = a <= b
    ga = F.where(mask, g, 0.0) if ctx.needs(0) else None
    return ga, (F.where(mask, 0.0, g) if ctx.needs(1) else None)


_B = S.broadcast
define(Op.ADD, lambda xp, a, b: a + b, _add_grad, infer=_B, expr=_expr(x + y))
define(
    Op.ADD_SCALED,
    _add_scaled,
    _add_scaled_grad,
    infer=_B,
    expr=lambda a: x + y * a["alpha"],
)
define(Op.SUB, lambda xp, a, b: a - b, _sub_grad, infer=_B, expr=_expr(x - y))
define(Op.MUL, lambda xp, a, b: a * b, _mul_grad, infer=_B, expr=_expr(x * y))
define(Op.DIV, lambda xp, a, b: a / b, _div_grad, infer=S.broadcast_float, expr=_expr(x / y))
define(
    Op.POW,
    lambda xp, a, b: xp.power(a, b),
    _pow_grad,
    infer=_B,
    expr=_expr(E.pow_(x, y)),
)
define(
    Op.MAXIMUM,
    lambda xp, a, b: xp.maximum(a, b),
    _maximum_grad,
    infer=_B,
    expr=_expr(E.maximum(x, y)),
)
define(
    Op.MINIMUM,
    lambda xp, a, b: xp.minimum(a, b),
    _minimum_grad,
    infer=_B,
    expr=_expr(E.minimum(x, y)),
)
# a leaf's .grad plus a new gradient: one op, so the graph shows where .grad grows
define(Op.ACCUMULATE_GRAD, lambda xp, a, b: a + b, _add_grad, infer=_B, expr=_expr(x + y))


def _lerp_grad(ctx, g):
    start, end, weight = ctx.inputs
    gs = g * (1.0 - weight) if ctx.needs(0) else None
    ge = g * weight if ctx.needs(1) else None
    return gs, ge, (g * (end - start) if ctx.needs(2) else None)


define(
    Op.LERP,
    lambda xp, a, b, w: a + w * (b - a),
    _lerp_grad,
    infer=_B,
    expr=_expr(x + z * (y - x)),
)

# -- unary ------------------------------------------------------------------------


def _pow_scalar(xp, a, exponent):
    # NumPy's general float pow is ~17x slower than multiplies for small integers.
    if exponent == 2.0:
        return a * a
    if exponent == 3.0:
        return a * a * a
    if exponent == 1.0:
        return a.copy()
    if exponent == 0.5:
        return xp.sqrt(a)
    if exponent == -1.0:
        return 1.0 / a
    if exponent == 4.0:
        sq = a * a
        return sq * sq
    return a ** a.dtype.type(exponent)


def _pow_scalar_expr(attrs):
    e = attrs["exponent"]
    special = {2.0: x * x, 3.0: x * x * x, 1.0: x, 0.5: E.sqrt(x), -1.0: 1.0 / x}
    if e == 4.0:
        return (x * x) * (x * x)
    return special.get(e, E.pow_(x, e))


def _pow_scalar_grad(ctx, g):
    (a,) = ctx.inputs
    e = ctx.attrs["exponent"]
    if e == 0.0:  # x**0 is 1 everywhere, 0 included: its derivative is 0
        return (_zeros_like(a),)
    if e == 1.0:
        return (g,)
    if e == 2.0:
        return (g * a * 2.0,)
    return (g * (a ** (e - 1.0)) * e,)


def _neg_grad(ctx, g):
    return (-g,)


def _exp_grad(ctx, g):
    return (g * ctx.output,)


def _log_grad(ctx, g):
    return (g / ctx.inputs[0],)


def _sqrt_grad(ctx, g):
    return (g * 0.5 / ctx.output,)


def _erf(xp, a):
    return E.special(xp).erf(a)  # the function compiled kernels call: the same bits


def _erf_grad(ctx, g):
    (a,) = ctx.inputs
    return (g * (-(a * a)).exp() * (2.0 / math.sqrt(math.pi)),)


def _abs_grad(ctx, g):
    return (g * ctx.inputs[0].sign(),)


def _tanh_grad(ctx, g):
    return (F.tanh_backward(g, ctx.output),)


def _sigmoid_grad(ctx, g):
    return (F.sigmoid_backward(g, ctx.output),)


def _relu_grad(ctx, g):
    return (F.relu_backward(g, ctx.output),)


# The backward of tanh, sigmoid and relu as one op each (as PyTorch's
# tanh_backward): one node instead of three in a backward graph, and one
# dispatch instead of three per layer.


def _tanh_backward(xp, g, y):
    return g * (y.dtype.type(1) - y * y)


def _tanh_backward_grad(ctx, gz):
    g, y = ctx.inputs
    gg = gz * (1.0 - y * y) if ctx.needs(0) else None
    return gg, (gz * g * y * -2.0 if ctx.needs(1) else None)


def _sigmoid_backward(xp, g, y):
    return g * y * (y.dtype.type(1) - y)


def _sigmoid_backward_grad(ctx, gz):
    g, y = ctx.inputs
    gg = gz * y * (1.0 - y) if ctx.needs(0) else None
    return gg, (gz * g * (1.0 - y * 2.0) if ctx.needs(1) else None)


def _relu_backward_grad(ctx, gz):
    # linear in g; the mask is piecewise constant in y: y's gradient is zero
    y = ctx.inputs[1]
    return F.relu_backward(gz, y), (_zeros_like(y) if ctx.needs(1) else None)


def _leaky_relu_grad(ctx, g):
    (a,) = ctx.inputs
    return (F.where(a > 0.0, g, g * ctx.attrs["slope"]),)


def _gelu(xp, a, approximate):
    dt = a.dtype.type
    if approximate == "tanh":
        inner = dt(_GELU_K) * (a + dt(0.044715) * a * a * a)
        return dt(0.5) * a * (dt(1.0) + xp.tanh(inner))
    return dt(0.5) * a * (dt(1.0) + _erf(xp, a * dt(_SQRT_HALF)))


def _gelu_expr(attrs):
    if attrs["approximate"] == "tanh":
        inner = _GELU_K * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1.0 + E.tanh(inner))
    return 0.5 * x * (1.0 + E.erf(x * _SQRT_HALF))


def _gelu_grad(ctx, g):
    (a,) = ctx.inputs
    if ctx.attrs["approximate"] == "tanh":
        a2 = a * a
        t = ((a + a2 * a * 0.044715) * _GELU_K).tanh()
        dinner = (a2 * (3.0 * 0.044715) + 1.0) * _GELU_K
        return (g * ((t + 1.0) * 0.5 + a * (1.0 - t * t) * dinner * 0.5),)
    cdf = (F.erf(a * _SQRT_HALF) + 1.0) * 0.5
    pdf = (a * a * -0.5).exp() * _INV_SQRT_2PI
    return (g * (cdf + a * pdf),)


def _clip(xp, a, lo, hi):
    if lo is None:
        return xp.minimum(a, a.dtype.type(hi))
    if hi is None:
        return xp.maximum(a, a.dtype.type(lo))
    return xp.minimum(xp.maximum(a, a.dtype.type(lo)), a.dtype.type(hi))


def _clip_expr(attrs):
    lo, hi = attrs["lo"], attrs["hi"]
    if lo is None:
        return E.minimum(x, hi)
    if hi is None:
        return E.maximum(x, lo)
    return E.minimum(E.maximum(x, lo), hi)


def _clip_grad(ctx, g):
    (a,) = ctx.inputs
    lo, hi = ctx.attrs["lo"], ctx.attrs["hi"]
    if lo is not None:
        g = g * (a >= lo)
    if hi is not None:
        g = g * (a <= hi)
    return (g,)


def _where_grad(ctx, g):
    cond = ctx.inputs[0]
    ga = F.where(cond, g, 0.0) if ctx.needs(1) else None
    return None, ga, (F.where(cond, 0.0, g) if ctx.needs(2) else None)


def _where_infer(shapes, dtypes, attrs):
    return np.broadcast_shapes(*shapes), np.result_type(*dtypes[1:])


def _cast_grad(ctx, g):
    # Integer and bool values are piecewise constant: nothing flows through them.
    source = ctx.inputs[0].dtype
    if source.kind not in "fc" or np.dtype(ctx.attrs["dtype"]).kind not in "fc":
        return (None,)
    return (g.astype(source),)


def _cast_expr(attrs):
    # the expression of a cast is its input; the printed kernel's dtype converts
    return x


def _cast_infer(shapes, dtypes, attrs):
    return tuple(shapes[0]), np.dtype(attrs["dtype"])


def _sigmoid(xp, a):
    half = a.dtype.type(0.5)
    return xp.tanh(a * half) * half + half


_U, _UF = S.same, S.same_float
define(Op.NEG, lambda xp, a: -a, _neg_grad, infer=_U, expr=_expr(-x))
define(Op.POW_SCALAR, _pow_scalar, _pow_scalar_grad, infer=_UF, expr=_pow_scalar_expr)
define(Op.EXP, lambda xp, a: xp.exp(a), _exp_grad, infer=_UF, expr=_expr(E.exp(x)))
define(Op.LOG, lambda xp, a: xp.log(a), _log_grad, infer=_UF, expr=_expr(E.log(x)))
define(Op.SQRT, lambda xp, a: xp.sqrt(a), _sqrt_grad, infer=_UF, expr=_expr(E.sqrt(x)))
define(Op.ERF, _erf, _erf_grad, infer=_UF, expr=_expr(E.erf(x)))
define(Op.ABS, lambda xp, a: xp.abs(a), _abs_grad, infer=_U, expr=_expr(E.abs_(x)))
define(Op.SIGN, lambda xp, a: xp.sign(a), None, infer=_U, expr=_expr(E.sign(x)))
define(Op.TANH, lambda xp, a: xp.tanh(a), _tanh_grad, infer=_UF, expr=_expr(E.tanh(x)))
define(
    Op.SIGMOID,
    _sigmoid,
    _sigmoid_grad,
    infer=_UF,
    expr=_expr(E.tanh(x * 0.5) * 0.5 + 0.5),
)
define(
    Op.RELU,
    lambda xp, a: xp.maximum(a, a.dtype.type(0)),
    _relu_grad,
    infer=_U,
    expr=_expr(E.maximum(x, 0.0)),
)
define(
    Op.TANH_BACKWARD,
    _tanh_backward,
    _tanh_backward_grad,
    infer=_B,
    expr=_expr(x * (1.0 - y * y)),
)
define(
    Op.SIGMOID_BACKWARD,
    _sigmoid_backward,
    _sigmoid_backward_grad,
    infer=_B,
    expr=_expr(x * y * (1.0 - y)),
)
define(
    Op.RELU_BACKWARD,
    lambda xp, g, y: g * (y > 0),
    _relu_backward_grad,
    infer=_B,
    expr=_expr(x * E.number(E.gt(y, 0.0))),
)
define(
    Op.LEAKY_RELU,
    lambda xp, a, slope: xp.where(a > 0, a, a * a.dtype.type(slope)),
    _leaky_relu_grad,
    infer=_U,
    expr=lambda attrs: E.where(E.gt(x, 0.0), x, x * attrs["slope"]),
)
define(Op.GELU, _gelu, _gelu_grad, infer=_UF, expr=_gelu_expr)
define(Op.CLIP, _clip, _clip_grad, infer=_U, expr=_clip_expr)
define(
    Op.WHERE,
    lambda xp, c, a, b: xp.where(c, a, b),
    _where_grad,
    infer=_where_infer,
    expr=_expr(E.where(x, y, z)),
    nondiff=(0,),
)
define(
    Op.CAST,
    lambda xp, a, dtype: a.astype(dtype),
    _cast_grad,
    infer=_cast_infer,
    expr=_cast_expr,
)
_C = S.compare
define(Op.GT, lambda xp, a, b: a > b, None, infer=_C, expr=_expr(E.gt(x, y)))
define(Op.GE, lambda xp, a, b: a >= b, None, infer=_C, expr=_expr(E.ge(x, y)))
define(Op.LT, lambda xp, a, b: a < b, None, infer=_C, expr=_expr(E.lt(x, y)))
define(Op.LE, lambda xp, a, b: a <= b, None, infer=_C, expr=_expr(E.le(x, y)))
define(Op.EQ, lambda xp, a, b: a == b, None, infer=_C, expr=_expr(E.eq(x, y)))
define(Op.NE, lambda xp, a, b: a != b, None, infer=_C, expr=_expr(E.ne(x, y)))
