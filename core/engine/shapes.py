"""Shape and dtype rules shared by the op definitions: ``infer(shapes, dtypes,
attrs)`` gives each output's (shape, dtype) without computing anything.

>>> import numpy as np
>>> broadcast([(3, 1), (4,)], [np.dtype("float32")] * 2, {})
((3, 4), dtype('float32'))
>>> reduced([(2, 3, 4)], [np.dtype("float64")], {"axis": (1,), "keepdims": False})
((2, 4), dtype('float64'))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Shape = tuple[int, ...]
_BOOL = np.dtype(bool)


def same(shapes: Sequence[Shape], dtypes: Sequence[Any], attrs: dict) -> tuple:
    """The first input's shape and dtype."""
    return tuple(shapes[0]), np.dtype(dtypes[0])


def broadcast(shapes: Sequence[Shape], dtypes: Sequence[Any], attrs: dict) -> tuple:
    """NumPy broadcasting of every input, NumPy's promotion of their dtypes."""
    return np.broadcast_shapes(*shapes), np.result_type(*dtypes)


def floating(dtype: Any) -> np.dtype:
    """The dtype a float function (exp, tanh) of ``dtype`` gives in NumPy."""
    return np.result_type(dtype, np.float16)


def broadcast_float(shapes: Sequence[Shape], dtypes: Sequence[Any], attrs: dict) -> tuple:
    shape, dtype = broadcast(shapes, dtypes, attrs)
    return shape, floating(dtype)


def same_float(shapes: Sequence[Shape], dtypes: Sequence[Any], attrs: dict) -> tuple:
    return tuple(shapes[0]), floating(dtypes[0])


def compare(shapes: Sequence[Shape], dtypes: Sequence[Any], attrs: dict) -> tuple:
    return np.broadcast_shapes(*shapes), _BOOL


def reduce_shape(shape: Shape, axis: tuple[int, ...] | None, keepdims: bool) -> Shape:
    if axis is None:
        return (1,) * len(shape) if keepdims else ()
    if keepdims:
        return tuple(1 if i in axis else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axis)


def reduced(shapes: Sequence[Shape], dtypes: Sequence[Any], attrs: dict) -> tuple:
    """A reduction over ``attrs["axis"]`` (None: all), keeping dims or not."""
    shape = reduce_shape(tuple(shapes[0]), attrs["axis"], attrs["keepdims"])
    return shape, np.dtype(dtypes[0])


def scalar(shapes: Sequence[Shape], dtypes: Sequence[Any], attrs: dict) -> tuple:
    """A loss: one number of the first input's dtype."""
    return (), np.dtype(dtypes[0])


def fixed(shape_attr: str) -> Any:
    """The shape is the attribute ``shape_attr``, the dtype the first input's."""

    def infer(shapes: Sequence[Shape], dtypes: Sequence[Any], attrs: dict) -> tuple:
        return tuple(attrs[shape_attr]), np.dtype(dtypes[0])

    return infer
