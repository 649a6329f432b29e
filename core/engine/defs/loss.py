"""Loss ops: fused cross-entropy (with ignore_index), MSE and BCE with logits,
and their backward ops. Forward through ``xp``, gradient in Tensor ops, shape
rule. What a forward computes that its gradient reuses (the softmax, the
difference) is a side output the rule reads with ``ctx.out(1)``.
"""

from __future__ import annotations

import math

import numpy as np

from core.engine import functional as F
from core.engine import shapes as S
from core.engine.defs.shape import inverse, reduce_max, reduce_sum
from core.engine.ops import Op, define


def _check_targets(xp, logits, target, ignore_index):
    if logits.ndim != 2:
        raise ValueError(f"logits must be (batch, classes), got shape {logits.shape}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"targets must be integer class indices, got dtype {target.dtype}")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"targets of shape {target.shape} do not match logits {logits.shape}")
    if not target.size:
        return None
    # one comparison: as unsigned, a negative index is larger than any class
    unsigned = target.view(target.dtype.str.replace("i", "u"))
    in_range = not bool(reduce_max(xp, unsigned) >= logits.shape[1])
    if in_range and not 0 <= ignore_index < logits.shape[1]:
        return None
    valid = target != ignore_index  # rows that count (PyTorch's ignore_index)
    outside = (target < 0) | (target >= logits.shape[1])
    if bool((outside & valid).any()):
        raise IndexError(f"a target is outside 0..{logits.shape[1] - 1}")
    return valid


def _cross_entropy(xp, logits, target, ignore_index=-100):
    valid = _check_targets(xp, logits, target, ignore_index)
    rows = target if valid is None else xp.where(valid, target, 0)
    shifted = logits - reduce_max(xp, logits, 1, True)
    e = xp.exp(shifted)
    total = reduce_sum(xp, e, 1, True)
    lse = xp.log(total[:, 0])
    lse -= shifted[xp.arange(target.shape[0]), rows]
    if valid is None:
        loss = xp.asarray(reduce_sum(xp, lse) / lse.dtype.type(lse.size))  # NaN for no rows
    else:
        count = lse.dtype.type(int(valid.sum()))
        loss = xp.asarray(reduce_sum(xp, xp.where(valid, lse, 0)) / count)
    e /= total
    return loss, e  # the softmax: a side output the backward reads


def _ignored(ctx):
    return {"ignore_index": ctx.attrs["ignore_index"]} if ctx.attrs else {}


def _cross_entropy_grad(ctx, g, g_probs):
    logits, target = ctx.inputs
    probs = ctx.out(1)
    gl = None if g is None else F.cross_entropy_backward(probs, target, g, **_ignored(ctx))
    if g_probs is not None:  # the softmax used by a graph of the backward
        through = probs * (g_probs - (g_probs * probs).sum(axis=1, keepdims=True))
        gl = through if gl is None else gl + through
    return gl, None


def _cross_entropy_backward(xp, probs, target, g, ignore_index=-100):
    # (probs - onehot(target)) * g / n in one op, as PyTorch's nll_loss_backward;
    # rows whose target is ignore_index get zeros and do not count in n
    valid = target != ignore_index
    n = int(valid.sum())
    scale = g * g.dtype.type(inverse(n))
    out = probs * scale
    if n == probs.shape[0]:
        out[xp.arange(n), target] -= scale
        return out
    rows = xp.arange(probs.shape[0])[valid]
    out[rows, target[valid]] -= scale
    out[~valid] = 0
    return out


def _cross_entropy_backward_grad(ctx, gz):
    probs, target, g = ctx.inputs
    ignore = ctx.attrs.get("ignore_index", -100)
    valid = target.ne(ignore)
    count = valid.astype(probs.dtype).sum()
    keep = valid.astype(probs.dtype).unsqueeze(1)
    g_probs = gz * keep * (g / count) if ctx.needs(0) else None
    g_g = None
    if ctx.needs(2):
        rows = F.where(valid, target, 0)
        onehot = F.one_hot(rows, probs.shape[1], probs.dtype)
        g_g = ((probs - onehot) * gz * keep).sum() / count
    return g_probs, None, g_g


def _one_hot(xp, target, classes, dtype):
    if target.dtype.kind not in "iu":
        raise TypeError(f"one_hot needs integer class indices, got dtype {target.dtype}")
    out = xp.zeros((*target.shape, classes), dtype=dtype)
    flat = out.reshape(-1, classes)
    flat[xp.arange(flat.shape[0]), target.reshape(-1)] = 1
    return out


def _one_hot_infer(shapes, dtypes, attrs):
    return (*shapes[0], attrs["classes"]), np.dtype(attrs["dtype"])


def _mse(xp, a, b):
    d = a - b
    squares = d * d
    loss = xp.asarray(reduce_sum(xp, squares) / d.dtype.type(d.size))  # NaN when empty
    return loss, d  # a - b, in the broadcast shape: a side output the backward reads


def _mse_grad(ctx, g, g_diff):
    d = ctx.out(1)
    gd = None if g is None else F.mse_loss_backward(d, g)
    if g_diff is not None:
        gd = g_diff if gd is None else gd + g_diff
    if gd is None:
        return None, None
    return gd, (-gd if ctx.needs(1) else None)


def _mse_backward(xp, diff, g):
    # diff * g * 2 / n in one op, as PyTorch's mse_loss_backward
    return diff * (g * g.dtype.type(2.0 * inverse(diff.size)))


def _mse_backward_grad(ctx, gz):
    diff, g = ctx.inputs
    scale = 2.0 * inverse(diff.numel())
    g_diff = gz * (g * scale) if ctx.needs(0) else None
    g_g = (gz * diff).sum() * scale if ctx.needs(1) else None
    return g_diff, g_g


def _bce_logits(xp, x, y):
    loss = xp.maximum(x, 0) - x * y + xp.log1p(xp.exp(-xp.abs(x)))
    return xp.asarray(loss.mean())


def _bce_logits_grad(ctx, g):
    x, y = ctx.inputs
    shape = np.broadcast_shapes(x.shape, y.shape)
    scale = g * inverse(math.prod(shape))
    gy = -x.expand(*shape) * scale if ctx.needs(1) else None
    return (x.sigmoid() - y) * scale, gy


def _cross_entropy_infer(shapes, dtypes, attrs):
    return [((), np.dtype(dtypes[0])), (tuple(shapes[0]), np.dtype(dtypes[0]))]


def _mse_infer(shapes, dtypes, attrs):
    dtype = np.result_type(*dtypes)
    return [((), dtype), (np.broadcast_shapes(*shapes), dtype)]


def _bce_infer(shapes, dtypes, attrs):
    return (), np.result_type(*dtypes)


define(
    Op.CROSS_ENTROPY,
    _cross_entropy,
    _cross_entropy_grad,
    infer=_cross_entropy_infer,
    nondiff=(1,),
    outputs=("loss", "probs"),
)
define(
    Op.CROSS_ENTROPY_BACKWARD,
    _cross_entropy_backward,
    _cross_entropy_backward_grad,
    infer=S.same,
    nondiff=(1,),
)
define(Op.ONE_HOT, _one_hot, None, infer=_one_hot_infer)
define(Op.MSE_LOSS, _mse, _mse_grad, infer=_mse_infer, outputs=("loss", "diff"))
define(Op.MSE_LOSS_BACKWARD, _mse_backward, _mse_backward_grad, infer=S.same)
define(Op.BCE_WITH_LOGITS, _bce_logits, _bce_logits_grad, infer=_bce_infer)
