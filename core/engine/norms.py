"""Normalization with PyTorch's names: ``batch_norm``, ``group_norm``,
``instance_norm`` and ``rms_norm`` (``core.functional`` exports them). Each
is a composition of registered ops (means, variances, a square root), so
every statistic is a node a debugger shows and the gradients, second ones
included, come from the ops' rules.

The modules are in ``core.engine.nn_norm``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.engine.dispatch import lift
from core.engine.modes import no_grad
from core.engine.tensor import Tensor
from core.errors import ShapeError
from core.observe.source import where


def _channels(t: Tensor, ndim: int) -> Tensor:
    """A per-channel vector shaped to broadcast over (N, C, ...)."""
    return t.reshape(-1, *([1] * (ndim - 2)))


def _affine(out: Tensor, weight: Any, bias: Any) -> Tensor:
    if weight is not None:
        out = out * _channels(lift(weight, out), out.ndim)
    if bias is not None:
        out = out + _channels(lift(bias, out), out.ndim)
    return out


def batch_norm(
    input: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Any = None,
    bias: Any = None,
    training: bool = False,
    momentum: Any = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each channel of (N, C, ...) by the batch's statistics
    (training; the running ones move by ``momentum`` towards them, the
    variance unbiased) or by the running statistics (eval), as PyTorch's."""
    if input.ndim < 2:
        raise ShapeError(f"batch_norm: input must be (N, C, ...), got {input.shape}{where()}")
    axes = (0, *range(2, input.ndim))
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: eval mode needs running_mean and running_var")
        mean = _channels(running_mean, input.ndim)
        var = _channels(running_var, input.ndim)
    else:
        count = math.prod(input.shape[a] for a in axes)
        if count <= 1:
            raise ShapeError(
                f"batch_norm: expected more than 1 value per channel when training, got "
                f"input of shape {input.shape}{where()}"
            )
        mean = input.mean(axes, keepdim=True)
        var = input.var(axes, keepdim=True, correction=0)
        if running_mean is not None and running_var is not None:
            with no_grad():
                running_mean.lerp_(mean.reshape(-1), momentum)
                running_var.lerp_(var.reshape(-1) * (count / (count - 1)), momentum)
    out = (input - mean) / (var + eps).sqrt()
    return _affine(out, weight, bias)


def instance_norm(
    input: Tensor,
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Any = None,
    bias: Any = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalize each (sample, channel) over its spatial positions."""
    if input.ndim < 3:
        raise ShapeError(f"instance_norm: input must be (N, C, L, ...), got {input.shape}")
    axes = tuple(range(2, input.ndim))
    if not use_input_stats:
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    mean = input.mean(axes, keepdim=True)
    var = input.var(axes, keepdim=True, correction=0)
    if running_mean is not None and running_var is not None:
        count = math.prod(input.shape[a] for a in axes)
        with no_grad():
            running_mean.lerp_(mean.mean(0).reshape(-1), momentum)
            unbiased = var.mean(0).reshape(-1) * (count / max(count - 1, 1))
            running_var.lerp_(unbiased, momentum)
    return _affine((input - mean) / (var + eps).sqrt(), weight, bias)


def group_norm(
    input: Tensor, num_groups: int, weight: Any = None, bias: Any = None, eps: float = 1e-5
) -> Tensor:
    """Normalize each sample over groups of ``C / num_groups`` channels."""
    n, c = input.shape[:2]
    if c % num_groups:
        raise ShapeError(f"group_norm: {c} channels do not split into {num_groups} groups{where()}")
    grouped = input.reshape(n, num_groups, -1)
    mean = grouped.mean(2, keepdim=True)
    var = grouped.var(2, keepdim=True, correction=0)
    out = ((grouped - mean) / (var + eps).sqrt()).reshape(*input.shape)
    return _affine(out, weight, bias)


def rms_norm(
    input: Tensor, normalized_shape: Any, weight: Any = None, eps: float | None = None
) -> Tensor:
    """``x / sqrt(mean(x**2) + eps) * weight`` over the last dims (``eps``
    defaults to the dtype's machine epsilon, as PyTorch's)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(shape) :]) != shape:
        raise ShapeError(f"rms_norm: input of shape {input.shape} does not end in {shape}{where()}")
    if eps is None:
        eps = float(np.finfo(input.dtype).eps)
    axes = tuple(range(input.ndim - len(shape), input.ndim))
    out = input * ((input * input).mean(axes, keepdim=True) + eps).rsqrt()
    return out if weight is None else out * lift(weight, input)
