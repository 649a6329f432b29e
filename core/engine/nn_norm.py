"""Normalization modules with PyTorch's names: ``BatchNorm1d/2d``,
``InstanceNorm1d/2d``, ``GroupNorm``, ``RMSNorm`` (``core.nn`` exports them).

Running statistics are explicit state: buffers made when the module is made,
updated by in-place ops under ``no_grad`` in training mode, read in eval mode.

>>> import core
>>> from core import nn
>>> bn = nn.BatchNorm1d(2)
>>> x = core.tensor([[1.0, 10.0], [3.0, 30.0]])
>>> [round(v, 4) for v in bn(x)[0].tolist()]
[-1.0, -1.0]
>>> [round(v, 4) for v in bn.running_mean.tolist() + bn.running_var.tolist()]
[0.2, 2.0, 1.1, 20.9]
>>> _ = bn.eval()
>>> [round(v, 3) for v in bn(x)[0].tolist()]
[0.763, 1.75]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.device import xp_for
from core.engine.dispatch import leaf
from core.engine.modes import no_grad
from core.engine.nn import Module, Parameter
from core.engine.norms import batch_norm, group_norm, instance_norm, rms_norm
from core.engine.tensor import Tensor
from core.errors import ShapeError
from core.observe.source import where

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "RMSNorm",
]


def _state(values: np.ndarray, device: str, name: str) -> Tensor:
    return leaf(xp_for(device).asarray(values), device, False, "state", name)


class _Norm(Module):
    """Per-channel affine parameters and, when tracked, running statistics."""

    dims: tuple[int, ...] = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: str = "cpu",
    ) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        ones, zeros = np.ones(num_features, np.float32), np.zeros(num_features, np.float32)
        self.weight = Parameter(xp_for(device).asarray(ones), device=device) if affine else None
        self.bias = Parameter(xp_for(device).asarray(zeros), device=device) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", _state(zeros, device, "running_mean"))
            self.register_buffer("running_var", _state(ones, device, "running_var"))
            count = _state(np.zeros((), np.int64), device, "num_batches_tracked")
            self.register_buffer("num_batches_tracked", count)
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def _check(self, x: Tensor) -> None:
        if x.ndim not in self.dims:
            raise ShapeError(
                f"{type(self).__name__}: expected a {' or '.join(map(str, self.dims))}-d input, "
                f"got shape {x.shape}{where()}"
            )
        if x.shape[1] != self.num_features:
            raise ShapeError(
                f"{type(self).__name__}({self.num_features}): input of shape {x.shape} has "
                f"{x.shape[1]} channels{where()}"
            )

    def _momentum(self, x: Tensor) -> Any:
        """The factor the running statistics move by this step."""
        if not (self.training and self.track_running_stats):
            return self.momentum or 0.0
        with no_grad():
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # a cumulative average: 1 / batches seen
                return 1.0 / self.num_batches_tracked.astype(x.dtype)
        return self.momentum

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class _BatchNorm(_Norm):
    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        momentum = self._momentum(x)
        use_batch = self.training or self.running_mean is None
        return batch_norm(
            x,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight,
            self.bias,
            use_batch,
            momentum,
            self.eps,
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) inputs, per channel."""

    dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) inputs, per channel."""

    dims = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch normalization of (N, C, D, H, W) inputs, per channel."""

    dims = (5,)


class _InstanceNorm(_Norm):
    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device: str = "cpu",
    ):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device)

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        momentum = self._momentum(x)
        use_input = self.training or not self.track_running_stats
        return instance_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            use_input,
            momentum,
            self.eps,
        )


class InstanceNorm1d(_InstanceNorm):
    dims = (3,)


class InstanceNorm2d(_InstanceNorm):
    dims = (4,)


class GroupNorm(Module):
    """Group normalization: channels in ``num_groups`` groups, per sample."""

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: str = "cpu",
    ) -> None:
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: {num_channels} channels, {num_groups} groups")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        xp = xp_for(device)
        ones, zeros = np.ones(num_channels, np.float32), np.zeros(num_channels, np.float32)
        self.weight = Parameter(xp.asarray(ones), device=device) if affine else None
        self.bias = Parameter(xp.asarray(zeros), device=device) if affine else None

    def forward(self, x: Tensor) -> Tensor:
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}"


class RMSNorm(Module):
    """RMS normalization over the last dims, with a learned scale."""

    def __init__(
        self,
        normalized_shape: Any,
        eps: float | None = None,
        elementwise_affine: bool = True,
        device: str = "cpu",
    ) -> None:
        super().__init__()
        shape = (
            (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        )
        self.normalized_shape, self.eps = shape, eps
        ones = xp_for(device).ones(shape, np.float32)
        self.weight = Parameter(ones, device=device) if elementwise_affine else None

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"
