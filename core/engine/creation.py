"""Creating tensors: ``tensor``, ``zeros``, ``randn``...

Random values are drawn on the host from one seeded generator and then moved,
so a seed gives the same numbers on "cpu" and "cuda".

>>> import core
>>> core.manual_seed(0)
>>> a = core.randn(2, 3)
>>> core.manual_seed(0)
>>> bool((core.randn(2, 3).numpy() == a.numpy()).all())
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.device import to_device, xp_for
from core.engine.dispatch import leaf
from core.engine.random import generator, manual_seed  # noqa: F401  (public names)
from core.engine.tensor import Tensor
from core.errors import DtypeError


def _shape(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _leaf(array: np.ndarray, device: str, requires_grad: bool, kind: str = "input") -> Tensor:
    return leaf(to_device(array, device), device, requires_grad, kind)


def tensor(
    data: Any, dtype: Any = None, *, requires_grad: bool = False, device: str = "cpu"
) -> Tensor:
    """A leaf tensor from numbers, lists or arrays (Python floats become float32)."""
    t = Tensor(data, dtype=dtype, requires_grad=requires_grad, device=device)
    if requires_grad and t.dtype.kind not in "fc":
        raise DtypeError(f"only floating tensors can require grad, not {t.dtype}")
    return leaf(t.data, device, requires_grad, "input")


def from_numpy(array: np.ndarray, *, requires_grad: bool = False, device: str = "cpu") -> Tensor:
    """A leaf tensor sharing ``array`` (on "cpu"), keeping its dtype."""
    return _leaf(np.asarray(array), device, requires_grad)


def zeros(*shape: Any, dtype: Any = np.float32, requires_grad=False, device="cpu") -> Tensor:
    return _leaf(np.zeros(_shape(shape), dtype=dtype), device, requires_grad)


def ones(*shape: Any, dtype: Any = np.float32, requires_grad=False, device="cpu") -> Tensor:
    return _leaf(np.ones(_shape(shape), dtype=dtype), device, requires_grad)


def full(shape: Any, value: float, *, dtype: Any = np.float32, requires_grad=False, device="cpu"):
    return _leaf(np.full(_shape((shape,)), value, dtype=dtype), device, requires_grad)


def zeros_like(t: Tensor, *, requires_grad: bool = False) -> Tensor:
    xp = xp_for(t.device)
    return leaf(xp.zeros(t.shape, dtype=t.dtype), t.device, requires_grad, "input")


def ones_like(t: Tensor, *, requires_grad: bool = False) -> Tensor:
    xp = xp_for(t.device)
    return leaf(xp.ones(t.shape, dtype=t.dtype), t.device, requires_grad, "input")


def arange(*args: Any, dtype: Any = None, device: str = "cpu") -> Tensor:
    """Evenly spaced values; integers stay int64, Python floats become float32."""
    values = np.arange(*args, dtype=dtype)
    if dtype is None and values.dtype == np.float64:
        values = values.astype(np.float32)
    return _leaf(values, device, False)


def randn(*shape: Any, dtype: Any = np.float32, requires_grad=False, device="cpu") -> Tensor:
    """Standard normal samples from the global generator."""
    values = generator().standard_normal(_shape(shape)).astype(dtype)
    return _leaf(values, device, requires_grad, "random")


def rand(*shape: Any, dtype: Any = np.float32, requires_grad=False, device="cpu") -> Tensor:
    """Uniform samples in [0, 1) from the global generator."""
    values = generator().random(_shape(shape)).astype(dtype)
    return _leaf(values, device, requires_grad, "random")


def randint(low: int, high: int, shape: Any, *, device: str = "cpu") -> Tensor:
    values = generator().integers(low, high, size=_shape((shape,)), dtype=np.int64)
    return _leaf(values, device, False, "random")


def empty(*shape: Any, dtype: Any = np.float32, requires_grad=False, device="cpu") -> Tensor:
    """A new tensor of ``shape`` (zeros here: the engine never hands out garbage)."""
    return zeros(*shape, dtype=dtype, requires_grad=requires_grad, device=device)


def empty_like(t: Tensor, *, requires_grad: bool = False) -> Tensor:
    return zeros_like(t, requires_grad=requires_grad)


def full_like(t: Tensor, value: float, *, requires_grad: bool = False) -> Tensor:
    xp = xp_for(t.device)
    return leaf(xp.full(t.shape, value, dtype=t.dtype), t.device, requires_grad, "input")


def eye(n: int, m: int | None = None, *, dtype: Any = np.float32, device: str = "cpu") -> Tensor:
    """The identity matrix (ones on the diagonal) of n rows and m columns."""
    return _leaf(np.eye(n, m, dtype=dtype), device, False)


def linspace(start: float, end: float, steps: int, *, dtype: Any = np.float32, device="cpu"):
    """``steps`` evenly spaced values from ``start`` to ``end``, both included."""
    return _leaf(np.linspace(start, end, steps).astype(dtype), device, False)


def randn_like(t: Tensor, *, requires_grad: bool = False) -> Tensor:
    return randn(*t.shape, dtype=t.dtype, requires_grad=requires_grad, device=t.device)


def rand_like(t: Tensor, *, requires_grad: bool = False) -> Tensor:
    return rand(*t.shape, dtype=t.dtype, requires_grad=requires_grad, device=t.device)


def randperm(n: int, *, device: str = "cpu") -> Tensor:
    """A random permutation of 0..n-1 (int64) from the global generator."""
    return _leaf(generator().permutation(n).astype(np.int64), device, False, "random")
