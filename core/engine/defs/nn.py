"""Linear algebra and network ops: forward through ``xp``, gradient in Tensor ops,
shape rule.

Convolution and pooling go through ``unfold`` (im2col) and ``fold`` (col2im),
each the other's gradient, so second derivatives need no extra rules. What a
forward computes on the way that its gradient reuses (a softmax, im2col
columns, a pooling mask) is a side output of the op, which the rule reads with
``ctx.out(1)``: a value of the graph, never an array kept aside.
"""

from __future__ import annotations

import numpy as np

from core.engine import functional as F
from core.engine import shapes as S
from core.engine.ops import Op, define
from core.engine.random import dropout_mask

# -- matmul ------------------------------------------------------------------


def _matmul_nt(xp, a, b):
    """``a @ b.T`` for 2-D ``a`` and ``b``, the form of a linear layer's forward.

    OpenBLAS runs ``b @ a.T`` up to twice as fast when ``a`` has at most half as
    many rows as ``b`` (a batch small against the layer's width); with the copy
    back to row-major order, which the elementwise ops after it need, 292
    instead of 340 us at 64 x 784 -> 256, 87 instead of 162 at batch 16.
    """
    if xp is np and 2 * a.shape[0] <= b.shape[0]:
        return np.ascontiguousarray(np.matmul(b, a.T).T)
    return xp.matmul(a, b.T)


def _matmul(xp, a, b, transpose_a=False, transpose_b=False):
    # transpose_a / transpose_b swap the last two axes of an operand first (as
    # TensorFlow's MatMul): a layer's weight gradient g.T @ x is one op, not two.
    if transpose_a or transpose_b:
        if min(a.ndim, b.ndim) < 2:
            raise ValueError("transpose_a/transpose_b need operands with at least 2 dims")
        if transpose_b and not transpose_a and a.ndim == b.ndim == 2:
            return _matmul_nt(xp, a, b)
        if transpose_a:
            a = a.swapaxes(-1, -2)
        if transpose_b:
            b = b.swapaxes(-1, -2)
    return xp.asarray(xp.matmul(a, b))


def _matmul_grad(ctx, g):
    a, b = ctx.inputs
    ta = ctx.attrs.get("transpose_a", False)
    tb = ctx.attrs.get("transpose_b", False)
    if a.ndim >= 2 and b.ndim >= 2:
        # c = op(a) @ op(b): each gradient is one matmul with transposes as attributes
        ga = gb = None
        if a.requires_grad:
            if ta:  # a = op(a).T, so its gradient is (g @ op(b).T).T = op(b) @ g.T
                ga = F.matmul(b, g, transpose_a=tb, transpose_b=True)
            else:
                ga = F.matmul(g, b, transpose_b=not tb)
        if b.requires_grad:
            if tb:  # likewise (op(a).T @ g).T = g.T @ op(a)
                gb = F.matmul(g, a, transpose_a=True, transpose_b=ta)
            else:
                gb = F.matmul(a, g, transpose_a=not ta)
        return ga, gb
    if a.ndim == 1 and b.ndim == 1:
        return g * b, g * a
    a2 = a.reshape(1, -1) if a.ndim == 1 else a
    b2 = b.reshape(-1, 1) if b.ndim == 1 else b
    if a.ndim == 1:
        g = g.unsqueeze(-2)
    if b.ndim == 1:
        g = g.unsqueeze(-1)
    ga = gb = None
    if a.requires_grad:
        ga = F.matmul(g, b2, transpose_b=True)
        if a.ndim == 1:
            ga = ga.sum_to(ga.shape[-2:]).reshape(-1)
    if b.requires_grad:
        gb = F.matmul(a2, g, transpose_a=True)
        if b.ndim == 1:
            gb = gb.sum_to(gb.shape[-2:]).reshape(-1)
    return ga, gb


def _matmul_infer(shapes, dtypes, attrs):
    a, b = list(shapes[0]), list(shapes[1])
    if attrs.get("transpose_a"):
        a[-2], a[-1] = a[-1], a[-2]
    if attrs.get("transpose_b"):
        b[-2], b[-1] = b[-1], b[-2]
    if len(a) == 1 and len(b) == 1:
        shape = ()
    elif len(a) == 1:
        shape = (*b[:-2], b[-1])
    elif len(b) == 1:
        shape = tuple(a[:-1])
    else:
        shape = (*np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2])), a[-2], b[-1])
    return shape, np.result_type(*dtypes)


define(Op.MATMUL, _matmul, _matmul_grad, infer=_matmul_infer)


def _linear(xp, x, w, *bias):
    if x.shape[-1] != w.shape[1]:
        raise ValueError(f"input features {x.shape[-1]} != weight's in_features {w.shape[1]}")
    if x.ndim == 2:
        out = _matmul_nt(xp, x, w)
    else:
        out = xp.asarray(xp.matmul(x, w.T))
    if bias:
        out += bias[0]
    return out


def _linear_grad(ctx, g):
    # One node per layer, as PyTorch's linear; the rules are matmuls.
    x, w = ctx.inputs[:2]
    gx = g @ w if x.requires_grad else None
    gw = None
    if w.requires_grad:
        rows, inputs = g, x
        if g.ndim != 2:  # batch dimensions fold into rows
            rows, inputs = g.reshape(-1, g.shape[-1]), x.reshape(-1, x.shape[-1])
        gw = F.matmul(rows, inputs, transpose_a=True)
    if len(ctx.inputs) == 3:
        return gx, gw, g
    return gx, gw


def _linear_infer(shapes, dtypes, attrs):
    return (*shapes[0][:-1], shapes[1][0]), np.result_type(*dtypes)


define(Op.LINEAR, _linear, _linear_grad, infer=_linear_infer)

# -- softmax (the losses are in defs/loss.py) ---------------------------------


def _softmax(xp, a, axis):
    e = xp.exp(a - a.max(axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e


def _softmax_grad(ctx, g):
    y = ctx.output
    axis = ctx.attrs["axis"]
    return (y * (g - (g * y).sum(axis=axis, keepdims=True)),)


def _log_softmax(xp, a, axis):
    shifted = a - a.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


def _log_softmax_grad(ctx, g):
    axis = ctx.attrs["axis"]
    return (g - ctx.output.exp() * g.sum(axis=axis, keepdims=True),)


define(Op.SOFTMAX, _softmax, _softmax_grad, infer=S.same)
define(Op.LOG_SOFTMAX, _log_softmax, _log_softmax_grad, infer=S.same)

# -- im2col, convolution, pooling -----------------------------------------------


def out_size(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def _tiles(shape, kernel, stride, padding) -> bool:
    """True when windows tile the image exactly (a reshape suffices)."""
    return (
        kernel == stride
        and padding == (0, 0)
        and shape[-2] % kernel[0] == 0
        and shape[-1] % kernel[1] == 0
    )


def _unfold(xp, x, kernel, stride, padding):
    n, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    if oh <= 0 or ow <= 0:
        raise ValueError(f"kernel {kernel} does not fit an input of {h}x{w} with padding {padding}")
    if _tiles(x.shape, kernel, stride, padding):
        tiles = x.reshape(n, c, oh, kh, ow, kw).transpose(0, 1, 3, 5, 2, 4)
        return tiles.reshape(n, c * kh * kw, oh * ow)
    if ph or pw:
        x = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    x = xp.ascontiguousarray(x)
    s0, s1, s2, s3 = x.strides
    windows = xp.lib.stride_tricks.as_strided(
        x, (n, c, kh, kw, oh, ow), (s0, s1, s2, s3, s2 * sh, s3 * sw)
    )
    return windows.reshape(n, c * kh * kw, oh * ow)


def _fold(xp, cols, size, kernel, stride, padding):
    h, w = size
    kh, kw = kernel
    sh, sw = stride
    ph, pw = padding
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    n, ck, length = cols.shape
    c = ck // (kh * kw)
    if ck != c * kh * kw or length != oh * ow:
        raise ValueError(f"columns of shape {cols.shape} do not fold into {size}")
    blocks = cols.reshape(n, c, kh, kw, oh, ow)
    if _tiles((h, w), kernel, stride, padding):
        return blocks.transpose(0, 1, 4, 2, 5, 3).reshape(n, c, h, w)
    out = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += blocks[:, :, i, j]
    return xp.ascontiguousarray(out[:, :, ph : ph + h, pw : pw + w])


def _unfold_grad(ctx, g):
    x = ctx.inputs[0]
    a = ctx.attrs
    return (F.fold(g, x.shape[2:], a["kernel"], a["stride"], a["padding"]),)


def _fold_grad(ctx, g):
    a = ctx.attrs
    return (F.unfold(g, a["kernel"], a["stride"], a["padding"]),)


def _conv2d(xp, x, w, *bias, stride, padding):
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError("conv2d needs (N, C, H, W) input and (O, C, kh, kw) weight")
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"input has {x.shape[1]} channels, the weight expects {w.shape[1]}")
    n, _c, h, wd = x.shape
    o, _c, kh, kw = w.shape
    cols = _unfold(xp, x, (kh, kw), stride, padding)
    out = xp.matmul(w.reshape(o, -1), cols)
    if bias:
        out += bias[0][:, None]
    oh, ow = out_size(h, kh, stride[0], padding[0]), out_size(wd, kw, stride[1], padding[1])
    return out.reshape(n, o, oh, ow), cols  # im2col columns: a side output


def _conv2d_grad(ctx, g, g_cols):
    x, w = ctx.inputs[:2]
    kernel = w.shape[2:]
    stride, padding = ctx.attrs["stride"], ctx.attrs["padding"]
    n, o = x.shape[0], w.shape[0]
    gx = gw = gb = None
    if g is not None:
        g3 = g.reshape(n, o, -1)
        if w.requires_grad:
            gw = (g3 @ ctx.out(1).transpose(1, 2)).sum(axis=0).reshape(*w.shape)
        if x.requires_grad:
            g_from_out = w.reshape(o, -1).transpose(0, 1) @ g3
            g_cols = g_from_out if g_cols is None else g_cols + g_from_out
        if len(ctx.inputs) == 3:
            gb = g.sum(axis=(0, 2, 3))
    if g_cols is not None and x.requires_grad:
        gx = F.fold(g_cols, x.shape[2:], kernel, stride, padding)
    return gx, gw, gb


def _pool_windows(xp, x, kernel, stride):
    n, c = x.shape[:2]
    cols = _unfold(xp, x, kernel, stride, (0, 0))
    return cols.reshape(n, c, kernel[0] * kernel[1], -1)


def _pool_shape(x, kernel, stride):
    n, c, h, w = x.shape
    return n, c, out_size(h, kernel[0], stride[0], 0), out_size(w, kernel[1], stride[1], 0)


def _max_pool2d(xp, x, kernel, stride):
    # Windows are copied once into (N, C, k, L) columns (contiguous along L):
    # elementwise work over strided views or short axes is several times slower.
    windows = _pool_windows(xp, x, kernel, stride)
    k = windows.shape[2]
    out = windows[:, :, 0].copy()
    for i in range(1, k):
        xp.maximum(out, windows[:, :, i], out=out)
    hit = windows == out[:, :, None]
    count = hit[:, :, 0].astype(x.dtype)
    for i in range(1, k):
        count += hit[:, :, i]
    mask = hit.astype(x.dtype)
    if count.size and int(count.max()) > 1:  # ties share the gradient
        mask /= count[:, :, None]
    return out.reshape(_pool_shape(x, kernel, stride)), mask


def _max_pool2d_grad(ctx, g, _g_mask):
    # The routing mask (ties share the gradient) is piecewise constant in x: a
    # side output without a gradient, even when a graph of the backward is built.
    x = ctx.inputs[0]
    kernel, stride = ctx.attrs["kernel"], ctx.attrs["stride"]
    n, c = x.shape[:2]
    mask = ctx.out(1)
    routed = (g.reshape(n, c, 1, -1) * mask).reshape(n, -1, mask.shape[-1])
    return (F.fold(routed, x.shape[2:], kernel, stride, (0, 0)),)


def _avg_pool2d(xp, x, kernel, stride):
    windows = _pool_windows(xp, x, kernel, stride)
    return windows.mean(axis=2).reshape(_pool_shape(x, kernel, stride))


def _avg_pool2d_grad(ctx, g):
    x = ctx.inputs[0]
    kernel, stride = ctx.attrs["kernel"], ctx.attrs["stride"]
    n, c = x.shape[:2]
    k = kernel[0] * kernel[1]
    length = g.shape[2] * g.shape[3]
    spread = (g.reshape(n, c, 1, length) * (1.0 / k)).expand(n, c, k, length)
    return (F.fold(spread.reshape(n, c * k, length), x.shape[2:], kernel, stride, (0, 0)),)


def _unfold_infer(shapes, dtypes, attrs):
    n, c, h, w = shapes[0]
    (kh, kw), (sh, sw), (ph, pw) = attrs["kernel"], attrs["stride"], attrs["padding"]
    length = out_size(h, kh, sh, ph) * out_size(w, kw, sw, pw)
    return (n, c * kh * kw, length), np.dtype(dtypes[0])


def _fold_infer(shapes, dtypes, attrs):
    n, ck, _length = shapes[0]
    kh, kw = attrs["kernel"]
    return (n, ck // (kh * kw), *attrs["size"]), np.dtype(dtypes[0])


def _conv2d_infer(shapes, dtypes, attrs):
    (n, c, h, w), (o, _c, kh, kw) = shapes[0], shapes[1]
    (sh, sw), (ph, pw) = attrs["stride"], attrs["padding"]
    oh, ow = out_size(h, kh, sh, ph), out_size(w, kw, sw, pw)
    dtype = np.result_type(*dtypes)
    return [((n, o, oh, ow), dtype), ((n, c * kh * kw, oh * ow), dtype)]


def _max_pool2d_infer(shapes, dtypes, attrs):
    shape = _pool_shape_of(shapes[0], attrs["kernel"], attrs["stride"])
    k = attrs["kernel"][0] * attrs["kernel"][1]
    mask = (*shape[:2], k, shape[2] * shape[3])
    return [(shape, np.dtype(dtypes[0])), (mask, np.dtype(dtypes[0]))]


def _avg_pool2d_infer(shapes, dtypes, attrs):
    return _pool_shape_of(shapes[0], attrs["kernel"], attrs["stride"]), np.dtype(dtypes[0])


def _pool_shape_of(shape, kernel, stride):
    n, c, h, w = shape
    return n, c, out_size(h, kernel[0], stride[0], 0), out_size(w, kernel[1], stride[1], 0)


define(Op.UNFOLD, _unfold, _unfold_grad, infer=_unfold_infer)
define(Op.FOLD, _fold, _fold_grad, infer=_fold_infer)
define(Op.CONV2D, _conv2d, _conv2d_grad, infer=_conv2d_infer, outputs=("out", "cols"))
define(
    Op.MAX_POOL2D,
    _max_pool2d,
    _max_pool2d_grad,
    infer=_max_pool2d_infer,
    outputs=("out", "mask"),
    nondiff_outputs=(1,),
)
define(Op.AVG_POOL2D, _avg_pool2d, _avg_pool2d_grad, infer=_avg_pool2d_infer)

# -- normalisation, embedding, dropout ------------------------------------------


def _layer_norm(xp, x, w, b, dims, eps):
    axes = tuple(range(x.ndim - dims, x.ndim))
    centred = x - x.mean(axis=axes, keepdims=True)
    var = (centred * centred).mean(axis=axes, keepdims=True)
    return centred / xp.sqrt(var + x.dtype.type(eps)) * w + b


def _linear_like_same(shapes, dtypes, attrs):
    return np.broadcast_shapes(*shapes), np.result_type(*dtypes)


def _layer_norm_grad(ctx, g):
    x, w, _b = ctx.inputs
    dims, eps = ctx.attrs["dims"], ctx.attrs["eps"]
    axes = tuple(range(x.ndim - dims, x.ndim))
    centred = x - x.mean(axis=axes, keepdims=True)
    rstd = ((centred * centred).mean(axis=axes, keepdims=True) + eps) ** -0.5
    xhat = centred * rstd
    gx = None
    if x.requires_grad:
        gh = g * w
        mean_gh = gh.mean(axis=axes, keepdims=True)
        mean_ghx = (gh * xhat).mean(axis=axes, keepdims=True)
        gx = (gh - mean_gh - xhat * mean_ghx) * rstd
    return gx, g * xhat, g


def _embedding(xp, weight, indices):
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding indices must be integers, got dtype {indices.dtype}")
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= weight.shape[0]):
        raise IndexError(f"an index is outside 0..{weight.shape[0] - 1}")
    return weight[indices]


def _embedding_grad(ctx, g):
    weight, indices = ctx.inputs
    return F.index_add_into(g, weight.shape, indices), None


def _embedding_infer(shapes, dtypes, attrs):
    return (*shapes[1], shapes[0][1]), np.dtype(dtypes[0])


def _dropout(xp, x, seed, p):
    mask = xp.asarray(dropout_mask(x.shape, p, int(seed), x.dtype))
    return x * mask, mask  # the scaled keep-mask: a side output without gradient


def _dropout_grad(ctx, g, _g_mask):
    return g * ctx.out(1), None


def _dropout_infer(shapes, dtypes, attrs):
    return [(tuple(shapes[0]), np.dtype(dtypes[0]))] * 2


define(Op.LAYER_NORM, _layer_norm, _layer_norm_grad, infer=_linear_like_same)
define(Op.EMBEDDING, _embedding, _embedding_grad, infer=_embedding_infer, nondiff=(1,))
define(
    Op.DROPOUT,
    _dropout,
    _dropout_grad,
    infer=_dropout_infer,
    nondiff=(1,),
    outputs=("out", "mask"),
    nondiff_outputs=(1,),
)
