"""Engine events: frozen, plain facts, and the bus that carries them.

The vocabulary, in the order a training step produces it::

    RunStarted        a program run begins (Session)
    StepStarted       one training step begins
    ModuleEnter       an nn.Module's forward begins; its path becomes the scope
    TensorCreated     a leaf appears: an input, a parameter or a constant
    OpForward         one op ran (forward pass, or the optimizer's update ops)
    ModuleExit        the module's forward returned
    BackwardStarted   ``.backward()`` begins, with the nodes it will visit
    OpBackward        one node's gradient rule ran
    GradAccumulated   a gradient was added into a leaf's ``.grad``
    BackwardEnded     ``.backward()`` returned
    ParameterUpdated  an optimizer wrote a new value into a parameter
    StepEnded         the step returned its loss
    RunFinished       the run ended (finished, stopped or errored)

Events never hold arrays or Qt objects: ids link them to tensors, whose values a
Recording keeps. ``Stats`` and ``Source`` are filled in only when a subscriber
asked for them; with no subscriber the engine builds no event at all.

>>> seen = []
>>> unsubscribe = BUS.subscribe(seen.append)
>>> BUS.emit(StepStarted(step=0))
>>> unsubscribe()
>>> seen
[StepStarted(step=0)]
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Any

import numpy as _np

from core.moments import centred_moments, moments

Attrs = tuple[tuple[str, Any], ...]


def event(cls: type) -> type:
    """``@dataclass(frozen=True, slots=True)``, built about twice as fast.

    A frozen dataclass's generated ``__init__`` stores each field through
    ``object.__setattr__``; the engine builds tens of thousands of events a
    second, so this one stores through the slots' own descriptors instead
    (0.99 instead of 1.7 microseconds for ``OpForward``). Equality, hashing,
    ``repr``, ``dataclasses.fields`` and the ``FrozenInstanceError`` on
    assignment are the dataclass's own.
    """
    cls = dataclass(frozen=True, slots=True)(cls)
    params, body, scope = [], [], {}
    for f in fields(cls):
        if f.default_factory is not MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: default factories are not supported")
        if f.default is MISSING:
            params.append(f.name)
        else:
            scope[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        scope[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        body.append(f"    _set_{f.name}(self, {f.name})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body) + "\n"
    exec(source, scope)  # noqa: S102  (generated from the field names above)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = init
    return cls


@event
class Stats:
    """Summary statistics of one tensor, computed where it lives."""

    min: float  # smallest finite value (nan when none is finite)
    max: float  # largest finite value
    mean: float  # mean over finite values
    std: float  # population standard deviation over finite values
    norm: float  # L2 norm over finite values
    nan: int  # number of NaN elements
    inf: int  # number of +/-Inf elements
    size: int  # number of elements
    zeros: int = 0  # number of exact zeros (dead units, sparse gradients)

    @property
    def finite(self) -> bool:
        return self.nan == 0 and self.inf == 0


@event
class Source:
    """Where in the user's program something happened."""

    file: str  # absolute path of the user's file
    line: int  # 1-based line number
    function: str  # enclosing function name

    def __str__(self) -> str:
        return f"{self.file}:{self.line} in {self.function}"


@event
class RunStarted:
    program: str  # path or title of the program
    device: str  # "cpu" or "cuda"


@event
class RunFinished:
    status: str  # "finished", "stopped" or "errored"
    error: str | None = None  # the error message when errored


@event
class StepStarted:
    step: int  # 0-based training step


@event
class StepEnded:
    step: int  # the step that ended
    loss: float | None = None  # its loss, when it returned one


@event
class ModuleEnter:
    path: str  # dotted module path, e.g. "model.fc1"
    kind: str  # module class name, e.g. "Linear"


@event
class ModuleExit:
    path: str  # the path of the matching ModuleEnter
    kind: str  # module class name


@event
class TensorCreated:
    tensor_id: int  # id of the new leaf tensor
    kind: str  # "input", "parameter" or "constant"
    name: str  # parameter path ("fc1.weight") or a generated name
    shape: tuple[int, ...]  # tensor shape
    dtype: str  # e.g. "float32"
    device: str  # "cpu" or "cuda"
    requires_grad: bool  # whether gradients flow into it
    scope: str  # module path at creation ("" at top level)
    stats: Stats | None = None  # filled when a subscriber asked for stats
    source: Source | None = None  # filled when a subscriber asked for sources


@event
class OpForward:
    node_id: int  # id of the graph node this op created
    op: str  # op label, e.g. "matmul"
    inputs: tuple[int, ...]  # input tensor ids, in argument order
    output: int  # output tensor id
    attrs: Attrs  # op attributes as (name, plain value) pairs
    shape: tuple[int, ...]  # output shape
    dtype: str  # output dtype
    device: str  # "cpu" or "cuda"
    duration_ns: int  # wall time of the array computation
    scope: str  # module path ("model.fc1"), "" at top level
    phase: str  # "forward" or "update"
    requires_grad: bool  # whether the output is part of the autograd graph
    # output statistics, when asked for; None for "update" ops, whose result
    # ParameterUpdated summarizes
    stats: Stats | None = None
    source: Source | None = None  # user's line, when asked for


@event
class BackwardStarted:
    root: int  # tensor id backward was called on
    nodes: tuple[int, ...]  # node ids in the order their rules will run


@event
class OpBackward:
    node_id: int  # the forward node whose rule ran
    op: str  # its op label
    grad_output: int  # tensor id of the incoming gradient
    grad_inputs: tuple[int | None, ...]  # gradient tensor id per input (None: none)
    inputs: tuple[int, ...]  # the forward node's input tensor ids
    duration_ns: int  # wall time of the rule
    stats: tuple[Stats | None, ...] | None = None  # per grad input, when asked for
    grad_output_stats: Stats | None = None  # the incoming gradient, when asked for


@event
class GradAccumulated:
    tensor_id: int  # the leaf
    grad_id: int  # tensor id of the gradient that was added
    name: str  # the leaf's name
    stats: Stats | None = None  # statistics of the leaf's total .grad


@event
class BackwardEnded:
    root: int  # tensor id backward was called on
    duration_ns: int  # wall time of the whole backward pass


@event
class ParameterUpdated:
    tensor_id: int  # the parameter
    name: str  # its name
    optimizer: str  # "SGD", "Adam", ...
    value_id: int  # tensor id of the new value that was written
    stats: Stats | None = None  # statistics of the new value


Event = (
    RunStarted
    | RunFinished
    | StepStarted
    | StepEnded
    | ModuleEnter
    | ModuleExit
    | TensorCreated
    | OpForward
    | BackwardStarted
    | OpBackward
    | GradAccumulated
    | BackwardEnded
    | ParameterUpdated
)


_recent: dict[int, tuple[Any, Stats]] = {}  # id(array) -> (array, stats), newest last
_RECENT_MAX = 32  # arrays kept alive by the cache; a step's gradients come back within a few


def summarize(array: Any) -> Stats:
    """Statistics of a NumPy or CuPy array, reduced on its own device.

    On the host, one compiled pass for a finite float array (``core.moments``);
    on the GPU, five reductions and one host transfer. The same array object
    summarized again (a gradient handed from one backward rule to the next, an
    accumulated ``.grad``) is answered from a small cache.
    """
    hit = _recent.get(id(array))
    if hit is not None and hit[0] is array:
        return hit[1]
    stats = _summarize(array)
    if len(_recent) >= _RECENT_MAX:
        _recent.pop(next(iter(_recent)))
    _recent[id(array)] = (array, stats)
    return stats


def _summarize(array: Any) -> Stats:
    size = int(array.size)
    if size == 0:
        return Stats(math.nan, math.nan, math.nan, math.nan, 0.0, 0, 0, 0)
    if size == 1:  # scalars (losses, constants) are most events: no reductions
        v = float(array.reshape(-1)[0])
        if math.isnan(v):
            return Stats(math.nan, math.nan, math.nan, math.nan, math.nan, 1, 0, 1)
        if math.isinf(v):
            return Stats(math.nan, math.nan, math.nan, math.nan, math.nan, 0, 1, 1)
        return Stats(v, v, v, 0.0, abs(v), 0, 0, 1, int(v == 0.0))
    if isinstance(array, _np.ndarray):
        xp = _np
        flat = array.reshape(-1)
        if flat.dtype not in _HOST_FLOATS:
            flat = flat.astype(_np.float64)  # ints, bools, float16, byte-swapped
        total, squares, low, high, zeros = moments(flat)
    else:
        xp = _xp(array)
        flat = array.reshape(-1)
        if flat.dtype.kind != "f":
            flat = flat.astype(xp.float64)
        zeros = xp.count_nonzero(flat == 0)
        values = (flat.sum(dtype=xp.float64), xp.dot(flat, flat), flat.min(), flat.max(), zeros)
        values = xp.stack([xp.asarray(v, dtype=xp.float64) for v in values]).get()
        total, squares, low, high, zeros = values
    total, squares = float(total), float(squares)
    if not (math.isfinite(total) and math.isfinite(squares)):
        return _summarize_nonfinite(xp, array, size)
    low, high = float(low), float(high)
    mean = total / size
    var = squares / size - mean * mean
    if low == high:  # constant: exact, whatever the order of the sums
        mean, var = low, 0.0
    elif var < mean * mean:  # |mean| > std: the one-pass sums cancel, take two passes
        mean, var = centred_moments(xp, flat, mean)
    std = math.sqrt(max(var, 0.0))
    return Stats(low, high, mean, std, math.sqrt(squares), 0, 0, size, int(zeros))


_HOST_FLOATS = (_np.dtype(_np.float32), _np.dtype(_np.float64))  # what core.moments reads


def _summarize_nonfinite(xp: Any, array: Any, size: int) -> Stats:
    """The exact path for arrays holding NaN or Inf (or overflowing sums)."""
    zeros = int(xp.count_nonzero(array == 0))
    if array.dtype.kind not in "fc":
        a = array.astype(xp.float64)
        return Stats(*_moments(xp, a), 0, 0, size, zeros)
    finite = xp.isfinite(array)
    nfinite = int(finite.sum())
    nan = int(xp.isnan(array).sum())
    if nfinite == size:
        return Stats(*_moments(xp, array), 0, 0, size, zeros)
    if nfinite == 0:
        nans = (math.nan,) * 5
        return Stats(*nans, nan, size - nan, size, 0)
    return Stats(*_moments(xp, array[finite]), nan, size - nfinite - nan, size, zeros)


def _moments(xp: Any, a: Any) -> tuple[float, float, float, float, float]:
    a64 = a.astype(xp.float64, copy=False)
    mean = float(a64.mean())
    return (
        float(a64.min()),
        float(a64.max()),
        mean,
        float(a64.std()),
        float(xp.sqrt((a64 * a64).sum())),
    )


def _xp(array: Any) -> Any:
    if isinstance(array, _np.ndarray):
        return _np
    from core import cuda

    return cuda.array_module(array)


class Bus:
    """Delivers events to subscribers, synchronously, in the emitting thread.

    The engine reads ``active``, ``want_stats``, ``want_source`` and
    ``want_values`` before it builds anything, so emitting with no subscriber
    costs one attribute read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subs: list[tuple[Callable[..., None], bool, bool, bool]] = []
        self.active = False
        self.want_stats = False
        self.want_source = False
        self.want_values = False

    def subscribe(
        self,
        callback: Callable[..., None],
        *,
        stats: bool = False,
        source: bool = False,
        values: bool = False,
    ) -> Callable[[], None]:
        """Call ``callback(event)`` for every event; returns the unsubscribe function.

        ``stats`` and ``source`` ask the engine to fill ``Stats`` and ``Source``.
        With ``values=True`` the callback is called as ``callback(event, arrays)``,
        ``arrays`` mapping tensor id to the live array (NumPy or CuPy) of every
        tensor the event names; it is valid only during the call, so copy what
        you keep.
        """
        entry = (callback, stats, source, values)
        with self._lock:
            self._subs = [*self._subs, entry]
            self._refresh()

        def unsubscribe() -> None:
            with self._lock:
                self._subs = [s for s in self._subs if s is not entry]
                self._refresh()

        return unsubscribe

    def _refresh(self) -> None:
        self.active = bool(self._subs)
        self.want_stats = any(s[1] for s in self._subs)
        self.want_source = any(s[2] for s in self._subs)
        self.want_values = any(s[3] for s in self._subs)

    def emit(self, event: Any, arrays: dict[int, Any] | None = None) -> None:
        for callback, _stats, _source, values in self._subs:
            if values:
                callback(event, arrays or {})
            else:
                callback(event)


BUS = Bus()
