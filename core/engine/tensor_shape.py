"""Tensor methods for indexing along an axis (gather, scatter, index_select),
shape (flip, roll, repeat, split, tril, diagonal...) and in-place variants
(``add_`` and ``mul_`` are ``Tensor``'s own). ``Tensor`` inherits them
through ``core.engine.tensor_torch``.

>>> import core
>>> x = core.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
>>> x.roll(1, 1).tolist(), x.flip(0)[0].tolist()
([[3.0, 1.0, 2.0], [6.0, 4.0, 5.0]], [4.0, 5.0, 6.0])
>>> x.gather(1, core.tensor([[2], [0]])).tolist()
[[3.0], [4.0]]
>>> x.clone().clamp_(max=2.5).tolist()
[[1.0, 2.0, 2.5], [2.5, 2.5, 2.5]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from core.device import xp_for
from core.engine.dispatch import apply, constant, is_tensor, leaf, lift
from core.engine.inplace import apply_
from core.engine.modes import no_grad
from core.engine.ops import Op
from core.engine.random import generator
from core.errors import ShapeError
from core.observe.source import where


def norm_dim(dim: int, ndim: int, what: str = "dim") -> int:
    """``dim`` as a non-negative axis of an ``ndim``-d tensor, or a clear error."""
    if 0 <= dim < ndim:  # the common case, first
        return dim
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise ShapeError(f"{what} {dim} is out of range for a {ndim}-d tensor{where()}")
    return dim % size


def select(cond: Any, a: Any, b: Any) -> Any:
    """``where(cond, a, b)`` with numbers lifted like the tensor among a, b."""
    like = a if is_tensor(a) else b
    return apply(Op.WHERE, (cond, lift(a, like), lift(b, like)))


def _unary_(op: Op, name: str):
    def method(self):
        apply_(op, self, ())
        return self

    method.__name__ = name
    method.__doc__ = f"``{name[:-1]}``, in place."
    return method


class ShapeMethods:
    """The methods ``Tensor`` takes from this module (see its docstring)."""

    __slots__ = ()

    # -- indexing along an axis ---------------------------------------------------

    def gather(self, dim: int, index: Any):
        """``out[i][j] = self[index[i][j]][j]`` for dim 0, and so on (``torch.gather``)."""
        if not is_tensor(index):
            index = constant(np.asarray(index), device=self.device)
        return apply(Op.GATHER, (self, index), {"axis": norm_dim(dim, self.ndim)})

    def _scatter(self, dim: int, index: Any, src: Any, add: bool):
        if not is_tensor(index):
            index = constant(np.asarray(index), device=self.device)
        attrs = {"axis": norm_dim(dim, self.ndim), "add": add}
        return apply(Op.SCATTER, (self, index, lift(src, self)), attrs)

    def scatter(self, dim: int, index: Any, src: Any = None, *, value: Any = None):
        """A copy with ``src`` (a tensor or a number) written at ``index`` along ``dim``."""
        return self._scatter(dim, index, value if src is None else src, False)

    def scatter_add(self, dim: int, index: Any, src: Any):
        """A copy with ``src`` added at ``index`` along ``dim`` (repeats summed)."""
        return self._scatter(dim, index, src, True)

    def scatter_(self, dim: int, index: Any, src: Any = None, *, value: Any = None):
        """``scatter``, in place."""
        return self.copy_(self.scatter(dim, index, src, value=value))

    def scatter_add_(self, dim: int, index: Any, src: Any):
        return self.copy_(self.scatter_add(dim, index, src))

    def index_add(self, dim: int, index: Any, source: Any, *, alpha: float = 1.0):
        """A copy with ``source``'s slices added at ``index`` along ``dim`` (repeats summed)."""
        d = norm_dim(dim, self.ndim)
        if not is_tensor(index):
            index = constant(np.asarray(index), device=self.device)
        source = lift(source, self) * alpha if alpha != 1.0 else lift(source, self)
        spec = ((slice(None),) * d) + (("index", 0),)
        spec = tuple(("slice", None, None, None) if isinstance(p, slice) else p for p in spec)
        attrs = {"shape": tuple(self.shape), "index": spec}
        return self + apply(Op.SCATTER_ADD, (source, index), attrs)

    def index_add_(self, dim: int, index: Any, source: Any, *, alpha: float = 1.0):
        return self.copy_(self.index_add(dim, index, source, alpha=alpha))

    def nonzero(self, *, as_tuple: bool = False):
        """The indices of the nonzero elements, (count, ndim) int64 (or a tuple
        of 1-d index tensors): a shape that depends on the values."""
        out = apply(Op.NONZERO, (self,))
        if not as_tuple:
            return out
        if self.ndim == 0:  # as PyTorch: one index per nonzero "element"
            return (apply(Op.NONZERO, (self.reshape(1),))[:, 0],)
        return tuple(out[:, i] for i in range(self.ndim))

    def index_select(self, dim: int, index: Any):
        """The slices ``index`` (a 1-d integer tensor) of ``dim``."""
        d = norm_dim(dim, self.ndim)
        return self[(slice(None),) * d + (index,)]

    # -- shape --------------------------------------------------------------------

    def flip(self, *dims: Any):
        if len(dims) == 1 and isinstance(dims[0], tuple | list):
            dims = tuple(dims[0])
        axes = {norm_dim(d, self.ndim) for d in dims}
        if not axes:
            return self
        flips = (slice(None, None, -1) if i in axes else slice(None) for i in range(self.ndim))
        return self[tuple(flips)]

    def roll(self, shifts: Any, dims: Any = None):
        """Elements shifted along ``dims`` (the flattened tensor without), wrapping."""
        if dims is None:
            return self.flatten().roll(shifts, 0).reshape(*self.shape)
        shifts = (shifts,) if isinstance(shifts, int) else tuple(shifts)
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        out = self
        for shift, dim in zip(shifts, dims, strict=True):
            d = norm_dim(dim, self.ndim)
            n = self.shape[d]
            if n == 0 or shift % n == 0:
                continue
            s = shift % n
            lead = (slice(None),) * d
            pieces = (out[lead + (slice(n - s, None),)], out[lead + (slice(0, n - s),)])
            out = apply(Op.CONCAT, pieces, {"axis": d})
        return out

    def repeat(self, *sizes: Any):
        """The tensor tiled ``sizes`` times along each dim (``torch.Tensor.repeat``)."""
        if len(sizes) == 1 and isinstance(sizes[0], tuple | list):
            sizes = tuple(sizes[0])
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < self.ndim:
            raise ShapeError(f"repeat: {len(sizes)} sizes for a {self.ndim}-d tensor{where()}")
        shape = (1,) * (len(sizes) - self.ndim) + tuple(self.shape)
        spread = self.reshape(*[v for s in shape for v in (1, s)])
        spread = spread.expand(*[v for r, s in zip(sizes, shape) for v in (r, s)])
        return spread.reshape(*[r * s for r, s in zip(sizes, shape)])

    def tile(self, *dims: Any):
        """``repeat``, with missing leading counts taken as 1 (``torch.tile``)."""
        if len(dims) == 1 and isinstance(dims[0], tuple | list):
            dims = tuple(dims[0])
        return self.repeat(*((1,) * (self.ndim - len(dims)) + tuple(dims)))

    def repeat_interleave(self, repeats: Any, dim: int | None = None):
        """Each element (or slice of ``dim``) repeated ``repeats`` times in place."""
        if dim is None:
            return self.flatten().repeat_interleave(repeats, 0)
        d = norm_dim(dim, self.ndim)
        if is_tensor(repeats) or not isinstance(repeats, int):
            counts = np.asarray(repeats.numpy() if is_tensor(repeats) else repeats)
            index = np.repeat(np.arange(self.shape[d]), counts)
            return self[(slice(None),) * d + (constant(index, device=self.device),)]
        shape = list(self.shape)
        spread = self.unsqueeze(d + 1).expand(*shape[: d + 1], repeats, *shape[d + 1 :])
        return spread.flatten(d, d + 1)

    def diff(self, n: int = 1, dim: int = -1):
        """Differences of neighbours along ``dim``, ``n`` times."""
        d = norm_dim(dim, self.ndim)
        out = self
        lead = (slice(None),) * d
        for _ in range(n):
            out = out[lead + (slice(1, None),)] - out[lead + (slice(None, -1),)]
        return out

    def diag(self, diagonal: int = 0):
        """A 1-d tensor's values on a diagonal of a square matrix, or a 2-d
        tensor's diagonal."""
        if self.ndim == 2:
            return self.diagonal(diagonal)
        if self.ndim != 1:
            raise ShapeError(f"diag: needs a 1-d or 2-d tensor, got shape {self.shape}{where()}")
        n = self.shape[0] + abs(diagonal)
        rows = np.arange(self.shape[0]) + max(-diagonal, 0)
        cols = np.arange(self.shape[0]) + max(diagonal, 0)
        index = (constant(rows, device=self.device), constant(cols, device=self.device))
        spec = (("index", 0), ("index", 1))
        return apply(Op.SCATTER_ADD, (self, *index), {"shape": (n, n), "index": spec})

    def narrow(self, dim: int, start: int, length: int):
        d = norm_dim(dim, self.ndim)
        start = start % self.shape[d] if start < 0 else start
        return self[(slice(None),) * d + (slice(start, start + length),)]

    def split(self, split_size_or_sections: Any, dim: int = 0):
        """Pieces of ``dim``: of one size (the last may be smaller) or of the sizes given."""
        d = norm_dim(dim, self.ndim)
        n = self.shape[d]
        if isinstance(split_size_or_sections, int):
            step = split_size_or_sections
            if step <= 0:
                raise ValueError(f"split: the size must be positive, got {step}")
            sizes = [min(step, n - i) for i in range(0, n, step)] or [0]
        else:
            sizes = [int(s) for s in split_size_or_sections]
            if sum(sizes) != n:
                raise ShapeError(f"split: sizes {sizes} do not add up to {n}{where()}")
        pieces, start = [], 0
        for size in sizes:
            pieces.append(self.narrow(d, start, size))
            start += size
        return tuple(pieces)

    def chunk(self, chunks: int, dim: int = 0):
        """At most ``chunks`` pieces of equal size (the last may be smaller)."""
        n = self.shape[norm_dim(dim, self.ndim)]
        return self.split(max(1, -(-n // chunks)), dim)

    def unbind(self, dim: int = 0):
        d = norm_dim(dim, self.ndim)
        return tuple(self[(slice(None),) * d + (i,)] for i in range(self.shape[d]))

    def _triangle(self, diagonal: int, upper: bool):
        if self.ndim < 2:
            raise ShapeError(f"tril/triu need at least 2 dims, got shape {self.shape}{where()}")
        rows, cols = self.shape[-2:]
        ones = np.ones((rows, cols), bool)
        keep = np.triu(ones, diagonal) if upper else np.tril(ones, diagonal)
        return select(constant(keep, device=self.device), self, 0.0)

    def tril(self, diagonal: int = 0):
        """The lower triangle of the last two dims; zeros above ``diagonal``."""
        return self._triangle(diagonal, False)

    def triu(self, diagonal: int = 0):
        return self._triangle(diagonal, True)

    def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1):
        """The diagonal of dims ``dim1``/``dim2``, as a new last dim."""
        d1, d2 = norm_dim(dim1, self.ndim), norm_dim(dim2, self.ndim)
        rest = [i for i in range(self.ndim) if i not in (d1, d2)]
        moved = self.permute(*rest, d1, d2)
        rows, cols = moved.shape[-2:]
        start_r, start_c = max(-offset, 0), max(offset, 0)
        n = max(0, min(rows - start_r, cols - start_c))
        i = constant(np.arange(start_r, start_r + n), device=self.device)
        j = constant(np.arange(start_c, start_c + n), device=self.device)
        return moved[..., i, j]

    def new_zeros(self, *size: Any):
        """Zeros of ``size`` with this tensor's dtype and device (a new leaf)."""
        return self.new_full(size, 0.0)

    def new_ones(self, *size: Any):
        return self.new_full(size, 1.0)

    def new_full(self, size: Any, fill_value: float):
        shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], tuple | list) else size
        shape = tuple(int(s) for s in shape)
        values = xp_for(self.device).full(shape, fill_value, dtype=self.dtype)
        return leaf(values, self.device, False, "input")

    def new_tensor(self, data: Any):
        """A new leaf from ``data`` with this tensor's dtype and device."""
        values = xp_for(self.device).asarray(np.asarray(data), dtype=self.dtype)
        return leaf(values, self.device, False, "input")

    def clone(self):
        """A copy; gradients flow through it."""
        return apply(Op.CLONE, (self,))

    def contiguous(self):
        return self

    def broadcast_to(self, *shape: Any):
        return self.expand(*shape)

    def expand_as(self, other: Any):
        return self.expand(*other.shape)

    def view_as(self, other: Any):
        return self.reshape(*other.shape)

    reshape_as = view_as

    def type_as(self, other: Any):
        return self.astype(other.dtype)

    def movedim(self, source: int, destination: int):
        s, d = norm_dim(source, self.ndim), norm_dim(destination, self.ndim)
        order = [i for i in range(self.ndim) if i != s]
        order.insert(d, s)
        return self.permute(*order)

    def swapaxes(self, axis0: int, axis1: int):
        return self.transpose(axis0, axis1)

    def t(self):
        """The transpose of a 2-d tensor (a 1-d tensor unchanged)."""
        return self if self.ndim < 2 else self.transpose(0, 1)

    def unflatten(self, dim: int, sizes: Sequence[int]):
        d = norm_dim(dim, self.ndim)
        return self.reshape(*self.shape[:d], *sizes, *self.shape[d + 1 :])

    def dim(self) -> int:
        return self.ndim

    def element_size(self) -> int:
        return int(self.dtype.itemsize)

    # -- in place -----------------------------------------------------------------

    def add_(self, other: Any, *, alpha: float = 1.0):
        """``self += alpha * other``, in place (see ``core.engine.inplace``)."""
        other = lift(other, self)
        if alpha == 1.0:
            apply_(Op.ADD, self, (other,))
        else:
            apply_(Op.ADD_SCALED, self, (other,), {"alpha": float(alpha)})
        return self

    def sub_(self, other: Any, *, alpha: float = 1.0):
        if alpha != 1.0:
            return self.add_(other, alpha=-alpha)
        apply_(Op.SUB, self, (lift(other, self),))
        return self

    def mul_(self, other: Any):
        apply_(Op.MUL, self, (lift(other, self),))
        return self

    def div_(self, other: Any):
        apply_(Op.DIV, self, (lift(other, self),))
        return self

    def lerp_(self, end: Any, weight: Any):
        """``self += weight * (end - self)``, in place (as ``torch.Tensor.lerp_``)."""
        apply_(Op.LERP, self, (lift(end, self), lift(weight, self)))
        return self

    def copy_(self, src: Any):
        """Take ``src``'s values (broadcast, converted to this dtype), in place."""
        if not is_tensor(src):
            src = constant(src, like=self)
        apply_(Op.COPY, self, (src,))
        return self

    def zero_(self):
        return self.copy_(constant(0, dtype=self.dtype, device=self.device))

    def fill_(self, value: Any):
        if not is_tensor(value):
            value = constant(value, dtype=self.dtype, device=self.device)
        return self.copy_(value)

    def _random_(self, values: np.ndarray):
        with no_grad():
            return self.copy_(constant(values.astype(self.dtype), device=self.device))

    def uniform_(self, a: float = 0.0, b: float = 1.0):
        """Values drawn uniformly from [a, b), in place (the global generator)."""
        return self._random_(generator().uniform(a, b, self.shape))

    def normal_(self, mean: float = 0.0, std: float = 1.0):
        """Normal values, in place (the global generator)."""
        return self._random_(generator().normal(mean, std, self.shape))

    def clamp_(self, min: float | None = None, max: float | None = None):
        apply_(Op.CLIP, self, (), {"lo": min, "hi": max})
        return self

    clip_ = clamp_

    def pow_(self, exponent: float):
        apply_(Op.POW_SCALAR, self, (), {"exponent": float(exponent)})
        return self

    def masked_fill_(self, mask: Any, value: Any):
        return self.copy_(self.masked_fill(mask, value))

    neg_ = _unary_(Op.NEG, "neg_")
    exp_ = _unary_(Op.EXP, "exp_")
    log_ = _unary_(Op.LOG, "log_")
    sqrt_ = _unary_(Op.SQRT, "sqrt_")
    abs_ = _unary_(Op.ABS, "abs_")
    tanh_ = _unary_(Op.TANH, "tanh_")
    sigmoid_ = _unary_(Op.SIGMOID, "sigmoid_")
    relu_ = _unary_(Op.RELU, "relu_")
    floor_ = _unary_(Op.FLOOR, "floor_")
    ceil_ = _unary_(Op.CEIL, "ceil_")
    round_ = _unary_(Op.ROUND, "round_")
    trunc_ = _unary_(Op.TRUNC, "trunc_")

    def detach_(self):
        """Cut from the graph, in place."""
        with no_grad():
            self._node = None
            self.requires_grad = False
        return self
