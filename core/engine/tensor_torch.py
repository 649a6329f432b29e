"""More of PyTorch's Tensor methods: math, reductions, indexing along an axis,
shape helpers and in-place variants. ``Tensor`` inherits them.

Each method is a registered op or a short composition of them (so gradients
come from the ops' rules). Dimensions take PyTorch's ``dim``; NumPy's
``axis`` is accepted where the method existed before with that name.

>>> import core
>>> x = core.tensor([[3.0, 1.0, 2.0], [0.5, 4.0, -1.0]])
>>> x.sort(dim=1).values.tolist()
[[1.0, 2.0, 3.0], [-1.0, 0.5, 4.0]]
>>> x.max(dim=1).indices.tolist()
[0, 1]
>>> x.cumsum(1).tolist()
[[3.0, 4.0, 6.0], [0.5, 4.5, 3.5]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from core.engine.dispatch import apply, apply_, constant, is_tensor, lift
from core.engine.modes import no_grad
from core.engine.ops import Op
from core.errors import ShapeError
from core.observe.source import where


class ValuesIndices(NamedTuple):
    """What ``max(dim)``, ``min(dim)``, ``sort`` and ``topk`` return, as PyTorch's."""

    values: Any
    indices: Any


def norm_dim(dim: int, ndim: int, what: str = "dim") -> int:
    """``dim`` as a non-negative axis of an ``ndim``-d tensor, or a clear error."""
    size = max(ndim, 1)
    if not -size <= dim < size:
        raise ShapeError(f"{what} {dim} is out of range for a {ndim}-d tensor{where()}")
    return dim % size


def reduce_args(dim: Any, keepdim: bool, axis: Any, keepdims: Any, ndim: int) -> tuple:
    """(sorted axes or None, keepdims) from PyTorch's or NumPy's names."""
    if axis is not None:
        if dim is not None:
            raise TypeError("give dim or its alias axis, not both")
        dim = axis
    keep = bool(keepdim if keepdims is None else keepdims)
    if dim is None:
        return None, keep
    if isinstance(dim, int | np.integer):
        return (norm_dim(int(dim), ndim),) if ndim else (int(dim),), keep
    return tuple(sorted(norm_dim(int(d), ndim) for d in dim)), keep


def _one_dim(dim: Any, axis: Any) -> Any:
    if axis is not None:
        if dim is not None:
            raise TypeError("give dim or its alias axis, not both")
        return axis
    return dim


def _where(cond: Any, a: Any, b: Any) -> Any:
    like = a if is_tensor(a) else b
    return apply(Op.WHERE, (cond, lift(a, like), lift(b, like)))


def _unary_(op: Op, name: str):
    def method(self):
        apply_(op, self, ())
        return self

    method.__name__ = name
    method.__doc__ = f"``{name[:-1]}``, in place."
    return method


class TorchMethods:
    """The methods ``Tensor`` takes from this module (see its docstring)."""

    __slots__ = ()

    # -- math ---------------------------------------------------------------------

    def log1p(self):
        """``log(1 + x)``, accurate near 0."""
        return apply(Op.LOG1P, (self,))

    def expm1(self):
        """``exp(x) - 1``, accurate near 0."""
        return apply(Op.EXPM1, (self,))

    def log2(self):
        return apply(Op.LOG2, (self,))

    def log10(self):
        return apply(Op.LOG10, (self,))

    def exp2(self):
        return apply(Op.EXP2, (self,))

    def sin(self):
        return apply(Op.SIN, (self,))

    def cos(self):
        return apply(Op.COS, (self,))

    def erf(self):
        return apply(Op.ERF, (self,))

    def rsqrt(self):
        """``1 / sqrt(x)``."""
        return self**-0.5

    def reciprocal(self):
        return self**-1.0

    def square(self):
        return self**2.0

    def neg(self):
        return apply(Op.NEG, (self,))

    negative = neg

    def floor(self):
        """Rounded down; piecewise constant, so no gradient flows through it."""
        return apply(Op.FLOOR, (self,))

    def ceil(self):
        return apply(Op.CEIL, (self,))

    def round(self, decimals: int = 0):
        """Rounded half to even, as ``torch.round`` (``decimals`` must be 0)."""
        if decimals != 0:
            raise ValueError("round: only decimals=0 is supported")
        return apply(Op.ROUND, (self,))

    def trunc(self):
        return apply(Op.TRUNC, (self,))

    def clamp_min(self, min: float):
        return self.clip(min=min)

    def clamp_max(self, max: float):
        return self.clip(max=max)

    def fmod(self, other: Any):
        """C's remainder: the sign of the dividend, as ``torch.fmod``."""
        return apply(Op.FMOD, (self, lift(other, self)))

    def remainder(self, other: Any):
        """Python's ``%``: the sign of the divisor, as ``torch.remainder``."""
        return apply(Op.REMAINDER, (self, lift(other, self)))

    def __mod__(self, other: Any):
        return self.remainder(other)

    def __rmod__(self, other: Any):
        return apply(Op.REMAINDER, (lift(other, self), self))

    def nan_to_num(self, nan: float = 0.0, posinf: Any = None, neginf: Any = None):
        """NaN, +Inf and -Inf replaced (by 0 and the dtype's largest and smallest)."""
        info = np.finfo(self.dtype if self.dtype.kind == "f" else np.float64)
        attrs = {
            "nan": float(nan),
            "posinf": float(info.max if posinf is None else posinf),
            "neginf": float(info.min if neginf is None else neginf),
        }
        return apply(Op.NAN_TO_NUM, (self,), attrs)

    def isnan(self):
        return self.ne(self)

    def isinf(self):
        return self.abs().eq(math.inf)

    def isfinite(self):
        return self.abs() < math.inf

    def __eq__(self, other: Any):  # elementwise, as PyTorch's
        return self.eq(other)

    def __ne__(self, other: Any):
        return self.ne(other)

    __hash__ = object.__hash__

    def maximum(self, other: Any):
        return apply(Op.MAXIMUM, (self, lift(other, self)))

    def minimum(self, other: Any):
        return apply(Op.MINIMUM, (self, lift(other, self)))

    def mul(self, other: Any):
        return self * other

    def div(self, other: Any):
        return self / other

    def sub(self, other: Any, *, alpha: float = 1.0):
        return self.add(other, alpha=-alpha)

    def pow(self, exponent: Any):
        return self**exponent

    def where(self, condition: Any, other: Any):
        """``self`` where ``condition``, else ``other`` (``Tensor.where``)."""
        return _where(condition, self, other)

    def masked_fill(self, mask: Any, value: Any):
        """``value`` where ``mask`` is true, ``self`` elsewhere."""
        return _where(lift(mask, self), lift(value, self), self)

    # -- reductions ---------------------------------------------------------------

    def prod(self, dim: Any = None, keepdim: bool = False, *, axis=None, keepdims=None):
        axes, keep = reduce_args(dim, keepdim, axis, keepdims, self.ndim)
        return apply(Op.PROD, (self,), {"axis": axes, "keepdims": keep})

    def any(self, dim: Any = None, keepdim: bool = False, *, axis=None, keepdims=None):
        axes, keep = reduce_args(dim, keepdim, axis, keepdims, self.ndim)
        return apply(Op.ANY, (self,), {"axis": axes, "keepdims": keep})

    def all(self, dim: Any = None, keepdim: bool = False, *, axis=None, keepdims=None):
        axes, keep = reduce_args(dim, keepdim, axis, keepdims, self.ndim)
        return apply(Op.ALL, (self,), {"axis": axes, "keepdims": keep})

    def std(self, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, **kw):
        """Standard deviation, ``sqrt(var)``, with ``var``'s arguments."""
        return self.var(dim, unbiased, keepdim, **kw).sqrt()

    def logsumexp(self, dim: Any, keepdim: bool = False):
        """``log(sum(exp(x)))`` over ``dim``, shifted by the (detached) maximum so
        nothing overflows; infinite maxima are not shifted (as PyTorch)."""
        axes, keep = reduce_args(dim, keepdim, None, None, self.ndim)
        top = self.amax(axes, keepdim=True).detach()
        top = _where(top.abs().eq(math.inf), 0.0, top)
        out = (self - top).exp().sum(axes, keepdim=True).log() + top
        return out if keep else out.squeeze(axes)

    def cumsum(self, dim: int):
        return apply(Op.CUMSUM, (self,), {"axis": norm_dim(dim, self.ndim), "reverse": False})

    def cumprod(self, dim: int):
        return apply(Op.CUMPROD, (self,), {"axis": norm_dim(dim, self.ndim), "reverse": False})

    def argmax(self, dim: int | None = None, keepdim: bool = False):
        """Index of the largest value (over the flattened tensor without ``dim``)."""
        axis = None if dim is None else norm_dim(dim, self.ndim)
        return apply(Op.ARGMAX, (self,), {"axis": axis, "keepdims": bool(keepdim)})

    def argmin(self, dim: int | None = None, keepdim: bool = False):
        axis = None if dim is None else norm_dim(dim, self.ndim)
        return apply(Op.ARGMIN, (self,), {"axis": axis, "keepdims": bool(keepdim)})

    def amax(self, dim: Any = (), keepdim: bool = False):
        """The largest values over ``dim`` (all dims by default); ties share the
        gradient evenly, as ``torch.amax``."""
        axes, keep = reduce_args(None if dim == () else dim, keepdim, None, None, self.ndim)
        return apply(Op.MAX, (self,), {"axis": axes, "keepdims": keep})

    def amin(self, dim: Any = (), keepdim: bool = False):
        axes, keep = reduce_args(None if dim == () else dim, keepdim, None, None, self.ndim)
        return apply(Op.MIN, (self,), {"axis": axes, "keepdims": keep})

    def _extreme(self, op: Op, arg: Op, dim: Any, keepdim: Any, axis: Any, keepdims: Any):
        if is_tensor(dim):  # torch.max(a, b)
            return apply(Op.MAXIMUM if op is Op.MAX else Op.MINIMUM, (self, dim))
        if isinstance(dim, int | np.integer) and axis is None and keepdims is None:
            d = norm_dim(int(dim), self.ndim)
            index = apply(arg, (self,), {"axis": d, "keepdims": True})
            values = self.gather(d, index)
            if not keepdim:
                values, index = values.squeeze(d), index.squeeze(d)
            return ValuesIndices(values, index)
        axes, keep = reduce_args(dim, keepdim, axis, keepdims, self.ndim)
        return apply(op, (self,), {"axis": axes, "keepdims": keep})

    def max(self, dim: Any = None, keepdim: bool = False, *, axis=None, keepdims=None):
        """The largest value; ``max(dim)`` gives (values, indices) as PyTorch's
        (the gradient goes to the index), ``max(axis=...)`` the values only,
        as NumPy's (ties share the gradient); ``max(other)`` is ``maximum``."""
        return self._extreme(Op.MAX, Op.ARGMAX, dim, keepdim, axis, keepdims)

    def min(self, dim: Any = None, keepdim: bool = False, *, axis=None, keepdims=None):
        """The smallest value; see ``max``."""
        return self._extreme(Op.MIN, Op.ARGMIN, dim, keepdim, axis, keepdims)

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = True):
        """Indices that sort ``dim``; stable, NaN sorted as the largest."""
        attrs = {"axis": norm_dim(dim, self.ndim), "descending": bool(descending)}
        return apply(Op.ARGSORT, (self,), attrs)

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = True):
        """(values, indices) sorted along ``dim``."""
        index = self.argsort(dim, descending)
        return ValuesIndices(self.gather(dim, index), index)

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
        """The ``k`` largest (or smallest) values along ``dim`` and their indices."""
        d = norm_dim(dim, self.ndim)
        if not 0 <= k <= self.shape[d]:
            raise ShapeError(f"topk: k={k} is out of range for dim {d} of size {self.shape[d]}")
        index = self.argsort(d, descending=largest)
        index = index[(slice(None),) * d + (slice(0, k),)]
        return ValuesIndices(self.gather(d, index), index)

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
        return _where(constant(keep, device=self.device), self, 0.0)

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
