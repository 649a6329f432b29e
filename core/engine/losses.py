"""Losses with PyTorch's names, arguments and defaults (``core.functional``
exports them). Each takes ``reduction="mean" | "sum" | "none"``.

The common cases run as one fused op (``cross_entropy`` of class indices,
``mse_loss`` and ``binary_cross_entropy_with_logits`` with the mean); the
others are compositions of registered ops, so every term is a node a debugger
can show and the gradients come from the ops' rules.

>>> import core
>>> import core.functional as F
>>> logits = core.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], dtype="float64")
>>> round(F.cross_entropy(logits, core.tensor([0, 2])).item(), 4)
0.1755
>>> F.cross_entropy(logits, core.tensor([0, -100]), reduction="none").numpy().round(4).tolist()
[0.2413, 0.0]
>>> round(F.huber_loss(core.tensor([0.0, 3.0]), core.tensor([0.5, 0.0])).item(), 4)
1.3125
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.engine.dispatch import apply, constant, is_tensor, lift
from core.engine.ops import Op
from core.engine.tensor import Tensor
from core.errors import DtypeError, ShapeError
from core.observe.source import where

REDUCTIONS = ("mean", "sum", "none")
_LOG_FLOOR = math.exp(-100.0)  # binary_cross_entropy clamps its logs at -100, as PyTorch


def reduce(loss: Tensor, reduction: str, name: str) -> Tensor:
    """``loss`` reduced as ``reduction`` says (the mean of nothing is NaN)."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _check(reduction: str, name: str, extra: tuple = ()) -> None:
    if reduction not in REDUCTIONS + extra:
        raise ValueError(
            f"{name}: reduction must be one of {REDUCTIONS + extra}, got {reduction!r}"
        )


def _select(cond: Tensor, a: Any, b: Any) -> Tensor:
    like = a if is_tensor(a) else b
    return apply(Op.WHERE, (cond, lift(a, like), lift(b, like)))


def _targets(target: Any, like: Tensor) -> Tensor:
    if not is_tensor(target):
        target = constant(np.asarray(target), device=like.device)
    return target


def mse_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """The mean (or sum, or each) of ``(input - target) ** 2``."""
    if reduction == "mean":  # one op, first
        return apply(Op.MSE_LOSS, (input, lift(target, input)))
    _check(reduction, "mse_loss")
    diff = input - lift(target, input)
    return reduce(diff * diff, reduction, "mse_loss")


def mse_loss_backward(diff: Tensor, g: Tensor) -> Tensor:
    """The gradient of ``mse_loss`` with respect to its first input, given
    ``diff = a - b`` and the scalar ``g``: ``diff * g * 2 / diff.size``, as one op."""
    return apply(Op.MSE_LOSS_BACKWARD, (diff, g))


def l1_loss(input: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    return reduce((input - lift(target, input)).abs(), reduction, "l1_loss")


def smooth_l1_loss(input: Tensor, target: Any, reduction: str = "mean", beta: float = 1.0):
    """``0.5 d**2 / beta`` where ``|d| < beta``, ``|d| - 0.5 beta`` elsewhere."""
    d = (input - lift(target, input)).abs()
    if beta == 0.0:
        return reduce(d, reduction, "smooth_l1_loss")
    loss = _select(d < beta, d * d * (0.5 / beta), d - 0.5 * beta)
    return reduce(loss, reduction, "smooth_l1_loss")


def huber_loss(input: Tensor, target: Any, reduction: str = "mean", delta: float = 1.0):
    """``0.5 d**2`` where ``|d| < delta``, ``delta (|d| - 0.5 delta)`` elsewhere."""
    d = (input - lift(target, input)).abs()
    loss = _select(d < delta, d * d * 0.5, (d - 0.5 * delta) * delta)
    return reduce(loss, reduction, "huber_loss")


def binary_cross_entropy(
    input: Tensor, target: Any, weight: Any = None, reduction: str = "mean"
) -> Tensor:
    """``-(t log p + (1 - t) log(1 - p))`` of probabilities ``p``, each log
    at least -100 (as PyTorch's)."""
    target = lift(target, input)
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError(
            f"binary_cross_entropy: target of shape {target.shape} does not match input "
            f"of shape {input.shape}{where()}"
        )
    log_p = input.clamp(min=_LOG_FLOOR).log()
    log_q = (1.0 - input).clamp(min=_LOG_FLOOR).log()
    loss = -(target * log_p + (1.0 - target) * log_q)
    if weight is not None:
        loss = loss * lift(weight, input)
    return reduce(loss, reduction, "binary_cross_entropy")


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Any,
    weight: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """``binary_cross_entropy(sigmoid(input), target)`` without overflow;
    ``pos_weight`` weighs the positive term (one value per class)."""
    _check(reduction, "binary_cross_entropy_with_logits")
    target = lift(target, input)
    if weight is None and pos_weight is None and reduction == "mean":
        return apply(Op.BCE_WITH_LOGITS, (input, target))
    # (1 - t) x + (1 + (pw - 1) t) (log(1 + exp(-|x|)) + max(-x, 0)), as PyTorch
    softplus_neg = (-input.abs()).exp().log1p() + (-input).relu()
    if pos_weight is not None:
        softplus_neg = softplus_neg * ((lift(pos_weight, input) - 1.0) * target + 1.0)
    loss = (1.0 - target) * input + softplus_neg
    if weight is not None:
        loss = loss * lift(weight, input)
    return reduce(loss, reduction, "binary_cross_entropy_with_logits")


def nll_loss(
    input: Tensor,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Tensor:
    """The negative log-likelihood of class ``target`` under log-probabilities
    ``input`` of shape (N, C), (N, C, d1, ...) or (C,); ``weight`` per class;
    targets equal to ``ignore_index`` add nothing (and do not count in the mean)."""
    _check(reduction, "nll_loss")
    target = _targets(target, input)
    if target.dtype.kind not in "iu":
        raise DtypeError(f"nll_loss: targets must be class indices, got {target.dtype}{where()}")
    if input.ndim == 1:
        loss = nll_loss(input.unsqueeze(0), target.reshape(1), weight, ignore_index, reduction)
        return loss.squeeze(0) if reduction == "none" else loss
    if tuple(target.shape) != (input.shape[0], *input.shape[2:]):
        raise ShapeError(
            f"nll_loss: target of shape {target.shape} does not fit input of shape "
            f"{input.shape}{where()}"
        )
    valid = target.ne(ignore_index)
    safe = _select(valid, target, 0)
    picked = input.gather(1, safe.unsqueeze(1)).squeeze(1)
    weights = valid.astype(input.dtype)
    if weight is not None:
        weights = lift(weight, input)[safe] * weights
    loss = -picked * weights
    if reduction == "mean":
        return loss.sum() / weights.sum()
    return reduce(loss, reduction, "nll_loss")


def cross_entropy(
    input: Tensor,
    target: Any,
    weight: Any = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Softmax cross-entropy of ``input`` logits (N, C), (N, C, d1, ...) or (C,)
    against class indices or class probabilities, as ``torch.nn.functional.
    cross_entropy``: per-class ``weight``, ``ignore_index``, ``label_smoothing``.

    The mean over class indices without weights or smoothing is one op.
    """
    if (
        reduction == "mean"
        and weight is None
        and not label_smoothing
        and input.ndim == 2
        and is_tensor(target)
        and target.dtype.kind in "iu"
    ):  # the common case, first: one op
        attrs = {} if ignore_index == -100 else {"ignore_index": int(ignore_index)}
        return apply(Op.CROSS_ENTROPY, (input, target), attrs)
    _check(reduction, "cross_entropy")
    target = _targets(target, input)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if target.dtype.kind == "f":
        return _soft_cross_entropy(input, target, weight, reduction, label_smoothing)
    if input.ndim < 2 and (input.ndim == 0 or target.ndim != 0):
        raise ShapeError(
            f"cross_entropy: logits must be (batch, classes), or (classes,) with a 0-d "
            f"target; got logits {input.shape} and target {target.shape}{where()}"
        )
    if weight is None and label_smoothing == 0.0 and reduction == "mean" and input.ndim >= 2:
        if input.ndim > 2:  # classes last, every position a row
            input = input.movedim(1, -1).reshape(-1, input.shape[1])
            target = target.reshape(-1)
        attrs = {} if ignore_index == -100 else {"ignore_index": int(ignore_index)}
        return apply(Op.CROSS_ENTROPY, (input, target), attrs)
    dim = 0 if input.ndim == 1 else 1
    log_p = input.log_softmax(dim)
    loss = nll_loss(log_p, target, weight, ignore_index, reduction)
    if label_smoothing == 0.0:
        return loss
    classes = input.shape[dim]
    w = constant(1.0, like=input) if weight is None else lift(weight, input)
    if weight is not None and input.ndim > 2:
        w = w.reshape(classes, *([1] * (input.ndim - 2)))
    smooth = -(log_p * w).sum(dim)
    valid = target.ne(ignore_index)
    smooth = smooth * valid.astype(input.dtype)
    if reduction == "mean":
        if weight is None:
            smooth = smooth.sum() / valid.astype(input.dtype).sum()
        else:
            safe = _select(valid, target, 0)
            smooth = smooth.sum() / (lift(weight, input)[safe] * valid.astype(input.dtype)).sum()
    else:
        smooth = reduce(smooth, reduction, "cross_entropy")
    return loss * (1.0 - label_smoothing) + smooth * (label_smoothing / classes)


def _soft_cross_entropy(input, target, weight, reduction, label_smoothing):
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError(
            f"cross_entropy: targets must be integer class indices or, as float class "
            f"probabilities, have the input's shape {input.shape}; got {target.dtype} "
            f"of shape {target.shape}{where()}"
        )
    dim = 0 if input.ndim == 1 else 1
    classes = input.shape[dim]
    if label_smoothing:
        target = target * (1.0 - label_smoothing) + label_smoothing / classes
    terms = input.log_softmax(dim) * target
    if weight is not None:
        w = lift(weight, input)
        terms = terms * (w.reshape(classes, *([1] * (input.ndim - 2))) if input.ndim > 2 else w)
    return reduce(-terms.sum(dim), reduction, "cross_entropy")


def cross_entropy_backward(
    probs: Tensor, target: Tensor, g: Tensor, ignore_index: int = -100
) -> Tensor:
    """The gradient of ``cross_entropy`` at logits whose softmax is ``probs``,
    scaled by the scalar ``g``: ``(probs - one_hot(target)) * g / batch``, as one
    op (rows whose target is ``ignore_index`` get zeros and do not count)."""
    attrs = {} if ignore_index == -100 else {"ignore_index": int(ignore_index)}
    return apply(Op.CROSS_ENTROPY_BACKWARD, (probs, target, g), attrs)


def kl_div(input: Tensor, target: Any, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """``target * (log(target) - input)`` with ``input`` log-probabilities (0
    where the target is 0); ``reduction="batchmean"`` divides the sum by the batch."""
    _check(reduction, "kl_div", ("batchmean",))
    target = lift(target, input)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        positive = target > 0.0
        safe = _select(positive, target, 1.0)
        loss = _select(positive, target * safe.log(), 0.0) - target * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return reduce(loss, reduction, "kl_div")


def margin_ranking_loss(
    input1: Tensor, input2: Any, target: Any, margin: float = 0.0, reduction: str = "mean"
) -> Tensor:
    """``max(0, -y (x1 - x2) + margin)``."""
    loss = (-lift(target, input1) * (input1 - lift(input2, input1)) + margin).clamp(min=0.0)
    return reduce(loss, reduction, "margin_ranking_loss")


def triplet_margin_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
    swap: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """``max(d(a, p) - d(a, n) + margin, 0)`` with ``pairwise_distance``."""
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = d_neg.minimum(pairwise_distance(positive, negative, p, eps))
    return reduce((d_pos - d_neg + margin).clamp(min=0.0), reduction, "triplet_margin_loss")


def cosine_embedding_loss(
    input1: Tensor, input2: Any, target: Any, margin: float = 0.0, reduction: str = "mean"
) -> Tensor:
    """``1 - cos`` where the target is 1, ``max(0, cos - margin)`` where it is -1."""
    input2, target = lift(input2, input1), lift(target, input1)
    tiny = 1e-12  # as PyTorch's EPSILON
    dot = (input1 * input2).sum(-1)
    norms = (((input1 * input1).sum(-1) + tiny) * ((input2 * input2).sum(-1) + tiny)).sqrt()
    cos = dot / norms
    positive = _select(target.eq(1.0), 1.0 - cos, 0.0)
    negative = _select(target.eq(-1.0), (cos - margin).clamp(min=0.0), 0.0)
    return reduce(positive + negative, reduction, "cosine_embedding_loss")


def _clamped_norm(x: Tensor, dim: int, eps: float) -> Tensor:
    """``max(||x||_2, eps)`` over ``dim`` (kept), as ``sqrt(max(sum x^2, eps^2))``:
    the same values, and a finite gradient at a zero vector."""
    return (x * x).sum(dim, keepdim=True).clamp(min=eps * eps).sqrt()


def cosine_similarity(x1: Tensor, x2: Any, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """``sum(x1 / max(|x1|, eps) * x2 / max(|x2|, eps))`` over ``dim``, as PyTorch's."""
    x2 = lift(x2, x1)
    return ((x1 / _clamped_norm(x1, dim, eps)) * (x2 / _clamped_norm(x2, dim, eps))).sum(dim)


def pairwise_distance(
    x1: Tensor, x2: Any, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False
) -> Tensor:
    """``||x1 - x2 + eps||_p`` over the last dim, as PyTorch's."""
    return (x1 - lift(x2, x1) + eps).norm(p, -1, keepdim)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """``input / max(||input||_p, eps)`` over ``dim``."""
    if p == 2.0:
        return input / _clamped_norm(input, dim, eps)
    return input / input.norm(p, dim, keepdim=True).clamp(min=eps)
