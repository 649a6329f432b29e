"""PyTorch's top-level functions (``torch.cat``, ``torch.sum``, ``torch.einsum``...)
as ``core.cat``, ``core.sum``, ``core.einsum``: each is the Tensor method of
the same name, or a function of ``core.functional`` / ``core.engine.linalg``,
so a program can rename ``torch`` to ``core``.

>>> import core
>>> x = core.tensor([[1.0, -2.0], [3.0, 4.0]])
>>> core.sum(x, dim=1).tolist(), core.clamp(x, min=0.0).tolist()
([-1.0, 7.0], [[1.0, 0.0], [3.0, 4.0]])
>>> core.cat([x, x], dim=0).shape
(4, 2)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from core.engine import activations, functional, linalg
from core.engine.tensor import Tensor

# Tensor methods that PyTorch also offers as ``torch.<name>(input, ...)``
METHODS = (
    "abs add all amax amin any argmax argmin argsort broadcast_to ceil chunk clamp "
    "clamp_max clamp_min clip clone cos cumprod cumsum diagonal div erf exp exp2 expm1 "
    "flatten flip floor fmod gather index_select isfinite isinf isnan log log10 log1p "
    "log2 logsumexp masked_fill max mean min movedim mul nan_to_num narrow neg negative "
    "norm permute pow prod reciprocal remainder reshape roll round "
    "rsqrt scatter scatter_add sigmoid sign sin sort split sqrt square squeeze std sub "
    "sum swapaxes t tanh tile topk transpose tril triu trunc unbind unflatten unsqueeze var "
    "tan sinh cosh var_mean std_mean repeat_interleave diff diag logical_and logical_or "
    "logical_not median cross kron eq ne gt ge lt le nonzero index_add"
).split()
FUNCTIONS = {
    "cat": functional.cat,
    "concat": functional.cat,
    "concatenate": functional.cat,
    "stack": functional.stack,
    "where": functional.where,
    "maximum": functional.maximum,
    "minimum": functional.minimum,
    "matmul": functional.matmul,
    "relu": functional.relu,
    "softmax": functional.softmax,
    "log_softmax": functional.log_softmax,
    "lerp": activations.lerp,
    "mm": linalg.mm,
    "bmm": linalg.bmm,
    "mv": linalg.mv,
    "dot": linalg.dot,
    "outer": linalg.outer,
    "einsum": linalg.einsum,
}


def _from_method(name: str) -> Callable[..., Any]:
    method = getattr(Tensor, name)

    def function(input: Tensor, *args: Any, **kwargs: Any) -> Any:
        return getattr(input, name)(*args, **kwargs)

    function.__name__ = function.__qualname__ = name
    function.__doc__ = f"``input.{name}(...)``: " + (method.__doc__ or "see Tensor.").strip()
    return function


def is_tensor(value: Any) -> bool:
    return isinstance(value, Tensor)


def numel(input: Tensor) -> int:
    return input.numel()


def meshgrid(*tensors: Any, indexing: str = "ij") -> tuple:
    """Grids of the 1-d tensors' values, as ``torch.meshgrid`` ("ij" or "xy")."""
    if len(tensors) == 1 and isinstance(tensors[0], list | tuple):
        tensors = tuple(tensors[0])
    if indexing not in ("ij", "xy"):
        raise ValueError(f"meshgrid: indexing must be 'ij' or 'xy', got {indexing!r}")
    sizes = [t.shape[0] for t in tensors]
    if indexing == "xy" and len(tensors) >= 2:
        sizes[0], sizes[1] = sizes[1], sizes[0]
    grids = []
    for i, t in enumerate(tensors):
        axis = i
        if indexing == "xy" and i < 2 and len(tensors) >= 2:
            axis = 1 - i
        shape = [1] * len(tensors)
        shape[axis] = t.shape[0]
        grids.append(t.reshape(*shape).expand(*sizes))
    return tuple(grids)


def cdist(x1: Tensor, x2: Tensor, p: float = 2.0) -> Tensor:
    """Distances between the rows of ``x1`` (..., P, M) and of ``x2`` (..., R, M);
    a zero distance passes a zero gradient, as PyTorch's."""
    diff = x1.unsqueeze(-2) - x2.unsqueeze(-3)
    if p == 2.0:
        squares = (diff * diff).sum(-1)
        positive = squares > 0.0
        return functional.where(positive, functional.where(positive, squares, 1.0).sqrt(), 0.0)
    return diff.norm(p, -1)


def namespace() -> dict[str, Callable[..., Any]]:
    """Every top-level function, by name (``core`` takes them all)."""
    names = {name: _from_method(name) for name in METHODS if hasattr(Tensor, name)}
    names.update(FUNCTIONS)
    names.update(is_tensor=is_tensor, numel=numel, meshgrid=meshgrid, cdist=cdist)
    names.update(DTYPES)
    return names


# PyTorch's dtype names (float32, float64 and int64 are Tensor's already)
DTYPES = {
    "float": np.dtype(np.float32),
    "double": np.dtype(np.float64),
    "float16": np.dtype(np.float16),
    "half": np.dtype(np.float16),
    "int32": np.dtype(np.int32),
    "long": np.dtype(np.int64),
    "bool": np.dtype(np.bool_),
}
