"""Tensor, the eager dispatcher ``apply`` and reverse-mode autodiff.

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

import itertools
import math
import os
import sys
import weakref
from collections.abc import Sequence
from contextvars import ContextVar
from time import perf_counter_ns
from typing import Any

import numpy as np

from core.device import to_device, to_host, xp_for
from core.engine.ops import REGISTRY, Op, OpDef
from core.errors import DeviceError, DtypeError, GradError, OpError, ShapeError
from core.observe.bus import BUS
from core.observe.events import OpForward, Source, TensorCreated
from core.observe.stats import summarize

float32 = np.float32
float64 = np.float64
int64 = np.int64

_grad_enabled: ContextVar[bool] = ContextVar("gradstep_grad_enabled", default=True)
_scope: ContextVar[str] = ContextVar("gradstep_scope", default="")
_phase: ContextVar[str] = ContextVar("gradstep_phase", default="forward")
_quiet: ContextVar[bool] = ContextVar("gradstep_quiet", default=False)

_tensor_ids = itertools.count(1)
_node_ids = itertools.count(1)
_CORE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_EMPTY: dict[str, Any] = {}


def reset_ids() -> None:
    """Restart tensor and node ids at 1, so a rerun gives the same graph."""
    global _tensor_ids, _node_ids
    _tensor_ids = itertools.count(1)
    _node_ids = itertools.count(1)
    _constants.clear()


class _Mode:
    """A context manager that sets one context variable and restores it."""

    __slots__ = ("_var", "_value", "_token")

    def __init__(self, var: ContextVar, value: Any) -> None:
        self._var = var
        self._value = value

    def __enter__(self) -> None:
        self._token = self._var.set(self._value)

    def __exit__(self, *exc: object) -> None:
        self._var.reset(self._token)


def no_grad() -> _Mode:
    """Ops inside record no graph (as ``torch.no_grad``).

    >>> import core
    >>> w = core.tensor(1.0, requires_grad=True)
    >>> with core.no_grad():
    ...     (w * 2).requires_grad
    False
    """
    return _Mode(_grad_enabled, False)


def enable_grad() -> _Mode:
    """Record the graph again inside a ``no_grad`` block."""
    return _Mode(_grad_enabled, True)


def is_grad_enabled() -> bool:
    return _grad_enabled.get()


def phase(name: str) -> _Mode:
    """Mark ops inside as belonging to ``name`` ("forward", "update")."""
    return _Mode(_phase, name)


def current_phase() -> str:
    return _phase.get()


def current_scope() -> str:
    return _scope.get()


def scope(path: str) -> _Mode:
    """Ops inside are attributed to module path ``path``."""
    return _Mode(_scope, path)


_inside_core: dict[Any, bool] = {}  # code object -> is it the engine's own code
_sources: dict[tuple[Any, int], Source] = {}  # (code, line) -> Source, reused


def user_source(skip: int = 1) -> Source | None:
    """The first frame outside ``core/``: the user's file, line and function."""
    frame = sys._getframe(skip)
    while frame is not None:
        code = frame.f_code
        inside = _inside_core.get(code)
        if inside is None:
            inside = _inside_core[code] = code.co_filename.startswith(_CORE_DIR)
        if not inside:
            break
        frame = frame.f_back
    if frame is None:
        return None
    key = (frame.f_code, frame.f_lineno)
    source = _sources.get(key)
    if source is None:
        if len(_sources) > 100_000:
            _sources.clear()
        source = _sources[key] = Source(code.co_filename, frame.f_lineno, code.co_name)
    return source


class Node:
    """One op in the autograd graph; also the ``ctx`` its gradient rule gets."""

    __slots__ = ("id", "opdef", "inputs", "attrs", "_out", "saved", "freed")

    def __init__(self, opdef: OpDef, inputs: tuple, attrs: dict, out: Tensor, saved) -> None:
        self.id = next(_node_ids)
        self.opdef = opdef
        self.inputs = inputs
        self.attrs = attrs
        self._out = weakref.ref(out)
        self.saved = saved
        self.freed = False

    @property
    def output(self) -> Tensor:
        out = self._out()
        if out is None:
            raise GradError(f"the output of node {self.name} was freed")
        return out

    @property
    def name(self) -> str:
        return f"{self.opdef.label}_{self.id}"

    def needs(self, i: int) -> bool:
        """Whether input ``i`` wants a gradient (rules skip the work otherwise)."""
        return self.inputs[i].requires_grad

    def saved_or(self, key: str, compute) -> Tensor:
        """A value the forward kept, or ``compute()`` when a graph is being built.

        Under ``create_graph`` the rule must stay differentiable, so it recomputes
        with Tensor ops; otherwise it reuses the forward's array as a constant.
        """
        if self.saved is not None and not _grad_enabled.get():
            return _wrap(self.saved[key], self.inputs[0].device, False)
        return compute()


class Tensor:
    """An n-dimensional array on "cpu" or "cuda" that records how it was made.

    >>> import core
    >>> t = core.tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> t.shape, t.dtype, t.device
    ((2, 2), dtype('float32'), 'cpu')
    >>> (t @ t).numpy().tolist()
    [[7.0, 10.0], [15.0, 22.0]]
    """

    __slots__ = ("data", "device", "requires_grad", "grad", "_node", "id", "name", "__weakref__")
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
        self.grad: Tensor | None = None
        self._node: Node | None = None
        self.id = next(_tensor_ids)
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
        return to_host(self.data)

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def __bool__(self) -> bool:
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
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
        return _wrap(self.data, self.device, False)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and self.dtype.kind not in "fc":
            raise DtypeError(f"only floating tensors can require grad, not {self.dtype}")
        self.requires_grad = flag
        return self

    def to(self, device: str) -> Tensor:
        """A copy on ``device`` ("cpu" or "cuda").

        The copy is a new leaf: gradients do not flow back across devices, so
        move data and models (``Module.to``) before building the graph.
        """
        if device == self.device:
            return self
        xp_for(device)  # fails with the reason when unavailable
        return _wrap(to_device(self.data, device), device, self.requires_grad and self.is_leaf)

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
        from core.engine.autograd import backward

        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph)

    # -- operators -------------------------------------------------------------

    def __add__(self, other: Any) -> Tensor:
        return apply(Op.ADD, (self, _lift(other, self)))

    def add(self, other: Any, *, alpha: float = 1.0) -> Tensor:
        """``self + alpha * other`` in one op (as ``torch.add``).

        >>> import core
        >>> core.tensor([1.0, 2.0]).add(core.tensor([10.0, 20.0]), alpha=-0.5).tolist()
        [-4.0, -8.0]
        """
        other = _lift(other, self)
        if alpha == 1.0:
            return apply(Op.ADD, (self, other))
        return apply(Op.ADD_SCALED, (self, other), {"alpha": float(alpha)})

    def __radd__(self, other: Any) -> Tensor:
        return apply(Op.ADD, (_lift(other, self), self))

    def __sub__(self, other: Any) -> Tensor:
        return apply(Op.SUB, (self, _lift(other, self)))

    def __rsub__(self, other: Any) -> Tensor:
        return apply(Op.SUB, (_lift(other, self), self))

    def __mul__(self, other: Any) -> Tensor:
        return apply(Op.MUL, (self, _lift(other, self)))

    def __rmul__(self, other: Any) -> Tensor:
        return apply(Op.MUL, (_lift(other, self), self))

    def __truediv__(self, other: Any) -> Tensor:
        return apply(Op.DIV, (self, _lift(other, self)))

    def __rtruediv__(self, other: Any) -> Tensor:
        return apply(Op.DIV, (_lift(other, self), self))

    def __neg__(self) -> Tensor:
        return apply(Op.NEG, (self,))

    def __pow__(self, exponent: Any) -> Tensor:
        if isinstance(exponent, Tensor):
            return apply(Op.POW, (self, exponent))
        return apply(Op.POW_SCALAR, (self,), {"exponent": float(exponent)})

    def __rpow__(self, base: Any) -> Tensor:
        return apply(Op.POW, (_lift(base, self), self))

    def __matmul__(self, other: Any) -> Tensor:
        return apply(Op.MATMUL, (self, _lift(other, self)))

    def __rmatmul__(self, other: Any) -> Tensor:
        return apply(Op.MATMUL, (_lift(other, self), self))

    def __gt__(self, other: Any) -> Tensor:
        return apply(Op.GT, (self, _lift(other, self)))

    def __ge__(self, other: Any) -> Tensor:
        return apply(Op.GE, (self, _lift(other, self)))

    def __lt__(self, other: Any) -> Tensor:
        return apply(Op.LT, (self, _lift(other, self)))

    def __le__(self, other: Any) -> Tensor:
        return apply(Op.LE, (self, _lift(other, self)))

    def eq(self, other: Any) -> Tensor:
        return apply(Op.EQ, (self, _lift(other, self)))

    __hash__ = object.__hash__

    def __getitem__(self, index: Any) -> Tensor:
        return apply(Op.GETITEM, (self,), {"index": _plain_index(index, self.device)})

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

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return apply(Op.SUM, (self,), {"axis": _axis(axis, self.ndim), "keepdims": keepdims})

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return apply(Op.MEAN, (self,), {"axis": _axis(axis, self.ndim), "keepdims": keepdims})

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return apply(Op.MAX, (self,), {"axis": _axis(axis, self.ndim), "keepdims": keepdims})

    def min(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return apply(Op.MIN, (self,), {"axis": _axis(axis, self.ndim), "keepdims": keepdims})

    def var(self, axis: Any = None, keepdims: bool = False, correction: int = 1) -> Tensor:
        attrs = {"axis": _axis(axis, self.ndim), "keepdims": keepdims, "correction": correction}
        return apply(Op.VAR, (self,), attrs)

    def sum_to(self, shape: Sequence[int]) -> Tensor:
        """Sum broadcast dimensions away so the result has ``shape``."""
        shape = tuple(shape)
        if shape == self.shape:
            return self
        return apply(Op.SUM_TO, (self,), {"shape": shape})

    def norm(self) -> Tensor:
        """The L2 norm of all elements, ``sqrt(sum(x * x))``."""
        return (self * self).sum().sqrt()

    def softmax(self, axis: int = -1) -> Tensor:
        return apply(Op.SOFTMAX, (self,), {"axis": axis % self.ndim})

    def log_softmax(self, axis: int = -1) -> Tensor:
        return apply(Op.LOG_SOFTMAX, (self,), {"axis": axis % self.ndim})

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

    def flatten(self, start_dim: int = 0) -> Tensor:
        start_dim %= max(self.ndim, 1)
        return self.reshape(*self.shape[:start_dim], -1)

    def unsqueeze(self, dim: int) -> Tensor:
        dim = dim % (self.ndim + 1)
        return self.reshape(*self.shape[:dim], 1, *self.shape[dim:])

    def squeeze(self, dim: int | None = None) -> Tensor:
        if dim is None:
            return self.reshape(*[s for s in self.shape if s != 1])
        dim %= self.ndim
        if self.shape[dim] != 1:
            return self
        return self.reshape(*self.shape[:dim], *self.shape[dim + 1 :])

    def permute(self, *axes: Any) -> Tensor:
        if len(axes) == 1 and isinstance(axes[0], tuple | list):
            axes = tuple(axes[0])
        axes = tuple(a % self.ndim for a in axes)
        if axes == tuple(range(self.ndim)):
            return self
        return apply(Op.PERMUTE, (self,), {"axes": axes})

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        axes = list(range(self.ndim))
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


def _is_array(data: Any) -> bool:
    return hasattr(data, "dtype") and hasattr(data, "shape")


def _wrap(data: Any, device: str, requires_grad: bool) -> Tensor:
    """A Tensor around an existing array, without conversion (internal)."""
    t = Tensor.__new__(Tensor)
    t.data = data
    t.device = device
    t.requires_grad = requires_grad
    t.grad = None
    t._node = None
    t.id = next(_tensor_ids)
    t.name = None
    return t


_constants: dict[tuple, Tensor] = {}  # silent runs reuse scalar constants


def _lift(value: Any, like: Tensor) -> Tensor:
    """A Python number becomes a constant tensor with ``like``'s dtype.

    With no subscriber the constant is cached (a GPU run then copies each number
    to the device once); when someone listens each use is a fresh, announced leaf.
    """
    if isinstance(value, Tensor):
        return value
    data = like.data
    dtype = data.dtype if data.dtype.kind in "fc" else None
    listening = BUS.active and not _quiet.get()
    key = (type(value), value, dtype, like.device)
    if not listening:
        cached = _constants.get(key)
        if cached is not None:
            return cached
    xp = np if like.device == "cpu" else xp_for(like.device)
    t = _wrap(xp.asarray(value, dtype=dtype), like.device, False)
    if listening:
        announce(t, "constant")
    elif len(_constants) < 256 and isinstance(value, int | float | bool):
        _constants[key] = t
    return t


def _axis(axis: Any, ndim: int) -> tuple[int, ...] | None:
    if axis is None:
        return None
    if isinstance(axis, int):
        return (axis % ndim,)
    return tuple(sorted(a % ndim for a in axis))


def _resolve_shape(shape: tuple, size: int, old: tuple) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    if shape.count(-1) == 1:
        known = 1
        for s in shape:
            if s != -1:
                known *= s
        if known == 0 or size % known:
            raise ShapeError(f"reshape: cannot reshape {old} into {shape}{_where()}")
        shape = tuple(size // known if s == -1 else s for s in shape)
    if math.prod(shape) != size:
        raise ShapeError(f"reshape: cannot reshape {old} ({size} elements) into {shape}{_where()}")
    return shape


def _plain_index(index: Any, device: str) -> Any:
    """Index with Tensors replaced by arrays on ``device``; lists become arrays."""
    if isinstance(index, tuple):
        return tuple(_plain_index(i, device) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return xp_for(device).asarray(index)
    return index


def announce(t: Tensor, kind: str, name: str | None = None) -> None:
    """Emit ``TensorCreated`` for a leaf (the engine calls it when someone listens)."""
    if name is not None:
        t.name = name
    if not BUS.active:
        return
    BUS.emit(
        TensorCreated(
            tensor_id=t.id,
            kind=kind,
            name=t.name or f"{kind}_{t.id}",
            shape=tuple(t.shape),
            dtype=dtype_name(t.dtype),
            device=t.device,
            requires_grad=t.requires_grad,
            scope=_scope.get(),
            stats=summarize(t.data) if BUS.want_stats else None,
            source=user_source(2) if BUS.want_source else None,
        ),
        {t.id: t.data} if BUS.want_values else None,
    )


_dtype_names: dict[Any, str] = {}


def dtype_name(dtype: Any) -> str:
    """``dtype.name``, which NumPy computes in Python on every access, cached."""
    name = _dtype_names.get(dtype)
    if name is None:
        name = _dtype_names[dtype] = dtype.name
    return name


def _where() -> str:
    src = user_source(2)
    return f" (at {src})" if src is not None else ""


def _op_error(opdef: OpDef, inputs: Sequence[Tensor], attrs: dict, exc: Exception) -> OpError:
    shapes = " and ".join(str(tuple(t.shape)) for t in inputs)
    label = opdef.op.label
    kind = ShapeError if isinstance(exc, ValueError) else OpError
    if isinstance(exc, TypeError):
        kind = DtypeError
    detail = f"; {', '.join(f'{k}={_short(v)}' for k, v in attrs.items())}" if attrs else ""
    return kind(f"{label}: inputs of shape {shapes} do not fit ({exc}){detail}{_where()}")


def _short(value: Any) -> str:
    if _is_array(value):
        return f"<{value.dtype}{list(value.shape)}>"
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


def plain_attrs(attrs: dict) -> tuple[tuple[str, Any], ...]:
    """Attributes as (name, plain value) pairs, arrays summarised, for events."""
    if not attrs:
        return ()
    out = []
    for key, value in attrs.items():
        if _is_array(value) or isinstance(value, tuple | list) and any(map(_is_array, value)):
            value = _short(value)
        elif isinstance(value, slice | type(Ellipsis)) or (
            isinstance(value, tuple) and any(isinstance(v, slice | type(None)) for v in value)
        ):
            value = _short(value)
        out.append((key, value))
    return tuple(out)


def apply(op: Op, inputs: tuple[Tensor, ...], attrs: dict = _EMPTY) -> Tensor:
    """Run one registered op eagerly: check, compute, record the node, emit."""
    opdef = REGISTRY[op]
    first = inputs[0]
    device = first.device
    a = first.data
    n = len(inputs)
    if n == 2:  # the common case, checked inline
        b = inputs[1].data
        if inputs[1].device != device or (b.dtype is not a.dtype and opdef.same_dtype):
            _check_inputs(op, opdef, inputs)
    elif n != 1:
        for t in inputs:
            if t.device != device or (t.data.dtype is not a.dtype and opdef.same_dtype):
                _check_inputs(op, opdef, inputs)
                break
    xp = np if device == "cpu" else xp_for(device)
    emit = BUS.active and not _quiet.get()
    if emit:
        start = perf_counter_ns()
    try:
        if n == 2:
            out = opdef.forward(xp, a, b, **attrs) if attrs else opdef.forward(xp, a, b)
        elif n == 1:
            out = opdef.forward(xp, a, **attrs) if attrs else opdef.forward(xp, a)
        else:
            out = opdef.forward(xp, *[t.data for t in inputs], **attrs)
    except (ValueError, IndexError, TypeError) as exc:
        raise _op_error(opdef, inputs, attrs, exc) from None
    saved = None
    if opdef.saves:
        out, saved = out
    requires = False
    if opdef.grad is not None and _grad_enabled.get():
        for t in inputs:
            if t.requires_grad:
                requires = True
                break
    # _wrap's body, inlined: calling it costs 3% of a tiny training step
    result = _new_tensor(Tensor)
    result.data = out
    result.device = device
    result.requires_grad = requires
    result.grad = None
    result.id = next(_tensor_ids)
    result.name = None
    result._node = Node(opdef, inputs, attrs, result, saved) if requires else None
    if emit:
        _emit_forward(opdef, inputs, attrs, result, perf_counter_ns() - start)
    return result


_new_tensor = Tensor.__new__


def _check_inputs(op: Op, opdef: OpDef, inputs: Sequence[Tensor]) -> None:
    """Raise when the inputs of one op are on different devices or mix float dtypes."""
    device = inputs[0].device
    for t in inputs:
        if t.device != device:
            raise DeviceError(
                f"{op.label}: inputs are on different devices "
                f"({', '.join(i.device for i in inputs)}){_where()}"
            )
    if opdef.same_dtype:
        dtype = inputs[0].data.dtype
        if any(t.data.dtype is not dtype for t in inputs):
            _check_dtypes(op, [t.data for t in inputs], inputs)


def _check_dtypes(op: Op, arrays: list, inputs: Sequence[Tensor]) -> None:
    first = None
    for a in arrays:
        if a.dtype.kind == "f":
            if first is None:
                first = a.dtype
            elif a.dtype != first:
                names = ", ".join(f"{t.dtype}{list(t.shape)}" for t in inputs)
                raise DtypeError(
                    f"{op.label}: inputs have different dtypes ({names}); "
                    f"convert one with .float() or .double(){_where()}"
                )


def _emit_forward(opdef: OpDef, inputs, attrs, result: Tensor, duration: int) -> None:
    node = result._node
    node_id = node.id if node is not None else next(_node_ids)
    data = result.data
    phase_name = _phase.get()
    # The optimizer's temporaries are not summarized: ParameterUpdated carries
    # the statistics of the value it writes.
    summarized = BUS.want_stats and phase_name != "update"
    BUS.emit(
        OpForward(
            node_id=node_id,
            op=opdef.label,
            inputs=tuple([t.id for t in inputs]),
            output=result.id,
            attrs=plain_attrs(attrs),
            shape=data.shape,  # a tuple, for NumPy and CuPy alike
            dtype=dtype_name(data.dtype),
            device=result.device,
            duration_ns=duration,
            scope=_scope.get(),
            phase=phase_name,
            requires_grad=result.requires_grad,
            stats=summarize(data) if summarized else None,
            source=user_source(3) if BUS.want_source else None,
        ),
        {result.id: data} if BUS.want_values else None,
    )
