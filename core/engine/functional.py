"""Functions on tensors, PyTorch's ``torch.nn.functional`` names where it has one.

>>> import core
>>> import core.functional as F
>>> x = core.tensor([[1.0, 2.0, 3.0]], dtype="float64")
>>> F.softmax(x).numpy().round(3).tolist()
[[0.09, 0.245, 0.665]]
>>> F.cross_entropy(x, core.tensor([2])).item() < 0.41
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.engine import indexing, linalg
from core.engine.activations import (  # noqa: F401  (public names)
    celu,
    elu,
    glu,
    gumbel_softmax,
    hardsigmoid,
    hardswish,
    hardtanh,
    lerp,
    logsigmoid,
    mish,
    prelu,
    relu6,
    selu,
    silu,
    softmin,
    softplus,
    softsign,
    tanhshrink,
)
from core.engine.attention import scaled_dot_product_attention  # noqa: F401  (public)
from core.engine.conv import (  # noqa: F401  (public names)
    avg_pool1d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv_transpose1d,
    conv_transpose2d,
    max_pool1d,
    max_pool2d,
    pad,
)
from core.engine.dispatch import apply, constant, lift
from core.engine.losses import (  # noqa: F401  (public names)
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cosine_embedding_loss,
    cosine_similarity,
    cross_entropy,
    cross_entropy_backward,
    huber_loss,
    kl_div,
    l1_loss,
    margin_ranking_loss,
    mse_loss,
    mse_loss_backward,
    nll_loss,
    normalize,
    pairwise_distance,
    smooth_l1_loss,
    triplet_margin_loss,
)
from core.engine.modes import no_grad
from core.engine.norms import (  # noqa: F401  (public names)
    batch_norm,
    group_norm,
    instance_norm,
    rms_norm,
)
from core.engine.ops import Op
from core.engine.random import dropout_seed
from core.engine.resize import (  # noqa: F401  (public names)
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    interpolate,
)
from core.engine.tensor import Tensor
from core.engine.tensor_torch import norm_dim
from core.errors import DtypeError, ShapeError


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    a, b = v
    return (int(a), int(b))


def one_hot(target: Tensor, num_classes: int, dtype: Any = np.float32) -> Tensor:
    """A one at each target index along a new last axis, zeros elsewhere.

    PyTorch's ``one_hot`` gives int64; the dtype here defaults to float32,
    the dtype a loss multiplies it with.
    """
    attrs = {"classes": int(num_classes), "dtype": np.dtype(dtype).name}
    return apply(Op.ONE_HOT, (target,), attrs)


# -- elementwise ---------------------------------------------------------------


def _like(*values: Any) -> Tensor:
    for v in values:
        if isinstance(v, Tensor):
            return v
    raise TypeError("at least one argument must be a Tensor")


def where(cond: Tensor, a: Any, b: Any) -> Tensor:
    """``a`` where ``cond`` is true, else ``b`` (numbers are allowed)."""
    like = _like(a, b)
    return apply(Op.WHERE, (cond, lift(a, like), lift(b, like)))


def maximum(a: Any, b: Any) -> Tensor:
    like = _like(a, b)
    return apply(Op.MAXIMUM, (lift(a, like), lift(b, like)))


def minimum(a: Any, b: Any) -> Tensor:
    like = _like(a, b)
    return apply(Op.MINIMUM, (lift(a, like), lift(b, like)))


def exp(x: Tensor) -> Tensor:
    return apply(Op.EXP, (x,))


def log(x: Tensor) -> Tensor:
    return apply(Op.LOG, (x,))


def sqrt(x: Tensor) -> Tensor:
    return apply(Op.SQRT, (x,))


def tanh(x: Tensor) -> Tensor:
    return apply(Op.TANH, (x,))


def sigmoid(x: Tensor) -> Tensor:
    return apply(Op.SIGMOID, (x,))


def relu(x: Tensor) -> Tensor:
    return apply(Op.RELU, (x,))


def tanh_backward(g: Tensor, y: Tensor) -> Tensor:
    """``g * (1 - y**2)``: the gradient through tanh, given its output ``y``."""
    return apply(Op.TANH_BACKWARD, (g, y))


def sigmoid_backward(g: Tensor, y: Tensor) -> Tensor:
    """``g * y * (1 - y)``: the gradient through sigmoid, given its output ``y``."""
    return apply(Op.SIGMOID_BACKWARD, (g, y))


def relu_backward(g: Tensor, y: Tensor) -> Tensor:
    """``g`` where ``y > 0``, else 0: the gradient through relu, given its output."""
    return apply(Op.RELU_BACKWARD, (g, y))


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    return apply(Op.LEAKY_RELU, (x,), {"slope": float(negative_slope)})


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU, ``x * Phi(x)``: exact (through erf) by default, or with
    ``approximate="tanh"`` the tanh form, as ``torch.nn.functional.gelu``."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return apply(Op.GELU, (x,), {"approximate": approximate})


def erf(x: Tensor) -> Tensor:
    return apply(Op.ERF, (x,))


def clip(x: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    return x.clip(min, max)


def pow(x: Tensor, exponent: Any) -> Tensor:
    return x**exponent


# -- shape -----------------------------------------------------------------------


def matmul(a: Tensor, b: Tensor, *, transpose_a: bool = False, transpose_b: bool = False) -> Tensor:
    """``a @ b``; ``transpose_a``/``transpose_b`` swap an operand's last two axes
    first, inside the one op (as TensorFlow's ``matmul``), so ``g.T @ x`` costs
    no separate transpose.

    >>> import core
    >>> import core.functional as F
    >>> g, x = core.ones(3, 2), core.ones(3, 4)
    >>> F.matmul(g, x, transpose_a=True).shape
    (2, 4)
    """
    return apply(Op.MATMUL, (a, lift(b, a)), _TRANSPOSES[transpose_a, transpose_b])


_TRANSPOSES = {  # matmul's attributes per (transpose_a, transpose_b); never mutated
    (False, False): {},
    (True, False): {"transpose_a": True},
    (False, True): {"transpose_b": True},
    (True, True): {"transpose_a": True, "transpose_b": True},
}


def index_add_into(values: Tensor, shape: Sequence[int], index: Any) -> Tensor:
    """Zeros of ``shape`` with ``values`` added at ``index`` (repeats summed):
    the adjoint of ``x[index]``. ``index`` is what ``__getitem__`` takes,
    with index arrays as tensors."""
    spec, arrays = indexing.encode(index, lambda a: isinstance(a, Tensor))
    return index_add_spec(values, shape, spec, tuple(arrays))


def index_add_spec(values: Tensor, shape: Sequence[int], spec: tuple, arrays: tuple) -> Tensor:
    """``index_add_into`` with the index already a spec and its arrays tensors."""
    attrs = {"shape": tuple(int(s) for s in shape), "index": spec}
    return apply(Op.SCATTER_ADD, (values, *arrays), attrs)


def cat(tensors: Sequence[Tensor], dim: int = 0, *, axis: int | None = None) -> Tensor:
    """The tensors joined along ``dim`` (``axis`` is an alias), as ``torch.cat``."""
    tensors = tuple(tensors)
    if not tensors:
        raise ShapeError("concatenate: no tensors given")
    dim = dim if axis is None else axis
    return apply(Op.CONCAT, tensors, {"axis": norm_dim(dim, tensors[0].ndim)})


concatenate = concat = cat


def stack(tensors: Sequence[Tensor], dim: int = 0, *, axis: int | None = None) -> Tensor:
    """The tensors stacked along a new ``dim`` (``axis`` is an alias)."""
    tensors = tuple(tensors)
    if not tensors:
        raise ShapeError("stack: no tensors given")
    dim = dim if axis is None else axis
    return apply(Op.STACK, tensors, {"axis": norm_dim(dim, tensors[0].ndim + 1)})


# -- networks --------------------------------------------------------------------


def bilinear(x1: Tensor, x2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x1^T A_o x2 + b_o`` for each output o (weight (out, in1, in2))."""
    out = linalg.einsum("...i,oij,...j->...o", x1, weight, x2)
    return out if bias is None else out + bias


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias``, weight of shape (out_features, in_features)."""
    inputs = (x, weight) if bias is None else (x, weight, bias)
    return apply(Op.LINEAR, inputs)


def softmax(x: Tensor, dim: int = -1, *, axis: int | None = None) -> Tensor:
    return x.softmax(dim if axis is None else axis)


def log_softmax(x: Tensor, dim: int = -1, *, axis: int | None = None) -> Tensor:
    return x.log_softmax(dim if axis is None else axis)


def unfold(x: Tensor, kernel: Any, stride: Any = 1, padding: Any = 0) -> Tensor:
    """im2col: (N, C, H, W) -> (N, C*kh*kw, L), one column per window."""
    attrs = {"kernel": _pair(kernel), "stride": _pair(stride), "padding": _pair(padding)}
    return apply(Op.UNFOLD, (x,), attrs)


def fold(cols: Tensor, size: Any, kernel: Any, stride: Any = 1, padding: Any = 0) -> Tensor:
    """col2im, the adjoint of ``unfold``: overlapping windows are summed."""
    attrs = {
        "size": _pair(size),
        "kernel": _pair(kernel),
        "stride": _pair(stride),
        "padding": _pair(padding),
    }
    return apply(Op.FOLD, (cols,), attrs)


def layer_norm(
    x: Tensor,
    normalized_shape: Any,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[-len(shape) :]) != shape:
        raise ShapeError(
            f"layer_norm: input of shape {x.shape} does not end in normalized_shape {shape}"
        )
    if weight is None:  # broadcast scalars: the op's arithmetic is the same
        weight = constant(1.0, like=x)
    if bias is None:
        bias = constant(0.0, like=x)
    return apply(Op.LAYER_NORM, (x, weight, bias), {"dims": len(shape), "eps": float(eps)})


def embedding(indices: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of ``weight`` picked by integer ``indices`` (any shape); the
    ``padding_idx`` row passes no gradient back."""
    if not isinstance(indices, Tensor):
        indices = Tensor(np.asarray(indices), device=weight.device)
    if indices.dtype.kind not in "iu":
        raise DtypeError(f"embedding: indices must be integers, got {indices.dtype}")
    out = apply(Op.EMBEDDING, (weight, indices))
    if padding_idx is None or not out.requires_grad:
        return out
    padded = indices.eq(padding_idx % weight.shape[0]).unsqueeze(-1)
    return where(padded, out.detach(), out)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p).

    The mask comes from the device's dropout seed, which each call advances
    (an in-place op on a state tensor), so a seeded run is repeatable.
    """
    if not training or p == 0.0:
        return x
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    seed = dropout_seed(x.device)
    with no_grad():
        seed.add_(1)
    return apply(Op.DROPOUT, (x, seed), {"p": float(p)})


def dropout2d(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero whole channels of (N, C, ...) with probability ``p`` (the rest
    scaled by 1/(1-p)): one mask value per (sample, channel)."""
    if not training or p == 0.0:
        return x
    keep = dropout(constant(1.0, like=x).expand(*x.shape[:2], *([1] * (x.ndim - 2))), p)
    return x * keep


dropout1d = dropout2d


def pixel_shuffle(x: Tensor, upscale_factor: int) -> Tensor:
    """(N, C r^2, H, W) -> (N, C, H r, W r), as PyTorch's."""
    r = upscale_factor
    n, c, h, w = x.shape[-4:]
    lead = x.shape[:-4]
    out = x.reshape(*lead, n, c // (r * r), r, r, h, w)
    k = len(lead)
    out = out.permute(*range(k), k, k + 1, k + 4, k + 2, k + 5, k + 3)
    return out.reshape(*lead, n, c // (r * r), h * r, w * r)


def sum_to(x: Tensor, shape: Sequence[int]) -> Tensor:
    return x.sum_to(shape)
