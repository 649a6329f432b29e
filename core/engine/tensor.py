"""Tensor: an array on a device that records how it was made.

Every operator and method runs one registered op through ``dispatch.apply``;
numbers and arrays combined with a tensor become constants first.

>>> import core
>>> w = core.tensor(0.0, requires_grad=True)
>>> y = (w * 3.0 + 1.0).tanh()
>>> y.backward()
>>> round(w.grad.item(), 3)
1.26
>>> x = core.tensor([1.0, 2.0], requires_grad=True)
>>> (x * x).sum().backward()
>>> x.grad.numpy().tolist()
[2.0, 4.0]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from core.device import to_device, to_host, xp_for
from core.engine import autograd, indexing
from core.engine.dispatch import (
    Node,
    apply,
    bind_tensor_type,
    constant,
    grad_reset,
    is_tensor,
    lift,
    new_id,
    read,
    wrap,
)
from core.engine.inplace import version
from core.engine.modes import no_grad
from core.engine.ops import Op
from core.engine.tensor_torch import TorchMethods, norm_dim, reduce_args
from core.errors import DtypeError, ShapeError
from core.observe.source import where

float32 = np.float32
float64 = np.float64
int64 = np.int64


class Tensor(TorchMethods):
    """An n-dimensional array on "cpu" or "cuda" that records how it was made.

    >>> import core
    >>> t = core.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> t.shape, t.dtype, t.device
    ((2, 2), dtype('float32'), 'cpu')
    >>> (t @ t).numpy().tolist()
    [[7.0, 10.0], [15.0, 22.0]]
    """

    __slots__ = (
        "data",
        "device",
        "requires_grad",
        "_grad",
        "_node",
        "id",
        "name",
        "_replaced",  # set by in-place writes in the graph: [(stamp, old value)]
        "__weakref__",
    )
    __array_ufunc__ = None  # NumPy defers to our reflected operators

    def __init__(
        self, data: Any, dtype: Any = None, requires_grad: bool = False, device: str = "cpu"
    ) -> None:
        xp = xp_for(device)
        if isinstance(data, Tensor):
            data = data.data
        array = xp.asarray(data, dtype=dtype)
        if dtype is None and array.dtype == np.float64 and not _is_array(data):
            array = array.astype(np.float32)
        self.data = array
        self.device = device
        self.requires_grad = requires_grad
        self._grad: Tensor | None = None
        self._node: Node | None = None
        self.id = new_id()
        self.name: str | None = None

    # -- facts ---------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def grad(self) -> Tensor | None:
        """The gradient backward accumulated here (None until one did)."""
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        self._grad = value
        if value is None:
            grad_reset(self)  # a tracer learns the step does not depend on the old one

    @property
    def _version(self) -> int:
        """The engine's count of in-place writes when this tensor was last
        written in place (0: never); it grows with every write, as PyTorch's."""
        return version(self)

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    @property
    def node(self) -> Node | None:
        """The graph node that produced this tensor (None for leaves)."""
        return self._node

    def size(self, dim: int | None = None) -> Any:
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        return self.data.shape[0]

    def numpy(self) -> np.ndarray:
        """The value as a host NumPy array (a copy for "cuda" tensors)."""
        return read(self, "array", to_host(self.data))

    def item(self) -> float:
        """The one element as a Python number. While a step is traced, the
        tracer learns of the read (a decision the graph must guard)."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return read(self, "item", self.data.reshape(()).item())

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __bool__(self) -> bool:
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __repr__(self) -> str:
        body = np.array2string(to_host(self.data), separator=", ", prefix="tensor(")
        extra = ""
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self.dtype != np.float32:
            extra += f", dtype={self.dtype}"
        if self._node is not None:
            extra += f", grad_fn={self._node.name}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # -- autograd controls ---------------------------------------------------

    def detach(self) -> Tensor:
        """The same values, cut from the graph."""
        return apply(Op.DETACH, (self,))

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and self.dtype.kind not in "fc":
            raise DtypeError(f"only floating tensors can require grad, not {self.dtype}")
        self.requires_grad = flag
        return self

    def to(self, device: Any = None, dtype: Any = None) -> Tensor:
        """A copy on ``device`` ("cpu" or "cuda"), or converted to ``dtype``
        (``t.to(core.float64)``; a dtype alone may come first, as PyTorch's).

        A copy on another device is a new leaf: gradients do not flow back
        across devices, so move data and models (``Module.to``) before
        building the graph.
        """
        if device is not None and not isinstance(device, str):
            device, dtype = None, device
        if dtype is not None:
            converted = self.astype(dtype)
            return converted if device is None else converted.to(device)
        if device is None or device == self.device:
            return self
        xp_for(device)  # fails with the reason when unavailable
        return wrap(to_device(self.data, device), device, self.requires_grad and self.is_leaf)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def backward(
        self,
        gradient: Tensor | None = None,
        *,
        retain_graph: bool | None = None,
        create_graph: bool = False,
    ) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        The graph is freed afterwards unless ``retain_graph`` (which defaults to
        ``create_graph``, as in PyTorch).
        """
        autograd.backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph)

    # -- operators -------------------------------------------------------------

    def __add__(self, other: Any) -> Tensor:
        return apply(Op.ADD, (self, lift(other, self)))

    def add(self, other: Any, *, alpha: float = 1.0) -> Tensor:
        """``self + alpha * other`` in one op (as ``torch.add``).

        >>> import core
        >>> core.tensor([1.0, 2.0]).add(core.tensor([10.0, 20.0]), alpha=-0.5).tolist()
        [-4.0, -8.0]
        """
        other = lift(other, self)
        if alpha == 1.0:
            return apply(Op.ADD, (self, other))
        return apply(Op.ADD_SCALED, (self, other), {"alpha": float(alpha)})

    def __radd__(self, other: Any) -> Tensor:
        return apply(Op.ADD, (lift(other, self), self))

    def __sub__(self, other: Any) -> Tensor:
        return apply(Op.SUB, (self, lift(other, self)))

    def __rsub__(self, other: Any) -> Tensor:
        return apply(Op.SUB, (lift(other, self), self))

    def __mul__(self, other: Any) -> Tensor:
        return apply(Op.MUL, (self, lift(other, self)))

    def __rmul__(self, other: Any) -> Tensor:
        return apply(Op.MUL, (lift(other, self), self))

    def __truediv__(self, other: Any) -> Tensor:
        return apply(Op.DIV, (self, lift(other, self)))

    def __rtruediv__(self, other: Any) -> Tensor:
        return apply(Op.DIV, (lift(other, self), self))

    def __neg__(self) -> Tensor:
        return apply(Op.NEG, (self,))

    def __pow__(self, exponent: Any) -> Tensor:
        if isinstance(exponent, Tensor):
            return apply(Op.POW, (self, exponent))
        return apply(Op.POW_SCALAR, (self,), {"exponent": float(exponent)})

    def __rpow__(self, base: Any) -> Tensor:
        return apply(Op.POW, (lift(base, self), self))

    def __matmul__(self, other: Any) -> Tensor:
        return apply(Op.MATMUL, (self, lift(other, self)))

    def __rmatmul__(self, other: Any) -> Tensor:
        return apply(Op.MATMUL, (lift(other, self), self))

    def __gt__(self, other: Any) -> Tensor:
        return apply(Op.GT, (self, lift(other, self)))

    def __ge__(self, other: Any) -> Tensor:
        return apply(Op.GE, (self, lift(other, self)))

    def __lt__(self, other: Any) -> Tensor:
        return apply(Op.LT, (self, lift(other, self)))

    def __le__(self, other: Any) -> Tensor:
        return apply(Op.LE, (self, lift(other, self)))

    def eq(self, other: Any) -> Tensor:
        return apply(Op.EQ, (self, lift(other, self)))

    def ne(self, other: Any) -> Tensor:
        return apply(Op.NE, (self, lift(other, self)))

    def lerp(self, end: Any, weight: Any) -> Tensor:
        return apply(Op.LERP, (self, lift(end, self), lift(weight, self)))

    __hash__ = object.__hash__

    def __getitem__(self, index: Any) -> Tensor:
        spec, arrays = indexing.encode(index, is_tensor)
        positions = tuple(_index_tensor(a, self) for a in arrays)
        return apply(Op.GETITEM, (self, *positions), {"index": spec})

    # -- elementwise -------------------------------------------------------------

    def exp(self) -> Tensor:
        return apply(Op.EXP, (self,))

    def log(self) -> Tensor:
        return apply(Op.LOG, (self,))

    def sqrt(self) -> Tensor:
        return apply(Op.SQRT, (self,))

    def abs(self) -> Tensor:
        return apply(Op.ABS, (self,))

    def sign(self) -> Tensor:
        return apply(Op.SIGN, (self,))

    def tanh(self) -> Tensor:
        return apply(Op.TANH, (self,))

    def sigmoid(self) -> Tensor:
        return apply(Op.SIGMOID, (self,))

    def relu(self) -> Tensor:
        return apply(Op.RELU, (self,))

    def clip(self, min: float | None = None, max: float | None = None) -> Tensor:
        return apply(Op.CLIP, (self,), {"lo": min, "hi": max})

    clamp = clip

    def astype(self, dtype: Any) -> Tensor:
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        if dtype.kind not in "fc":
            with no_grad():  # integers and booleans carry no gradient
                return apply(Op.CAST, (self,), {"dtype": dtype.name})
        return apply(Op.CAST, (self,), {"dtype": dtype.name})

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def double(self) -> Tensor:
        return self.astype(np.float64)

    # -- reductions ----------------------------------------------------------

    def sum(self, dim: Any = None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        """The sum over ``dim`` (an int, a tuple, or None for all; ``axis`` is an alias)."""
        axes, keep = reduce_args(dim, keepdim, axis, keepdims, self.ndim)
        return apply(Op.SUM, (self,), {"axis": axes, "keepdims": keep})

    def mean(self, dim: Any = None, keepdim: bool = False, *, axis=None, keepdims=None) -> Tensor:
        axes, keep = reduce_args(dim, keepdim, axis, keepdims, self.ndim)
        return apply(Op.MEAN, (self,), {"axis": axes, "keepdims": keep})

    def var(
        self,
        dim: Any = None,
        unbiased: bool | None = None,
        keepdim: bool = False,
        *,
        correction: int | None = None,
        axis: Any = None,
        keepdims: Any = None,
    ) -> Tensor:
        """The variance over ``dim``, divided by ``n - correction`` (1 by default,
        0 with ``unbiased=False``), as ``torch.var``."""
        axes, keep = reduce_args(dim, keepdim, axis, keepdims, self.ndim)
        if correction is None:
            correction = 0 if unbiased is False else 1
        attrs = {"axis": axes, "keepdims": keep, "correction": int(correction)}
        return apply(Op.VAR, (self,), attrs)

    def sum_to(self, shape: Sequence[int]) -> Tensor:
        """Sum broadcast dimensions away so the result has ``shape``."""
        shape = tuple(shape)
        if shape == self.shape:
            return self
        return apply(Op.SUM_TO, (self,), {"shape": shape})

    def norm(self, p: Any = 2, dim: Any = None, keepdim: bool = False) -> Tensor:
        """The ``p``-norm over ``dim`` (all elements by default): 2 is
        ``sqrt(sum(x * x))``, 1 ``sum(|x|)``, ``inf`` ``max(|x|)``, others
        ``sum(|x|**p)**(1/p)``."""
        if p == 2 or p == "fro":
            return (self * self).sum(dim, keepdim).sqrt()
        if p == 1:
            return self.abs().sum(dim, keepdim)
        if p == math.inf:
            return self.abs().amax(() if dim is None else dim, keepdim)
        return (self.abs() ** float(p)).sum(dim, keepdim) ** (1.0 / p)

    def softmax(self, dim: int = -1, *, axis: int | None = None) -> Tensor:
        dim = dim if axis is None else axis
        return apply(Op.SOFTMAX, (self,), {"axis": norm_dim(dim, self.ndim)})

    def log_softmax(self, dim: int = -1, *, axis: int | None = None) -> Tensor:
        dim = dim if axis is None else axis
        return apply(Op.LOG_SOFTMAX, (self,), {"axis": norm_dim(dim, self.ndim)})

    # -- shape -----------------------------------------------------------------

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        if shape == self.data.shape:
            return self
        shape = _resolve_shape(shape, self.data.size, self.data.shape)
        if shape == self.data.shape:
            return self
        return apply(Op.RESHAPE, (self,), {"shape": shape})

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        start, end = norm_dim(start_dim, self.ndim), norm_dim(end_dim, self.ndim)
        return self.reshape(*self.shape[:start], -1, *self.shape[end + 1 :])

    def unsqueeze(self, dim: int) -> Tensor:
        dim = norm_dim(dim, self.ndim + 1)
        return self.reshape(*self.shape[:dim], 1, *self.shape[dim:])

    def squeeze(self, dim: Any = None) -> Tensor:
        """Without dims of size 1 (all, or those of ``dim``, an int or a tuple)."""
        if dim is None:
            return self.reshape(*[s for s in self.shape if s != 1])
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        drop = {norm_dim(d, self.ndim) for d in dims}
        return self.reshape(*[s for i, s in enumerate(self.shape) if not (i in drop and s == 1)])

    def permute(self, *axes: Any) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], tuple | list):
            axes = tuple(axes[0])
        axes = tuple(a % self.ndim for a in axes)
        if axes == tuple(range(self.ndim)):
            return self
        return apply(Op.PERMUTE, (self,), {"axes": axes})

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        axes = list(range(self.ndim))
        dim0, dim1 = norm_dim(dim0, self.ndim), norm_dim(dim1, self.ndim)
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(*axes)

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def expand(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], tuple | list):
            shape = tuple(shape[0])
        shape = tuple(int(s) for s in shape)
        if shape == self.shape:
            return self
        return apply(Op.EXPAND, (self,), {"shape": shape})


bind_tensor_type(Tensor)


def _is_array(data: Any) -> bool:
    return hasattr(data, "dtype") and hasattr(data, "shape")


def _index_tensor(value: Any, like: Tensor) -> Tensor:
    """An index array as a tensor on ``like``'s device (integers or a mask)."""
    if is_tensor(value):
        return value
    array = np.asarray(value)
    if array.dtype.kind not in "iub":
        raise IndexError(f"index arrays must hold integers or booleans, not {array.dtype}")
    return constant(array, device=like.device)


def _axis(axis: Any, ndim: int) -> tuple[int, ...] | None:
    if axis is None:
        return None
    if isinstance(axis, int):
        return (axis % ndim,) if ndim else (axis,)
    return tuple(sorted(a % ndim for a in axis))


def _resolve_shape(shape: tuple, size: int, old: tuple) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) == 1:
        known = 1
        for s in shape:
            if s != -1:
                known *= s
        if known == 0 or size % known:
            raise ShapeError(f"reshape: cannot reshape {old} into {shape}{where()}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    if math.prod(shape) != size:
        raise ShapeError(f"reshape: cannot reshape {old} ({size} elements) into {shape}{where()}")
    return shape
