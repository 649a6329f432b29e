"""Elementwise ops: forward through ``xp``, gradient in Tensor ops, fusion template.

Templates are expressions over the inputs ``{0}``, ``{1}``, ... and attributes
``{exponent}``...; the compiler turns them into NumPy or CUDA code.
"""

from __future__ import annotations

import math

import numpy as np

from core.device import xp_for
from core.engine import functional as F
from core.engine.ops import Op, define

_GELU_K = math.sqrt(2.0 / math.pi)


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
    a, b = ctx.inputs
    ga = g * b * a ** (b - 1.0) if ctx.needs(0) else None
    return ga, (g * ctx.output * F.log(a) if ctx.needs(1) else None)


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


define(Op.ADD, lambda xp, a, b: a + b, _add_grad, template="({0} + {1})")
define(Op.ADD_SCALED, _add_scaled, _add_scaled_grad, template="({0} + {1} * {alpha})")
define(Op.SUB, lambda xp, a, b: a - b, _sub_grad, template="({0} - {1})")
define(Op.MUL, lambda xp, a, b: a * b, _mul_grad, template="({0} * {1})")
define(Op.DIV, lambda xp, a, b: a / b, _div_grad, template="({0} / {1})")
define(Op.POW, lambda xp, a, b: xp.power(a, b), _pow_grad, template="pow({0}, {1})")
define(Op.MAXIMUM, lambda xp, a, b: xp.maximum(a, b), _maximum_grad, template="max({0}, {1})")
define(Op.MINIMUM, lambda xp, a, b: xp.minimum(a, b), _minimum_grad, template="min({0}, {1})")


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


def _pow_scalar_grad(ctx, g):
    (a,) = ctx.inputs
    e = ctx.attrs["exponent"]
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
    # linear in g; the mask is piecewise constant in y, so its derivative is zero
    y = ctx.inputs[1]
    gy = F.constant(xp_for(y.device).zeros_like(y.data), y.device) if ctx.needs(1) else None
    return F.relu_backward(gz, y), gy


def _leaky_relu_grad(ctx, g):
    (a,) = ctx.inputs
    return (F.where(a > 0.0, g, g * ctx.attrs["slope"]),)


def _gelu(xp, a):
    dt = a.dtype.type
    inner = dt(_GELU_K) * (a + dt(0.044715) * a * a * a)
    return dt(0.5) * a * (dt(1.0) + xp.tanh(inner))


def _gelu_grad(ctx, g):
    (a,) = ctx.inputs
    a2 = a * a
    t = ((a + a2 * a * 0.044715) * _GELU_K).tanh()
    dinner = (a2 * (3.0 * 0.044715) + 1.0) * _GELU_K
    return (g * ((t + 1.0) * 0.5 + a * (1.0 - t * t) * dinner * 0.5),)


def _clip(xp, a, lo, hi):
    if lo is None:
        return xp.minimum(a, a.dtype.type(hi))
    if hi is None:
        return xp.maximum(a, a.dtype.type(lo))
    return xp.clip(a, a.dtype.type(lo), a.dtype.type(hi))


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


def _cast_grad(ctx, g):
    # Integer and bool values are piecewise constant: nothing flows through them.
    source = ctx.inputs[0].dtype
    if source.kind not in "fc" or np.dtype(ctx.attrs["dtype"]).kind not in "fc":
        return (None,)
    return (g.astype(source),)


def _sigmoid(xp, a):
    half = a.dtype.type(0.5)
    return xp.tanh(a * half) * half + half


define(Op.NEG, lambda xp, a: -a, _neg_grad, template="(-{0})")
define(Op.POW_SCALAR, _pow_scalar, _pow_scalar_grad, template="pow({0}, {exponent})")
define(Op.EXP, lambda xp, a: xp.exp(a), _exp_grad, template="exp({0})")
define(Op.LOG, lambda xp, a: xp.log(a), _log_grad, template="log({0})")
define(Op.SQRT, lambda xp, a: xp.sqrt(a), _sqrt_grad, template="sqrt({0})")
define(Op.ABS, lambda xp, a: xp.abs(a), _abs_grad, template="abs({0})")
define(Op.SIGN, lambda xp, a: xp.sign(a), None, template="sign({0})")
define(Op.TANH, lambda xp, a: xp.tanh(a), _tanh_grad, template="tanh({0})")
define(Op.SIGMOID, _sigmoid, _sigmoid_grad, template="(tanh({0} * 0.5) * 0.5 + 0.5)")
define(Op.RELU, lambda xp, a: xp.maximum(a, 0), _relu_grad, template="max({0}, 0)")
define(Op.TANH_BACKWARD, _tanh_backward, _tanh_backward_grad, template="({0} * (1 - {1} * {1}))")
define(
    Op.SIGMOID_BACKWARD,
    _sigmoid_backward,
    _sigmoid_backward_grad,
    template="({0} * {1} * (1 - {1}))",
)
define(
    Op.RELU_BACKWARD,
    lambda xp, g, y: g * (y > 0),
    _relu_backward_grad,
    template="({1} > 0 ? {0} : 0)",
)
define(
    Op.LEAKY_RELU,
    lambda xp, a, slope: xp.where(a > 0, a, a * a.dtype.type(slope)),
    _leaky_relu_grad,
    template="({0} > 0 ? {0} : {0} * {slope})",
)
define(Op.GELU, _gelu, _gelu_grad, template="gelu({0})")
define(Op.CLIP, _clip, _clip_grad, template="clip({0}, {lo}, {hi})")
define(
    Op.WHERE,
    lambda xp, c, a, b: xp.where(c, a, b),
    _where_grad,
    template="({0} ? {1} : {2})",
    nondiff=(0,),
)
define(Op.CAST, lambda xp, a, dtype: a.astype(dtype), _cast_grad, template="({dtype})({0})")
define(Op.GT, lambda xp, a, b: a > b, None, template="({0} > {1})")
define(Op.GE, lambda xp, a, b: a >= b, None, template="({0} >= {1})")
define(Op.LT, lambda xp, a, b: a < b, None, template="({0} < {1})")
define(Op.LE, lambda xp, a, b: a <= b, None, template="({0} <= {1})")
define(Op.EQ, lambda xp, a, b: a == b, None, template="({0} == {1})")
