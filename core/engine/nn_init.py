"""``torch.nn.init``: fill a parameter in place (under ``no_grad``), with
PyTorch's names, fan computations and gains (``core.nn.init``). Random values
come from the global seeded generator, so a seeded model is repeatable (they
are not PyTorch's random numbers).

>>> import core
>>> from core import nn
>>> core.manual_seed(0)
>>> layer = nn.Linear(300, 200)
>>> _ = nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
>>> bound = (6 / 300) ** 0.5
>>> bool(abs(layer.weight.numpy()).max() <= bound), round(nn.init.calculate_gain("tanh"), 4)
(True, 1.6667)
>>> nn.init.zeros_(layer.bias).numpy().any()
np.False_
"""

from __future__ import annotations

import math

import numpy as np

from core.device import to_device
from core.engine.dispatch import constant
from core.engine.modes import no_grad
from core.engine.random import generator
from core.engine.tensor import Tensor


def _write(t: Tensor, values: np.ndarray) -> Tensor:
    with no_grad():
        t.copy_(constant(to_device(values.astype(t.dtype), t.device), device=t.device))
    return t


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended scale for weights feeding ``nonlinearity``, as PyTorch's."""
    linear = (
        "linear",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "sigmoid",
    )
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _fans(t: Tensor) -> tuple[int, int]:
    if t.ndim < 2:
        raise ValueError("fan in and fan out need a tensor with at least 2 dims")
    receptive = math.prod(t.shape[2:])
    return t.shape[1] * receptive, t.shape[0] * receptive


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    return _write(t, generator().uniform(a, b, t.shape))


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    return _write(t, generator().normal(mean, std, t.shape))


def trunc_normal_(t: Tensor, mean=0.0, std=1.0, a=-2.0, b=2.0) -> Tensor:
    """Normal values redrawn until they fall in [a, b]."""
    values = generator().normal(mean, std, t.shape)
    outside = (values < a) | (values > b)
    while outside.any():
        values[outside] = generator().normal(mean, std, int(outside.sum()))
        outside = (values < a) | (values > b)
    return _write(t, values)


def constant_(t: Tensor, val: float) -> Tensor:
    return _write(t, np.full(t.shape, val))


def zeros_(t: Tensor) -> Tensor:
    return constant_(t, 0.0)


def ones_(t: Tensor) -> Tensor:
    return constant_(t, 1.0)


def eye_(t: Tensor) -> Tensor:
    return _write(t, np.eye(*t.shape))


def xavier_uniform_(t: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _fans(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound)


def xavier_normal_(t: Tensor, gain: float = 1.0) -> Tensor:
    fan_in, fan_out = _fans(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(t: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    fan_in, fan_out = _fans(t)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform_(t, -bound, bound)


def kaiming_normal_(
    t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity))


def orthogonal_(t: Tensor, gain: float = 1.0) -> Tensor:
    """A (semi-)orthogonal matrix from the QR decomposition of normal values."""
    rows = t.shape[0]
    cols = t.numel() // max(rows, 1)
    flat = generator().standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _write(t, gain * q.reshape(t.shape))
