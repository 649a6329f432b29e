"""Resizing with PyTorch's names: adaptive average and max pooling and
``interpolate`` ("nearest", "linear", "bilinear"), ``core.functional``
exports them. Adaptive averages and interpolations multiply by constant
matrices (one per resized axis), so the gradients are matmuls.

>>> import core
>>> import core.functional as F
>>> F.interpolate(core.tensor([[[1.0, 3.0]]]), scale_factor=2, mode="linear").tolist()
[[[1.0, 1.5, 2.5, 3.0]]]
>>> F.adaptive_avg_pool1d(core.tensor([[[1.0, 2.0, 3.0, 4.0, 5.0]]]), 2).tolist()
[[[2.0, 4.0]]]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from core.engine.conv import max_pool2d, pair
from core.engine.dispatch import apply, constant
from core.engine.ops import Op
from core.engine.tensor import Tensor


def _average_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Rows averaging PyTorch's adaptive windows [floor(i n/o), ceil((i+1) n/o))."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        start, stop = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        m[i, start:stop] = 1.0 / (stop - start)
    return m


def adaptive_avg_pool2d(input: Tensor, output_size: Any) -> Tensor:
    """Average pooling to ``output_size`` (None keeps a size), as PyTorch's."""
    size = output_size if isinstance(output_size, tuple | list) else (output_size,) * 2
    h, w = input.shape[-2:]
    oh, ow = (h if size[0] is None else size[0]), (w if size[1] is None else size[1])
    rows = constant(_average_matrix(h, oh), like=input)
    cols = constant(_average_matrix(w, ow).T, like=input)
    return rows @ input @ cols


def adaptive_max_pool2d(input: Tensor, output_size: Any, return_indices: bool = False):
    """The largest value of each of PyTorch's adaptive windows."""
    if return_indices:
        raise ValueError("adaptive_max_pool2d: return_indices is not supported")
    size = output_size if isinstance(output_size, tuple | list) else (output_size,) * 2
    h, w = input.shape[-2:]
    oh, ow = (h if size[0] is None else size[0]), (w if size[1] is None else size[1])
    if h % oh == 0 and w % ow == 0 and input.ndim == 4:
        return max_pool2d(input, (h // oh, w // ow))
    rows = []
    for i in range(oh):
        top, bottom = (i * h) // oh, -(-((i + 1) * h) // oh)
        cells = []
        for j in range(ow):
            left, right = (j * w) // ow, -(-((j + 1) * w) // ow)
            cells.append(input[..., top:bottom, left:right].amax((-2, -1)))
        rows.append(apply(Op.STACK, tuple(cells), {"axis": input.ndim - 2}))
    return apply(Op.STACK, tuple(rows), {"axis": input.ndim - 2})


def adaptive_avg_pool1d(input: Tensor, output_size: int) -> Tensor:
    cols = constant(_average_matrix(input.shape[-1], int(output_size)).T, like=input)
    return input @ cols


# -- resizing ------------------------------------------------------------------------


def _resize_matrix(n_in: int, n_out: int, mode: str, align: bool, scale: float | None):
    """Rows giving each output position from the input positions."""
    m = np.zeros((n_out, n_in))
    ratio = (1.0 / scale) if scale else n_in / n_out
    for i in range(n_out):
        if mode == "nearest":
            m[i, min(int(math.floor(i * ratio)), n_in - 1)] = 1.0
            continue
        if align:
            src = i * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            src = max((i + 0.5) * ratio - 0.5, 0.0)
        lo = min(int(math.floor(src)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        frac = src - lo
        m[i, lo] += 1.0 - frac
        m[i, hi] += frac
    return m


def interpolate(
    input: Tensor,
    size: Any = None,
    scale_factor: Any = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
) -> Tensor:
    """Resize the spatial dims of (N, C, L) or (N, C, H, W): "nearest",
    "linear" or "bilinear", as ``torch.nn.functional.interpolate``."""
    spatial = input.ndim - 2
    if spatial not in (1, 2) or mode not in ("nearest", "linear", "bilinear"):
        raise ValueError(
            f"interpolate: supports nearest, linear and bilinear on 3-d and 4-d inputs, "
            f"got mode {mode!r} on shape {input.shape}"
        )
    if mode != "nearest" and {"linear": 1, "bilinear": 2}[mode] != spatial:
        raise ValueError(f"interpolate: {mode} needs a {2 + spatial}-d input, got {input.shape}")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    sizes = input.shape[2:]
    if size is not None:
        outs = pair(size, spatial)
        scales = (None,) * spatial
    else:
        factors = scale_factor if isinstance(scale_factor, tuple | list) else (scale_factor,)
        scales = tuple(float(s) for s in factors) * (spatial if len(factors) == 1 else 1)
        outs = tuple(int(math.floor(n * s)) for n, s in zip(sizes, scales))
        if recompute_scale_factor:
            scales = (None,) * spatial
    align = bool(align_corners)
    out = input
    for axis, (n_in, n_out, scale) in enumerate(zip(sizes, outs, scales)):
        m = constant(_resize_matrix(n_in, n_out, mode, align, scale), like=input)
        if axis == spatial - 1:  # the last axis: (..., n_in) @ (n_in, n_out)
            out = out @ m.T
        else:
            out = m @ out
    return out
