"""Attention with PyTorch's names: ``scaled_dot_product_attention``
(``core.functional`` exports it; ``core.nn.MultiheadAttention`` uses it).

It is the math of PyTorch's reference implementation, in registered ops:
scores ``q k^T * scale``, the masks as ``-inf`` (a boolean mask keeps the
True places; ``is_causal`` keeps the lower triangle), softmax, dropout, and
the product with ``v``. Each is a node a debugger shows.

>>> import core
>>> import core.functional as F
>>> q = k = v = core.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype="float64")
>>> F.scaled_dot_product_attention(q, k, v, is_causal=True).numpy().round(3).tolist()
[[[1.0, 0.0], [0.33, 0.67]]]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.engine.dispatch import apply, constant, is_tensor
from core.engine.modes import no_grad
from core.engine.ops import Op
from core.engine.random import dropout_seed
from core.engine.tensor import Tensor
from core.errors import ShapeError
from core.observe.source import where


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> Tensor:
    """``softmax(q k^T * scale + mask) v`` over (..., L, E), (..., S, E), (..., S, Ev)."""
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ShapeError(
            f"scaled_dot_product_attention: query {query.shape}, key {key.shape} and value "
            f"{value.shape} do not fit{where()}"
        )
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        repeats = query.shape[-3] // key.shape[-3]
        key = _repeat_heads(key, repeats)
        value = _repeat_heads(value, repeats)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = (query @ key.transpose(-2, -1)) * scale
    length, source = query.shape[-2], key.shape[-2]
    if is_causal:
        if attn_mask is not None:
            raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal, not both")
        attn_mask = constant(np.tril(np.ones((length, source), bool)), device=query.device)
    if attn_mask is not None:
        scores = _masked(scores, attn_mask)
    weights = scores.softmax(-1)
    if dropout_p > 0.0:  # F.dropout's op, with the device's dropout seed
        seed = dropout_seed(weights.device)
        with no_grad():
            seed.add_(1)
        weights = apply(Op.DROPOUT, (weights, seed), {"p": float(dropout_p)})
    return weights @ value


def _masked(scores: Tensor, mask: Any) -> Tensor:
    """Scores with a boolean mask (False: -inf) or a float mask added."""
    if not is_tensor(mask):
        mask = constant(np.asarray(mask), device=scores.device)
    if mask.dtype == np.bool_:
        return apply(Op.WHERE, (mask, scores, constant(-math.inf, like=scores)))
    return scores + mask.astype(scores.dtype)


def _repeat_heads(t: Tensor, repeats: int) -> Tensor:
    heads = t.shape[-3]
    spread = t.unsqueeze(-3).expand(*t.shape[:-3], heads, repeats, *t.shape[-2:])
    return spread.reshape(*t.shape[:-3], heads * repeats, *t.shape[-2:])
