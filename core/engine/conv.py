"""Convolution, pooling, resizing and padding with PyTorch's arguments
(``core.functional`` exports them): ``conv1d``, ``conv2d`` with dilation
and groups, ``conv_transpose1d/2d``, pooling with padding and ``ceil_mode``,
and the padding modes (resizing is in ``core.engine.resize``).

Each is the ``conv2d``, ``fold``, pooling, matmul, index or pad op, or a
short composition of them: a dilated kernel is the kernel spread out with
zeros between its taps; groups convolve slices of the channels and join
them; a transposed convolution is ``fold`` of the weight times the input (the
gradient of a convolution); reflect and replicate padding index.

>>> import core
>>> import core.functional as F
>>> x = core.arange(16.0).reshape(1, 1, 4, 4)
>>> F.max_pool2d(x, 3, stride=2, padding=1).tolist()
[[[[5.0, 7.0], [13.0, 15.0]]]]
>>> F.pad(core.tensor([[1.0, 2.0, 3.0]]), (2, 1), mode="reflect").tolist()
[[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.engine import indexing
from core.engine.dispatch import apply, constant
from core.engine.ops import Op
from core.engine.tensor import Tensor
from core.errors import ShapeError
from core.observe.source import where


def pair(v: Any, n: int = 2) -> tuple[int, ...]:
    if type(v) is int:
        return (v,) * n
    if isinstance(v, np.integer):
        return (int(v),) * n
    out = tuple(int(a) for a in v)
    if len(out) != n:
        raise ValueError(f"expected {n} values, got {v!r}")
    return out


# -- padding -------------------------------------------------------------------------


def pad(x: Tensor, pad: Sequence[Any], mode: str = "constant", value: float | None = None):
    """Pad (or, with negative amounts, crop). ``pad`` is PyTorch's flat
    (left, right, top, bottom, ...) from the last axis, or NumPy's
    ((before, after), ...) per axis; ``mode`` "constant", "reflect",
    "replicate" or "circular", as ``torch.nn.functional.pad``."""
    pad = list(pad)
    if pad and not isinstance(pad[0], tuple | list):
        if len(pad) % 2:
            raise ShapeError(f"pad: an odd number of amounts {pad}{where()}")
        pairs = [(int(pad[i]), int(pad[i + 1])) for i in range(0, len(pad), 2)]
        pairs = [(0, 0)] * (x.ndim - len(pairs)) + pairs[::-1]
    else:
        pairs = [(int(a), int(b)) for a, b in pad]
    if len(pairs) != x.ndim:
        raise ShapeError(f"pad: {len(pairs)} pairs given for a {x.ndim}-d tensor{where()}")
    if any(lo < 0 or hi < 0 for lo, hi in pairs):  # negative amounts crop
        crop = tuple(slice(max(-lo, 0), n - max(-hi, 0)) for (lo, hi), n in zip(pairs, x.shape))
        x = x[crop]
        pairs = [(max(lo, 0), max(hi, 0)) for lo, hi in pairs]
    if all(p == (0, 0) for p in pairs):
        return x
    if mode == "constant":
        fill = 0.0 if value is None else float(value)
        return apply(Op.PAD, (x,), {"pad": tuple(pairs), "value": fill})
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(
            f"pad: mode must be constant, reflect, replicate or circular, not {mode!r}"
        )
    for axis, (lo, hi) in enumerate(pairs):
        if lo or hi:
            index = _pad_index(x.shape[axis], lo, hi, mode)
            x = x[(slice(None),) * axis + (constant(index, device=x.device),)]
    return x


def _pad_index(n: int, lo: int, hi: int, mode: str) -> np.ndarray:
    positions = np.arange(-lo, n + hi)
    if mode == "replicate":
        return np.clip(positions, 0, n - 1)
    if mode == "circular":
        if lo > n or hi > n:
            raise ShapeError(f"pad: circular padding of {max(lo, hi)} is larger than {n}")
        return positions % n
    if lo >= n or hi >= n:
        raise ShapeError(f"pad: reflect padding of {max(lo, hi)} needs a size above it, got {n}")
    period = 2 * (n - 1) if n > 1 else 1
    folded = np.abs(positions) % period
    return np.where(folded >= n, period - folded, folded)


# -- convolution -----------------------------------------------------------------------


def _dilate(weight: Tensor, dilation: tuple[int, int]) -> Tensor:
    """The kernel with ``dilation - 1`` zeros between its taps."""
    if dilation == (1, 1):
        return weight
    o, c, kh, kw = weight.shape
    dh, dw = dilation
    shape = (o, c, dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    spec, _ = indexing.encode(
        (slice(None), slice(None), slice(None, None, dh), slice(None, None, dw))
    )
    return apply(Op.SCATTER_ADD, (weight,), {"shape": shape, "index": spec})


def _same_padding(weight: Tensor, dilation: tuple[int, int], stride: Any) -> tuple[int, int]:
    if pair(stride) != (1, 1):
        raise ValueError("conv2d: padding='same' needs stride 1")
    sizes = [d * (k - 1) for d, k in zip(dilation, weight.shape[2:])]
    if any(s % 2 for s in sizes):
        raise ValueError("conv2d: padding='same' with an even kernel extent is not supported")
    return sizes[0] // 2, sizes[1] // 2


def conv2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> Tensor:
    """2-D cross-correlation of (N, C, H, W) with (O, C / groups, kh, kw), as
    PyTorch's (``padding`` may be "valid" or "same")."""
    dilation = pair(dilation)
    if isinstance(padding, str):
        padding = (0, 0) if padding == "valid" else _same_padding(weight, dilation, stride)
    if input.ndim != 4 or weight.ndim != 4:
        raise ShapeError(
            f"conv2d: needs (N, C, H, W) input and (O, C, kh, kw) weight, got {input.shape} "
            f"and {weight.shape}{where()}"
        )
    weight = _dilate(weight, dilation)
    attrs = {"stride": pair(stride), "padding": pair(padding)}
    if groups == 1:
        inputs = (input, weight) if bias is None else (input, weight, bias)
        return apply(Op.CONV2D, inputs, attrs)
    if input.shape[1] % groups or weight.shape[0] % groups:
        raise ShapeError(
            f"conv2d: {input.shape[1]} input and {weight.shape[0]} output channels do not "
            f"split into {groups} groups{where()}"
        )
    xs, ws = input.chunk(groups, 1), weight.chunk(groups, 0)
    bs = bias.chunk(groups, 0) if bias is not None else [None] * groups
    outs = [
        apply(Op.CONV2D, (x, w) if b is None else (x, w, b), attrs)
        for x, w, b in zip(xs, ws, bs, strict=True)
    ]
    return apply(Op.CONCAT, tuple(outs), {"axis": 1})


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """1-D cross-correlation of (N, C, L) with (O, C / groups, k): ``conv2d`` of height 1."""
    if isinstance(padding, str):
        pad2 = padding
    else:
        pad2 = (0, pair(padding, 1)[0])
    out = conv2d(
        input.unsqueeze(2),
        weight.unsqueeze(2),
        bias,
        (1, pair(stride, 1)[0]),
        pad2,
        (1, pair(dilation, 1)[0]),
        groups,
    )
    return out.squeeze(2)


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Tensor:
    """The adjoint of ``conv2d`` (weight (C_in, C_out / groups, kh, kw)), as
    PyTorch's: ``fold`` of the weight's columns times the input."""
    stride, padding, output_padding = pair(stride), pair(padding), pair(output_padding)
    if groups > 1:
        xs, ws = input.chunk(groups, 1), weight.chunk(groups, 0)
        outs = [
            conv_transpose2d(x, w, None, stride, padding, output_padding, 1, dilation)
            for x, w in zip(xs, ws, strict=True)
        ]
        out = apply(Op.CONCAT, tuple(outs), {"axis": 1})
        return out if bias is None else out + bias.reshape(-1, 1, 1)
    weight = _dilate(weight, pair(dilation))
    n, c_in, h, w = input.shape
    _c, c_out, kh, kw = weight.shape
    if c_in != weight.shape[0]:
        raise ShapeError(
            f"conv_transpose2d: input has {c_in} channels, the weight expects "
            f"{weight.shape[0]}{where()}"
        )
    size = tuple(
        (n_in - 1) * s - 2 * p + k + op
        for n_in, s, p, k, op in zip((h, w), stride, padding, (kh, kw), output_padding)
    )
    cols = weight.reshape(c_in, c_out * kh * kw).T @ input.reshape(n, c_in, h * w)
    attrs = {"size": size, "kernel": (kh, kw), "stride": stride, "padding": padding}
    out = apply(Op.FOLD, (cols,), attrs)
    return out if bias is None else out + bias.reshape(-1, 1, 1)


def conv_transpose1d(
    input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
) -> Tensor:
    """``conv_transpose2d`` over (N, C, L) as an image of height 1."""
    out = conv_transpose2d(
        input.unsqueeze(2),
        weight.unsqueeze(2),
        bias,
        (1, pair(stride, 1)[0]),
        (0, pair(padding, 1)[0]),
        (0, pair(output_padding, 1)[0]),
        groups,
        (1, pair(dilation, 1)[0]),
    )
    return out.squeeze(2)


# -- pooling ---------------------------------------------------------------------------


def _pool_geometry(shape, kernel, stride, padding, ceil_mode):
    """(padding before, padding after) per spatial axis, so that the plain
    pooling op gives PyTorch's output size (ceil_mode adds room at the end)."""
    pads = []
    for n, k, s, p in zip(shape[-2:], kernel, stride, padding):
        if 2 * p > k:
            raise ShapeError(f"pooling: padding {p} is more than half the kernel {k}{where()}")
        span = n + 2 * p - k
        out = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (out - 1) * s >= n + p:  # the last window must start inside
            out -= 1
        pads.append((p, max((out - 1) * s + k - n - p, 0)))  # rows left over are unused
    return pads


def max_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor:
    """The largest value of each window; padding is -inf, as PyTorch's."""
    kernel = pair(kernel_size)
    stride = kernel if stride is None else pair(stride)
    if dilation not in (1, (1, 1)) or return_indices:
        raise ValueError("max_pool2d: dilation and return_indices are not supported")
    if padding == 0 and not ceil_mode:  # the plain op as it is
        return apply(Op.MAX_POOL2D, (input,), {"kernel": kernel, "stride": stride})
    pads = _pool_geometry(input.shape, kernel, stride, pair(padding), ceil_mode)
    if any(p != (0, 0) for p in pads):
        spec = ((0, 0),) * (input.ndim - 2) + tuple(pads)
        input = apply(Op.PAD, (input,), {"pad": spec, "value": -math.inf})
    return apply(Op.MAX_POOL2D, (input,), {"kernel": kernel, "stride": stride})


def avg_pool2d(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """The mean of each window, as PyTorch's: zero padding counts in the
    divisor unless ``count_include_pad=False``; the room ``ceil_mode`` adds
    never counts."""
    kernel = pair(kernel_size)
    stride = kernel if stride is None else pair(stride)
    padding = pair(padding)
    pads = _pool_geometry(input.shape, kernel, stride, padding, ceil_mode)
    attrs = {"kernel": kernel, "stride": stride}
    if all(p == (0, 0) for p in pads) and divisor_override is None:
        return apply(Op.AVG_POOL2D, (input,), attrs)
    spec = ((0, 0),) * (input.ndim - 2) + tuple(pads)
    padded = apply(Op.PAD, (input,), {"pad": spec, "value": 0.0})
    area = kernel[0] * kernel[1]
    sums = apply(Op.AVG_POOL2D, (padded,), attrs) * float(area)
    if divisor_override is not None:
        return sums / float(divisor_override)
    counted = np.zeros(padded.shape[-2:])  # the places the divisor counts
    h, w = input.shape[-2:]
    (top, _), (left, _) = pads
    if count_include_pad:
        counted[: h + 2 * padding[0], : w + 2 * padding[1]] = 1.0
    else:
        counted[top : top + h, left : left + w] = 1.0
    windows = np.lib.stride_tricks.sliding_window_view(counted, kernel)[:: stride[0], :: stride[1]]
    counts = windows.sum(axis=(-2, -1))
    return sums / constant(counts, like=input)


def max_pool1d(
    input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
) -> Tensor:
    """``max_pool2d`` over (N, C, L) as an image of height 1."""
    stride = kernel_size if stride is None else stride
    out = max_pool2d(
        input.unsqueeze(2),
        (1, pair(kernel_size, 1)[0]),
        (1, pair(stride, 1)[0]),
        (0, pair(padding, 1)[0]),
        dilation,
        ceil_mode,
        return_indices,
    )
    return out.squeeze(2)


def avg_pool1d(
    input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True
) -> Tensor:
    """``avg_pool2d`` over (N, C, L) as an image of height 1."""
    stride = kernel_size if stride is None else stride
    out = avg_pool2d(
        input.unsqueeze(2),
        (1, pair(kernel_size, 1)[0]),
        (1, pair(stride, 1)[0]),
        (0, pair(padding, 1)[0]),
        ceil_mode,
        count_include_pad,
    )
    return out.squeeze(2)
