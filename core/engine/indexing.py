"""Indexing as plain data: an index (``x[1:, None, idx]``) becomes a spec of
numbers, strings and tuples (an op attribute, JSON-ready) and a list of index
arrays (op inputs, so a tracer sees them as values).

>>> spec, arrays = encode((slice(1, None), None, Ellipsis, 2))
>>> spec
(('slice', 1, None, None), ('newaxis',), ('ellipsis',), 2)
>>> decode(spec, []) == (slice(1, None), None, Ellipsis, 2)
True
>>> describe(spec)
'[1:, None, ..., 2]'
"""

from __future__ import annotations

from typing import Any

import numpy as np


def encode(index: Any, is_array: Any = None) -> tuple[tuple, list[Any]]:
    """(spec, arrays): ``index`` with slices, None and Ellipsis as tuples and
    every array (or list, or object ``is_array`` accepts) as ``('index', k)``."""
    parts = index if isinstance(index, tuple) else (index,)
    spec: list[Any] = []
    arrays: list[Any] = []
    for part in parts:
        if isinstance(part, slice):
            spec.append(("slice", _int(part.start), _int(part.stop), _int(part.step)))
        elif part is None:
            spec.append(("newaxis",))
        elif part is Ellipsis:
            spec.append(("ellipsis",))
        elif isinstance(part, bool | np.bool_):
            raise IndexError("a single boolean is not an index; use a mask of the tensor's shape")
        elif isinstance(part, int | np.integer):
            spec.append(int(part))
        elif (
            isinstance(part, list)
            or (is_array is not None and is_array(part))
            or (hasattr(part, "dtype") and hasattr(part, "shape"))
        ):
            spec.append(("index", len(arrays)))
            arrays.append(part)
        else:
            raise IndexError(f"unsupported index {part!r}")
    return tuple(spec), arrays


def decode(spec: tuple, arrays: list[Any] | tuple) -> tuple:
    """The NumPy/CuPy index a spec stands for, with ``arrays`` in place."""
    out: list[Any] = []
    for part in spec:
        if isinstance(part, int):
            out.append(part)
        elif part[0] == "slice":
            out.append(slice(part[1], part[2], part[3]))
        elif part[0] == "newaxis":
            out.append(None)
        elif part[0] == "ellipsis":
            out.append(Ellipsis)
        else:
            out.append(arrays[part[1]])
    return tuple(out)


def describe(spec: tuple) -> str:
    """A spec as the index a user writes: ``[:, 0:48]``, ``[idx0, ::2]``."""

    def bound(v: Any) -> str:
        return "" if v is None else str(v)

    parts = []
    for part in spec:
        if isinstance(part, int):
            parts.append(str(part))
        elif part[0] == "slice":
            text = f"{bound(part[1])}:{bound(part[2])}"
            parts.append(text + (f":{part[3]}" if part[3] is not None else ""))
        elif part[0] == "newaxis":
            parts.append("None")
        elif part[0] == "ellipsis":
            parts.append("...")
        else:
            parts.append(f"idx{part[1]}")  # the op's index array input
    return f"[{', '.join(parts)}]"


def is_spec(value: Any) -> bool:
    """True when ``value`` has the form of an index spec (for displaying it)."""
    return isinstance(value, tuple) and all(
        isinstance(p, int)
        or (isinstance(p, tuple) and p and p[0] in ("slice", "newaxis", "ellipsis", "index"))
        for p in value
    )


def is_basic(spec: tuple) -> bool:
    """True when the spec has no index arrays (a view, no repeats)."""
    return all(isinstance(p, int) or p[0] != "index" for p in spec)


def _int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    raise IndexError(f"slice bounds must be integers, got {value!r}")
