"""``nn.MultiheadAttention`` with PyTorch's parameters, layouts and masks
(``core.nn`` exports it).

>>> import core
>>> from core import nn
>>> core.manual_seed(0)
>>> mha = nn.MultiheadAttention(embed_dim=8, num_heads=2, batch_first=True)
>>> x = core.randn(3, 5, 8)
>>> out, weights = mha(x, x, x, need_weights=True)
>>> out.shape, weights.shape
((3, 5, 8), (3, 5, 5))
>>> [name for name, _ in mha.named_parameters()]
['in_proj_weight', 'in_proj_bias', 'out_proj.weight', 'out_proj.bias']
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from core.device import to_device
from core.engine import functional as F
from core.engine.attention import _masked
from core.engine.dispatch import constant, is_tensor
from core.engine.nn import Dropout, LayerNorm, Linear, Module, Parameter
from core.engine.nn_layers import ModuleList
from core.engine.random import generator
from core.engine.tensor import Tensor
from core.errors import ShapeError
from core.observe.source import where

__all__ = ["MultiheadAttention", "TransformerEncoder", "TransformerEncoderLayer"]


class MultiheadAttention(Module):
    """Attention over ``num_heads`` heads of ``embed_dim / num_heads`` each:
    one input projection (``in_proj_weight``, Xavier-uniform, as PyTorch's),
    scaled dot products, masks, softmax, dropout, the output projection."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: str = "cpu",
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: {embed_dim} is not divisible by {num_heads}")
        if (
            add_bias_kv
            or add_zero_attn
            or kdim not in (None, embed_dim)
            or vdim
            not in (
                None,
                embed_dim,
            )
        ):
            raise ValueError(
                "MultiheadAttention: add_bias_kv, add_zero_attn and kdim/vdim other than "
                "embed_dim are not supported"
            )
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.batch_first, self.head_dim = batch_first, embed_dim // num_heads
        bound = math.sqrt(6.0 / (embed_dim + 3 * embed_dim))  # xavier_uniform_ of (3E, E)
        weight = generator().uniform(-bound, bound, (3 * embed_dim, embed_dim))
        self.in_proj_weight = Parameter(to_device(weight.astype(np.float32), device), device=device)
        zeros = np.zeros(3 * embed_dim, np.float32)
        self.in_proj_bias = Parameter(to_device(zeros, device), device=device) if bias else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device)
        if bias:
            self.out_proj.bias = Parameter(to_device(zeros[:embed_dim], device), device=device)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Any = None,
        need_weights: bool = True,
        attn_mask: Any = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        batched = query.ndim == 3
        if query.ndim not in (2, 3) or query.shape[-1] != self.embed_dim:
            raise ShapeError(
                f"MultiheadAttention: query of shape {query.shape}, expected "
                f"(..., {self.embed_dim}){where()}"
            )
        if not batched:
            query, key, value = (t.unsqueeze(0) for t in (query, key, value))
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        n, length, e = query.shape
        w, b = self.in_proj_weight, self.in_proj_bias
        wq, wk, wv = w.chunk(3, 0)
        bq, bk, bv = b.chunk(3, 0) if b is not None else (None, None, None)
        q = self._heads(F.linear(query, wq, bq))
        k = self._heads(F.linear(key, wk, bk))
        v = self._heads(F.linear(value, wv, bv))
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        source = k.shape[-2]
        if is_causal and attn_mask is None:
            attn_mask = constant(np.triu(np.ones((length, source), bool), 1), device=q.device)
        if attn_mask is not None:
            scores = _masked(scores, _allowed(attn_mask, n, self.num_heads, scores))
        if key_padding_mask is not None:
            padding = _allowed(key_padding_mask, n, 1, scores).reshape(n, 1, 1, source)
            scores = _masked(scores, padding)
        weights = scores.softmax(-1)
        if self.dropout and self.training:
            weights = F.dropout(weights, self.dropout)
        out = (weights @ v).transpose(1, 2).reshape(n, length, e)
        out = self.out_proj(out)
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(1)
        return out, (weights if batched else weights.squeeze(0))

    def _heads(self, t: Tensor) -> Tensor:
        n, length, _ = t.shape
        return t.reshape(n, length, self.num_heads, self.head_dim).transpose(1, 2)

    def extra_repr(self) -> str:
        return f"{self.embed_dim}, num_heads={self.num_heads}"


def _allowed(mask: Any, n: int, heads: int, scores: Tensor) -> Tensor:
    """PyTorch's MultiheadAttention masks (True or -inf: do not attend) as
    ``_masked`` takes them: a boolean mask of allowed places, or a float mask."""
    if not is_tensor(mask):
        mask = constant(np.asarray(mask), device=scores.device)
    if mask.ndim == 3:  # (N * heads, L, S)
        mask = mask.reshape(n, heads, *mask.shape[1:])
    if mask.dtype == np.bool_:
        return mask.eq(False)
    return mask


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward network, each with a residual
    connection and layer norm (after by default, before with ``norm_first``),
    as PyTorch's (its defaults: 2048 hidden units, dropout 0.1, ReLU)."""

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: Any = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: str = "cpu",
    ) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention(
            d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first, device=device
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, device=device)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, device=device)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device)
        self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout)
        if isinstance(activation, str):
            if activation not in ("relu", "gelu"):
                raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
            activation = F.relu if activation == "relu" else F.gelu
        object.__setattr__(self, "activation", activation)

    def forward(
        self,
        src: Tensor,
        src_mask: Any = None,
        src_key_padding_mask: Any = None,
        is_causal: bool = False,
    ) -> Tensor:
        x = src
        if self.norm_first:
            x = x + self._attend(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            return x + self._feed(self.norm2(x))
        x = self.norm1(x + self._attend(x, src_mask, src_key_padding_mask, is_causal))
        return self.norm2(x + self._feed(x))

    def _attend(self, x: Tensor, mask: Any, padding: Any, is_causal: bool) -> Tensor:
        out, _ = self.self_attn(
            x,
            x,
            x,
            attn_mask=mask,
            key_padding_mask=padding,
            need_weights=False,
            is_causal=is_causal,
        )
        return self.dropout1(out)

    def _feed(self, x: Tensor) -> Tensor:
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` (each with its own
    parameters, as PyTorch's), then an optional ``norm``."""

    def __init__(self, encoder_layer: Module, num_layers: int, norm: Module | None = None):
        super().__init__()
        self.layers = ModuleList([fresh_copy(encoder_layer) for _ in range(num_layers)])
        self.num_layers, self.norm = num_layers, norm

    def forward(
        self,
        src: Tensor,
        mask: Any = None,
        src_key_padding_mask: Any = None,
        is_causal: bool = False,
    ) -> Tensor:
        x = src
        for layer in self.layers:
            x = layer(x, mask, src_key_padding_mask, is_causal)
        return x if self.norm is None else self.norm(x)


def fresh_copy(module: Module) -> Module:
    """A deep copy of ``module`` whose parameters and buffers are new tensors
    (new ids, the same values)."""
    twin = copy.deepcopy(module)
    for m in twin.modules():
        for name, p in list(m._parameters.items()):
            setattr(m, name, Parameter(p.data.copy(), device=p.device))
        for name, b in list(m._buffers.items()):
            if b is not None:
                m.register_buffer(name, Tensor(b.data.copy(), device=b.device))
    return twin
