"""The one dispatch point: every op, in every mode, runs through ``apply``.

``apply(op, inputs, attrs)`` checks the inputs, runs the registered forward,
records a graph ``Node`` when a gradient is wanted, tells the trace hook (the
deferred compiler's tracer) and emits ``OpForward`` when someone listens.
``core.engine.inplace.apply_`` is the same op in place: the target tensor
takes the new value.
Every value the engine makes is an op's output or comes from ``constant`` (or
a creation function): nothing reaches a gradient rule as a bare array.

Observing changes nothing: the ops run, their ids and their values are the same
with and without a subscriber; a subscriber only chooses how much each event
carries.

>>> import core
>>> from core.engine.ops import Op
>>> x = core.tensor([1.0, -2.0], requires_grad=True)
>>> y = apply(Op.MUL, (x, constant(3.0, like=x)))
>>> y.tolist(), y.node.opdef.label
([3.0, -6.0], 'mul')
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Sequence
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

import numpy as np

from core.device import synchronize, xp_for
from core.engine import modes
from core.engine.ops import REGISTRY, Op, OpDef
from core.errors import DeviceError, DtypeError, GradError, OpError, ShapeError
from core.observe.bus import BUS
from core.observe.events import OpForward, TensorCreated
from core.observe.source import user_source, where
from core.observe.stats import summarize

if TYPE_CHECKING:
    from core.engine.tensor import Tensor

_EMPTY: dict[str, Any] = {}
_tensor_ids = itertools.count(1)
_node_ids = itertools.count(1)
_grad_enabled = modes.grad_enabled
_phase = modes.phase_name
_scope = modes.scope_path


def reset_ids() -> None:
    """Restart tensor and node ids at 1, so a rerun gives the same graph."""
    global _tensor_ids, _node_ids
    _tensor_ids = itertools.count(1)
    _node_ids = itertools.count(1)


def new_id() -> int:
    """A fresh tensor id (each value the engine makes has one)."""
    return next(_tensor_ids)


def new_node_id() -> int:
    """A fresh node id (each op the engine runs, or a compiled step tells, has one)."""
    return next(_node_ids)


# -- the tensor type -----------------------------------------------------------------

_Tensor: Any = None  # core.engine.tensor.Tensor, bound when that module loads
_SideOutput: Any = None
_new_tensor: Callable[..., Any] = object.__new__


def bind_tensor_type(cls: type) -> None:
    """Make ``cls`` the type ``apply`` returns (``core.engine.tensor`` calls this
    once, so this module needs no import of it: the dependency runs one way)."""
    global _Tensor, _SideOutput, _new_tensor

    class SideOutput(cls):
        """A side output of a multi-output op, as a gradient rule reads it."""

        __slots__ = ("_slot",)

    _Tensor, _SideOutput, _new_tensor = cls, SideOutput, cls.__new__


def wrap(data: Any, device: str, requires_grad: bool = False) -> Tensor:
    """A Tensor around an existing array, with a fresh id (no copy, no event)."""
    t = _new_tensor(_Tensor)
    t.data = data
    t.device = device
    t.requires_grad = requires_grad
    t._grad = None
    t._node = None
    t.id = next(_tensor_ids)
    t.name = None
    return t


# -- the graph -------------------------------------------------------------------------


class Node:
    """One op in the autograd graph; also the ``ctx`` its gradient rule gets.

    The primary output is held weakly (it holds the node); side outputs are
    held as (id, array) and become tensors again when a rule reads them, so
    the node never sits in a reference cycle.
    """

    __slots__ = ("id", "opdef", "inputs", "attrs", "_out", "side", "freed", "epoch")

    def __init__(self, nid: int, opdef: OpDef, inputs: tuple, attrs: dict, out: Tensor) -> None:
        self.id = nid
        self.opdef = opdef
        self.inputs = inputs
        self.attrs = attrs
        self._out = weakref.ref(out)
        self.side: tuple[tuple[int, Any], ...] | None = None
        self.freed = False
        # in-place writes made before this node: a saved tensor whose version
        # is larger was written after the node saved it (see ``check_saved``)
        self.epoch = _writes

    @property
    def output(self) -> Tensor:
        out = self._out()
        if out is None:
            raise GradError(f"the output of node {self.name} was freed")
        return out

    @property
    def name(self) -> str:
        return f"{self.opdef.label}_{self.id}"

    def out(self, i: int) -> Tensor:
        """Output ``i`` (0: the primary; 1...: the side outputs, by position)."""
        if i == 0:
            return self.output
        if self.side is None:
            raise GradError(f"node {self.name} has released its side outputs")
        tid, data = self.side[i - 1]
        t = _new_tensor(_SideOutput)
        t.data = data
        t.device = self.inputs[0].device
        t.requires_grad = i not in self.opdef.nondiff_outputs
        t._grad = None
        t._node = self if t.requires_grad else None
        t._slot = i
        t.id = tid
        t.name = None
        return t

    def needs(self, i: int) -> bool:
        """Whether input ``i`` wants a gradient (rules skip the work otherwise)."""
        return self.inputs[i].requires_grad


# -- the trace hook -----------------------------------------------------------------------

# Called as hook(kind, payload) for every op ("op"), constant ("constant"),
# declared input ("leaf") and value read out as Python data ("read", whose
# answer replaces the value) while set; the deferred compiler's tracer sets it.
# None costs one global read.
_hook: Callable[[str, Any], Any] | None = None


def set_hook(hook: Callable[[str, Any], None] | None) -> Callable[[str, Any], None] | None:
    """Install ``hook`` (or None); returns the one it replaces."""
    global _hook
    previous, _hook = _hook, hook
    return previous


def read(t: Tensor, kind: str, value: Any) -> Any:
    """A tensor's value leaving the engine as Python data (``item``: a number,
    ``array``: a host array): what the trace hook makes of it, or itself."""
    if _hook is None:
        return value
    return _hook("read", (t, kind, value))


def tracing() -> bool:
    """Whether a trace hook is installed."""
    return _hook is not None


def grad_reset(t: Tensor) -> None:
    """``t.grad = None`` (``zero_grad``) happened: the trace hook learns that the
    step does not depend on whether the tensor had a gradient."""
    if _hook is not None:
        _hook("zero_grad", t)


# -- constants --------------------------------------------------------------------------

_scalars: dict[tuple, Any] = {}  # (type, value, dtype, device) -> array; arrays are never written


def constant(
    value: Any, *, like: Tensor | None = None, dtype: Any = None, device: str | None = None
) -> Tensor:
    """A tensor that never needs a gradient, from a number or an array: the one
    way the engine makes a value that is not an op's output.

    A number takes ``like``'s floating dtype (so float32 work stays float32).
    Each call makes a new tensor with its own id, announced when someone
    listens; scalar arrays are shared between calls.
    """
    if like is not None:
        device = like.device if device is None else device
        if dtype is None and like.data.dtype.kind in "fc":
            dtype = like.data.dtype
    device = device or "cpu"
    if isinstance(value, bool | int | float):
        key = (type(value), value, dtype, device)
        data = _scalars.get(key)
        if data is None:
            xp = np if device == "cpu" else xp_for(device)
            data = xp.asarray(value, dtype=dtype)
            if len(_scalars) < 4096:
                _scalars[key] = data
    else:
        if isinstance(value, _Tensor):
            value = value.data
        xp = np if device == "cpu" else xp_for(device)
        data = xp.asarray(value, dtype=dtype)
    t = wrap(data, device, False)
    if _hook is not None:
        _hook("constant", t)
    if BUS.active:
        announce(t, "constant")
    return t


def leaf(data: Any, device: str, requires_grad: bool, kind: str, name: str | None = None) -> Tensor:
    """A declared input: a tensor around ``data`` that no op made (``kind``:
    "input", "parameter", "state" or "random"), told to the trace hook and
    announced (as "input" for random values)."""
    t = wrap(data, device, requires_grad)
    if _hook is not None:
        _hook("leaf", (t, kind))
    if BUS.active or name is not None:
        announce(t, "input" if kind == "random" else kind, name)
    return t


def lift(value: Any, like: Tensor) -> Tensor:
    """``value`` itself when it is a Tensor, else a constant like ``like``."""
    if isinstance(value, _Tensor):
        return value
    return constant(value, like=like)


def announce(t: Tensor, kind: str, name: str | None = None) -> None:
    """Emit ``TensorCreated`` for a leaf when someone listens (and name it)."""
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


# -- apply ------------------------------------------------------------------------------

# In-place writes so far (``core.engine.inplace`` counts them): a new node's
# ``epoch`` takes this count, so one comparison tells a write after it.
_writes = 0


def apply(op: Op, inputs: tuple[Tensor, ...], attrs: dict = _EMPTY) -> Tensor:
    """Run one registered op eagerly: check, compute, record the node, emit.

    Returns the op's first output; side outputs stay with the node.
    """
    opdef = REGISTRY[op]
    first = inputs[0]
    device = first.device
    a = first.data
    n = len(inputs)
    if n == 2:  # the common case, checked inline
        b = inputs[1].data
        if inputs[1].device != device or (b.dtype is not a.dtype and opdef.same_dtype):
            _check_inputs(opdef, inputs)
    elif n != 1:
        for t in inputs:
            if t.device != device or (t.data.dtype is not a.dtype and opdef.same_dtype):
                _check_inputs(opdef, inputs)
                break
    xp = np if device == "cpu" else xp_for(device)
    emit = BUS.active and (BUS.want_backward_ops or _phase.get() != "backward")
    if emit:
        start = _clock_start(device)
    try:
        if n == 2:
            out = opdef.forward(xp, a, b, **attrs) if attrs else opdef.forward(xp, a, b)
        elif n == 1:
            out = opdef.forward(xp, a, **attrs) if attrs else opdef.forward(xp, a)
        else:
            out = opdef.forward(xp, *[t.data for t in inputs], **attrs)
    except (ValueError, IndexError, TypeError, ZeroDivisionError) as exc:
        raise _op_error(opdef, inputs, attrs, exc) from None
    nid = next(_node_ids)
    requires = False
    if opdef.grad is not None and _grad_enabled.get():
        for t in inputs:
            if t.requires_grad:
                requires = True
                break
    side = None
    if opdef.multi:
        out, *rest = out
        side = tuple([(next(_tensor_ids), array) for array in rest])
    # wrap()'s body, inlined: calling it costs 3% of a tiny training step
    result = _new_tensor(_Tensor)
    result.data = out
    result.device = device
    result.requires_grad = requires
    result._grad = None
    result.id = next(_tensor_ids)
    result.name = None
    if requires:
        node = result._node = Node(nid, opdef, inputs, attrs, result)
        node.side = side
    else:
        result._node = None
    if _hook is not None:
        _hook("op", (nid, opdef, inputs, attrs, result, side, None))
    if emit:
        _emit_forward(nid, opdef, opdef.label, inputs, attrs, result, side, None, start)
    return result


# -- checks and errors ----------------------------------------------------------------------


def _clock_start(device: str) -> int:
    """When an emitted op starts (a profiler's subscriber first waits for the GPU)."""
    if BUS.want_sync and device != "cpu":
        synchronize(device)
    return perf_counter_ns()


def _check_inputs(opdef: OpDef, inputs: Sequence[Tensor]) -> None:
    """Raise when the inputs of one op are on different devices or mix float dtypes."""
    device = inputs[0].device
    label = opdef.label
    for t in inputs:
        if t.device != device:
            raise DeviceError(
                f"{label}: inputs are on different devices "
                f"({', '.join(i.device for i in inputs)}){where()}"
            )
    if opdef.same_dtype:
        floats = {t.dtype for t in inputs if t.dtype.kind == "f"}
        if len(floats) > 1:
            names = ", ".join(f"{t.dtype}{list(t.shape)}" for t in inputs)
            raise DtypeError(
                f"{label}: inputs have different dtypes ({names}); "
                f"convert one with .float() or .double(){where()}"
            )


def _op_error(opdef: OpDef, inputs: Sequence[Tensor], attrs: dict, exc: Exception) -> OpError:
    shapes = " and ".join(str(tuple(t.shape)) for t in inputs)
    kind = ShapeError if isinstance(exc, ValueError) else OpError
    if isinstance(exc, TypeError):
        kind = DtypeError
    detail = f"; {', '.join(f'{k}={_short(v)}' for k, v in attrs.items())}" if attrs else ""
    return kind(f"{opdef.label}: inputs of shape {shapes} do not fit ({exc}){detail}{where()}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 60 else text[:57] + "..."


# -- events ----------------------------------------------------------------------------------


def _emit_forward(
    nid: int,
    opdef: OpDef,
    label: str,
    inputs: Sequence[Tensor],
    attrs: dict,
    result: Tensor,
    side: tuple | None,
    value_id: int | None,
    start: int,
) -> None:
    if BUS.want_sync and result.device != "cpu":  # the op's run, not its launch
        synchronize(result.device)
    duration = perf_counter_ns() - start
    data = result.data
    phase_name = _phase.get()
    output = result.id if value_id is None else value_id
    # The optimizer's temporaries are not summarized: ParameterUpdated carries
    # the statistics of the value it writes.
    summarized = BUS.want_stats and phase_name != "update"
    event = OpForward(
        node_id=nid,
        op=label,
        inputs=tuple([t.id for t in inputs]),
        output=output,
        attrs=tuple(attrs.items()) if attrs else (),
        shape=data.shape,  # a tuple, for NumPy and CuPy alike
        dtype=dtype_name(data.dtype),
        device=result.device,
        duration_ns=duration,
        scope=_scope.get(),
        phase=phase_name,
        requires_grad=result.requires_grad and value_id is None,
        stats=summarize(data) if summarized else None,
        source=user_source(3) if BUS.want_source else None,
        side_outputs=tuple([tid for tid, _ in side]) if side else (),
        writes=None if value_id is None else result.id,
        grad_of=modes.rule_node.get() if phase_name == "backward" else None,
    )
    arrays = {output: data} if BUS.want_values else None
    if phase_name == "backward":
        BUS.emit_backward_op(event, arrays)
    else:
        BUS.emit(event, arrays)


def is_tensor(value: Any) -> bool:
    return isinstance(value, _Tensor)
