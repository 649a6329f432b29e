"""Convolution, pooling, resizing and padding modules with PyTorch's names
(``core.nn`` exports them).

>>> import core
>>> from core import nn
>>> core.manual_seed(0)
>>> nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1)(core.randn(1, 2, 4, 4)).shape
(1, 3, 8, 8)
>>> nn.AdaptiveAvgPool2d((2, 3))(core.randn(1, 2, 5, 7)).shape
(1, 2, 2, 3)
"""

from __future__ import annotations

import math
from typing import Any

from core.engine import functional as F
from core.engine.nn import Module, _uniform
from core.engine.tensor import Tensor

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "Conv1d",
    "Conv2d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "MaxPool1d",
    "MaxPool2d",
    "PixelShuffle",
    "ReflectionPad2d",
    "ReplicationPad2d",
    "Unflatten",
    "Upsample",
    "ZeroPad2d",
]


class Conv2d(Module):
    """2-D convolution over (N, C, H, W) inputs, with PyTorch's arguments
    (``padding_mode`` "zeros", "reflect", "replicate" or "circular")."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: str = "cpu",
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{type(self).__name__}: channels do not split into {groups} groups")
        kernel = self._size(kernel_size)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.padding_mode = padding_mode
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel
        bound = 1.0 / math.sqrt(in_channels // groups * math.prod(kernel))
        shape = (out_channels, in_channels // groups, *kernel)
        self.weight = _uniform(shape, bound, device)
        self.bias = _uniform((out_channels,), bound, device) if bias else None

    _dims = 2

    def _size(self, v: Any) -> tuple[int, ...]:
        return (int(v),) * self._dims if isinstance(v, int) else tuple(int(a) for a in v)

    def _padded(self, x: Tensor) -> tuple[Tensor, Any]:
        if self.padding_mode == "zeros" or isinstance(self.padding, str):
            return x, self.padding
        amounts = [p for p in self._size(self.padding)[::-1] for _ in (0, 1)]
        return F.pad(x, amounts, mode=self.padding_mode), 0

    def forward(self, x: Tensor) -> Tensor:
        x, padding = self._padded(x)
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )


class MaxPool2d(Module):
    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        dilation: Any = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool2d(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
        )


class AvgPool2d(Module):
    def __init__(
        self,
        kernel_size: Any,
        stride: Any = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


class Conv1d(Conv2d):
    """1-D convolution over (N, C, L) inputs."""

    _dims = 1

    def forward(self, x: Tensor) -> Tensor:
        x, padding = self._padded(x)
        return F.conv1d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class ConvTranspose2d(Module):
    """The transposed 2-D convolution (weight (C_in, C_out / groups, kh, kw))."""

    _dims = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        output_padding: Any = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Any = 1,
        device: str = "cpu",
    ) -> None:
        super().__init__()
        if isinstance(kernel_size, int):
            kernel = (kernel_size,) * self._dims
        else:
            kernel = tuple(kernel_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel
        self.stride, self.padding, self.output_padding = stride, padding, output_padding
        self.groups, self.dilation = groups, dilation
        bound = 1.0 / math.sqrt(out_channels // groups * math.prod(kernel))
        self.weight = _uniform((in_channels, out_channels // groups, *kernel), bound, device)
        self.bias = _uniform((out_channels,), bound, device) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        transpose = F.conv_transpose2d if self._dims == 2 else F.conv_transpose1d
        return transpose(
            x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.output_padding,
            self.groups,
            self.dilation,
        )

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"


class ConvTranspose1d(ConvTranspose2d):
    """The transposed 1-D convolution (weight (C_in, C_out / groups, k))."""

    _dims = 1


class MaxPool1d(MaxPool2d):
    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool1d(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            self.ceil_mode,
            self.return_indices,
        )


class AvgPool1d(AvgPool2d):
    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool1d(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
        )


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(x, self.output_size)


class AdaptiveMaxPool2d(AdaptiveAvgPool2d):
    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_max_pool2d(x, self.output_size)


class AdaptiveAvgPool1d(AdaptiveAvgPool2d):
    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool1d(x, self.output_size)


class Upsample(Module):
    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None):
        super().__init__()
        self.size, self.scale_factor = size, scale_factor
        self.mode, self.align_corners = mode, align_corners

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners)


class _Pad2d(Module):
    mode = "constant"

    def __init__(self, padding: Any, value: float = 0.0) -> None:
        super().__init__()
        self.padding = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
        self.value = value

    def forward(self, x: Tensor) -> Tensor:
        value = self.value if self.mode == "constant" else None
        return F.pad(x, self.padding, mode=self.mode, value=value)


class ZeroPad2d(_Pad2d):
    pass


class ReflectionPad2d(_Pad2d):
    mode = "reflect"


class ReplicationPad2d(_Pad2d):
    mode = "replicate"


class PixelShuffle(Module):
    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = upscale_factor

    def forward(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(x, self.upscale_factor)


class Unflatten(Module):
    def __init__(self, dim: int, unflattened_size: Any) -> None:
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x: Tensor) -> Tensor:
        return x.unflatten(self.dim, self.unflattened_size)
