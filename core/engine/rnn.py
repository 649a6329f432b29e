"""Recurrent layers with PyTorch's names, parameters and layouts: ``RNNCell``,
``GRUCell``, ``LSTMCell`` and the multi-layer ``RNN``, ``GRU``, ``LSTM``
(``core.nn`` exports them).

Every gate is computed with registered ops, one time step after another, so
a debugger shows each gate of each step as a node and the gradient flowing
back through time. The input's part of every gate is one linear op over the
whole sequence; each step adds the hidden state's part.

>>> import core
>>> from core import nn
>>> core.manual_seed(0)
>>> gru = nn.GRU(input_size=3, hidden_size=4, num_layers=2, batch_first=True)
>>> out, h = gru(core.randn(2, 5, 3))
>>> out.shape, h.shape
((2, 5, 4), (2, 2, 4))
>>> [name for name, _ in gru.named_parameters()][:4]
['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0']
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.device import to_device
from core.engine import functional as F
from core.engine.dispatch import constant
from core.engine.modes import call_scope
from core.engine.nn import Module, Parameter
from core.engine.random import generator
from core.engine.tensor import Tensor
from core.errors import ShapeError
from core.observe.source import where

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell", "RNN", "RNNCell"]

GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


def _param(shape: tuple[int, ...], bound: float, device: str) -> Parameter:
    values = generator().uniform(-bound, bound, size=shape).astype(np.float32)
    return Parameter(to_device(values, device), device=device)


def _split(t: Tensor, n: int) -> tuple[Tensor, ...]:
    return t.chunk(n, -1) if n > 1 else (t,)


def rnn_step(mode: str, gx: Tensor, h: Any, w_hh: Tensor, b_hh: Tensor | None) -> Any:
    """One step of a cell: ``gx`` is the input's part of the gates (x W_ih^T +
    b_ih), ``h`` the state (for LSTM the pair (h, c)); returns the new state."""
    if mode == "LSTM":
        h, c = h
        i, f, g, o = _split(gx + F.linear(h, w_hh, b_hh), 4)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        return o.sigmoid() * c.tanh(), c
    gh = F.linear(h, w_hh, b_hh)
    if mode == "GRU":
        xr, xz, xn = _split(gx, 3)
        hr, hz, hn = _split(gh, 3)
        r = (xr + hr).sigmoid()
        z = (xz + hz).sigmoid()
        n = (xn + r * hn).tanh()
        return n + z * (h - n)  # (1 - z) * n + z * h
    pre = gx + gh
    return pre.tanh() if mode == "RNN_TANH" else pre.relu()


class _Cell(Module):
    mode = "RNN_TANH"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device="cpu"):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        gates = GATES[self.mode] * hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        self.weight_ih = _param((gates, input_size), bound, device)
        self.weight_hh = _param((gates, hidden_size), bound, device)
        self.bias_ih = _param((gates,), bound, device) if bias else None
        self.bias_hh = _param((gates,), bound, device) if bias else None

    def forward(self, x: Tensor, hx: Any = None) -> Any:
        batched = x.ndim == 2
        if not batched:
            x = x.unsqueeze(0)
        if x.shape[-1] != self.input_size:
            raise ShapeError(
                f"{type(self).__name__}: input of shape {x.shape} has {x.shape[-1]} features, "
                f"expected {self.input_size}{where()}"
            )
        zeros = constant(0.0, like=x).expand(x.shape[0], self.hidden_size)
        if hx is None:
            hx = (zeros, zeros) if self.mode == "LSTM" else zeros
        elif not batched:
            hx = tuple(t.unsqueeze(0) for t in hx) if self.mode == "LSTM" else hx.unsqueeze(0)
        gx = F.linear(x, self.weight_ih, self.bias_ih)
        out = rnn_step(self.mode, gx, hx, self.weight_hh, self.bias_hh)
        if not batched:
            out = tuple(t.squeeze(0) for t in out) if self.mode == "LSTM" else out.squeeze(0)
        return out

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


class RNNCell(_Cell):
    """``h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)`` (or relu)."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device="cpu"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(
                f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}"
            )
        object.__setattr__(self, "mode", "RNN_" + nonlinearity.upper())
        super().__init__(input_size, hidden_size, bias, device)


class GRUCell(_Cell):
    """Reset, update and new gates (r, z, n), as PyTorch's GRUCell."""

    mode = "GRU"


class LSTMCell(_Cell):
    """Input, forget, cell and output gates (i, f, g, o); state (h, c)."""

    mode = "LSTM"


class _RNNBase(Module):
    mode = "RNN_TANH"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: str = "cpu",
    ) -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        self.bidirectional = bidirectional
        directions = 2 if bidirectional else 1
        gates = GATES[self.mode] * hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size * directions
            for suffix in ("", "_reverse")[:directions]:
                setattr(self, f"weight_ih_l{layer}{suffix}", _param((gates, width), bound, device))
                setattr(
                    self, f"weight_hh_l{layer}{suffix}", _param((gates, hidden_size), bound, device)
                )
                if bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}", _param((gates,), bound, device))
                    setattr(self, f"bias_hh_l{layer}{suffix}", _param((gates,), bound, device))

    def _weights(self, layer: int, suffix: str) -> tuple:
        get = lambda kind: getattr(self, f"{kind}_l{layer}{suffix}", None)  # noqa: E731
        return get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")

    def forward(self, x: Tensor, hx: Any = None) -> tuple[Tensor, Any]:
        batched = x.ndim == 3
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ShapeError(
                f"{type(self).__name__}: expected input (L, N, {self.input_size}) "
                f"{'(batch_first: (N, L, ...)) ' if self.batch_first else ''}or "
                f"(L, {self.input_size}), got {x.shape}{where()}"
            )
        if not batched:
            x = x.unsqueeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        directions = 2 if self.bidirectional else 1
        states = self._initial(x, hx, batched, directions)
        finals = []
        for layer in range(self.num_layers):
            outputs = []
            for d, suffix in enumerate(("", "_reverse")[:directions]):
                state = states[layer * directions + d]
                prefix = f"l{layer}{suffix}_" if self.num_layers > 1 or d else ""
                weights = self._weights(layer, suffix)
                out, state = self._run(x, state, *weights, reverse=d == 1, name=prefix)
                outputs.append(out)
                finals.append(state)
            x = outputs[0] if directions == 1 else F.cat(outputs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout)
        if self.mode == "LSTM":
            h_n = (F.stack([s[0] for s in finals]), F.stack([s[1] for s in finals]))
        else:
            h_n = F.stack(finals)
        if not batched:
            x = x.squeeze(1)
            h_n = tuple(t.squeeze(1) for t in h_n) if self.mode == "LSTM" else h_n.squeeze(1)
        elif self.batch_first:
            x = x.transpose(0, 1)
        return x, h_n

    def _initial(self, x: Tensor, hx: Any, batched: bool, directions: int) -> list:
        count = self.num_layers * directions
        if hx is None:
            zeros = constant(0.0, like=x).expand(x.shape[1], self.hidden_size)
            return [(zeros, zeros) if self.mode == "LSTM" else zeros] * count
        if self.mode == "LSTM":
            h, c = hx
            if not batched:
                h, c = h.unsqueeze(1), c.unsqueeze(1)
            return [(h[i], c[i]) for i in range(count)]
        if not batched:
            hx = hx.unsqueeze(1)
        if tuple(hx.shape) != (count, x.shape[1], self.hidden_size):
            raise ShapeError(
                f"{type(self).__name__}: hx of shape {hx.shape}, expected "
                f"{(count, x.shape[1], self.hidden_size)}{where()}"
            )
        return [hx[i] for i in range(count)]

    def _run(self, x, state, w_ih, w_hh, b_ih, b_hh, reverse: bool, name: str) -> tuple:
        """One layer in one direction; each time step's ops in a scope of their
        own (``t3``, ``l1_t3``, ``l0_reverse_t3``), a box per step in the graph."""
        gx = F.linear(x, w_ih, b_ih)  # (L, N, gates): the input's part, all steps at once
        steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
        outputs = [None] * x.shape[0]
        for t in steps:
            with call_scope(f"{name}t{t}", "time step"):
                state = rnn_step(self.mode, gx[t], state, w_hh, b_hh)
            outputs[t] = state[0] if self.mode == "LSTM" else state
        return F.stack(outputs), state

    def extra_repr(self) -> str:
        extra = f", num_layers={self.num_layers}" if self.num_layers != 1 else ""
        extra += ", batch_first=True" if self.batch_first else ""
        extra += ", bidirectional=True" if self.bidirectional else ""
        return f"{self.input_size}, {self.hidden_size}{extra}"


class RNN(_RNNBase):
    """Elman RNN layers: ``h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``."""

    def __init__(self, *args: Any, nonlinearity: str = "tanh", **kwargs: Any) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        object.__setattr__(self, "mode", "RNN_" + nonlinearity.upper())
        super().__init__(*args, **kwargs)


class GRU(_RNNBase):
    """Gated recurrent unit layers, as PyTorch's GRU."""

    mode = "GRU"


class LSTM(_RNNBase):
    """Long short-term memory layers, as PyTorch's LSTM; state (h, c)."""

    mode = "LSTM"
