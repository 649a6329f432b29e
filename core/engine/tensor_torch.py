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

Indexing along an axis, shape helpers and in-place variants are in
``core.engine.tensor_shape``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from core.engine import linalg
from core.engine.dispatch import apply, is_tensor, lift
from core.engine.ops import Op
from core.engine.tensor_shape import ShapeMethods, norm_dim, select
from core.errors import DtypeError, ShapeError


class ValuesIndices(NamedTuple):
    """What ``max(dim)``, ``min(dim)``, ``sort`` and ``topk`` return, as PyTorch's."""

    values: Any
    indices: Any


def reduce_args(dim: Any, keepdim: bool, axis: Any, keepdims: Any, ndim: int) -> tuple:
    """(sorted axes or None, keepdims) from PyTorch's or NumPy's names."""
    if axis is not None:
        if dim is not None:
            raise TypeError("give dim or its alias axis, not both")
        dim = axis
    keep = bool(keepdim if keepdims is None else keepdims)
    if dim is None:
        return None, keep
    if type(dim) is int and 0 <= dim < ndim:  # the common case, first
        return (dim,), keep
    if isinstance(dim, int | np.integer):
        return (norm_dim(int(dim), ndim),) if ndim else (int(dim),), keep
    return tuple(sorted(norm_dim(int(d), ndim) for d in dim)), keep


class TorchMethods(ShapeMethods):
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

    def tan(self):
        return self.sin() / self.cos()

    def sinh(self):
        """``(expm1(x) - expm1(-x)) / 2``: exact near 0."""
        return (self.expm1() - (-self).expm1()) * 0.5

    def cosh(self):
        return (self.exp() + (-self).exp()) * 0.5

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

    def __eq__(self, other: Any):  # elementwise, as PyTorch's (None: plain False)
        return False if other is None else self.eq(other)

    def __ne__(self, other: Any):
        return True if other is None else self.ne(other)

    __hash__ = object.__hash__

    def _logical(self, other: Any, op: Op):
        if self.dtype != np.bool_ or (is_tensor(other) and other.dtype != np.bool_):
            raise DtypeError(
                f"&, | and ~ are for boolean tensors here, not {self.dtype}; compare first"
            )
        return apply(op, (self, lift(other, self)))

    def __and__(self, other: Any):
        """Elementwise and of boolean tensors."""
        return self._logical(other, Op.MUL)

    def __or__(self, other: Any):
        """Elementwise or of boolean tensors."""
        return self._logical(other, Op.MAXIMUM)

    def __invert__(self):
        """Elementwise not of a boolean tensor."""
        return self._logical(False, Op.EQ)

    logical_and, logical_or = __and__, __or__
    logical_not = __invert__

    def gt(self, other: Any):
        return self > other

    def ge(self, other: Any):
        return self >= other

    def lt(self, other: Any):
        return self < other

    def le(self, other: Any):
        return self <= other

    greater, greater_equal, less, less_equal = gt, ge, lt, le

    def matmul(self, other: Any):
        return self @ other

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

    def mm(self, other: Any):
        return linalg.mm(self, other)

    def bmm(self, other: Any):
        return linalg.bmm(self, other)

    def mv(self, other: Any):
        return linalg.mv(self, other)

    def dot(self, other: Any):
        return linalg.dot(self, other)

    def outer(self, other: Any):
        return linalg.outer(self, other)

    def cross(self, other: Any, dim: int | None = None):
        """The cross product of 3-vectors along ``dim`` (the first dim of size 3
        when not given, as ``torch.cross``)."""
        if dim is None:
            dim = next((i for i, n in enumerate(self.shape) if n == 3), None)
            if dim is None:
                raise ShapeError(f"cross: no dim of size 3 in shape {self.shape}")
        d = norm_dim(dim, self.ndim)
        a, b = self.unbind(d), lift(other, self).unbind(d)
        parts = (
            a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0],
        )
        return apply(Op.STACK, parts, {"axis": d})

    def kron(self, other: Any):
        """The Kronecker product (blocks of ``self[i] * other``)."""
        n = max(self.ndim, other.ndim)
        a = self.reshape(*(1,) * (n - self.ndim), *self.shape)
        b = other.reshape(*(1,) * (n - other.ndim), *other.shape)
        spread_a = a.reshape(*[v for s in a.shape for v in (s, 1)])
        spread_b = b.reshape(*[v for s in b.shape for v in (1, s)])
        return (spread_a * spread_b).reshape(*[x * y for x, y in zip(a.shape, b.shape)])

    def long(self):
        return self.astype(np.int64)

    def int(self):
        return self.astype(np.int32)

    def bool(self):
        return self.astype(np.bool_)

    def half(self):
        return self.astype(np.float16)

    def where(self, condition: Any, other: Any):
        """``self`` where ``condition``, else ``other`` (``Tensor.where``)."""
        return select(condition, self, other)

    def masked_fill(self, mask: Any, value: Any):
        """``value`` where ``mask`` is true, ``self`` elsewhere."""
        return select(lift(mask, self), lift(value, self), self)

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

    def var_mean(self, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, **kw):
        """(variance, mean) over ``dim``, as ``torch.var_mean``."""
        return self.var(dim, unbiased, keepdim, **kw), self.mean(dim, keepdim)

    def std_mean(self, dim: Any = None, unbiased: bool | None = None, keepdim: bool = False, **kw):
        return self.std(dim, unbiased, keepdim, **kw), self.mean(dim, keepdim)

    def logsumexp(self, dim: Any, keepdim: bool = False):
        """``log(sum(exp(x)))`` over ``dim``, shifted by the (detached) maximum so
        nothing overflows; infinite maxima are not shifted (as PyTorch)."""
        axes, keep = reduce_args(dim, keepdim, None, None, self.ndim)
        top = self.amax(axes, keepdim=True).detach()
        top = select(top.abs().eq(math.inf), 0.0, top)
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

    def median(self, dim: int | None = None, keepdim: bool = False):
        """The lower median (of everything, or (values, indices) along ``dim``)."""
        if dim is None:
            flat = self.flatten()
            return flat.sort(0).values[(flat.shape[0] - 1) // 2]
        d = norm_dim(dim, self.ndim)
        ordered = self.sort(d)
        middle = (slice(None),) * d + (slice((self.shape[d] - 1) // 2, (self.shape[d] + 1) // 2),)
        values, indices = ordered.values[middle], ordered.indices[middle]
        if not keepdim:
            values, indices = values.squeeze(d), indices.squeeze(d)
        return ValuesIndices(values, indices)

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
