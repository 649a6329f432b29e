"""Tracing: run a step eagerly once, with a hook in the one dispatch point, and
record every op it runs (forward, the backward from the same gradient rules,
the optimizer's in-place updates) into a ``Graph``.

Tensors the step did not make become the graph's inputs (its arguments) or
state (parameters, optimizer slots, ``.grad``, data it reads from its
closure), by name. Values read out as Python data (``.item()``, ``bool()``,
``.numpy()``) become guards: ``.item()`` answers a number that records each
comparison made with it, so ``if loss.item() > 1`` guards the decision, not the
exact value.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.deferred.graph import Graph, Guard
from core.device import to_host
from core.engine import dispatch, modes
from core.engine.tensor import Tensor
from core.errors import GradstepError
from core.observe.source import user_source

MAX_GUARDED_ARRAY = 64  # elements of a .numpy() read a graph may depend on


class TraceError(GradstepError):
    """A step cannot be traced into a static graph; the message says why and where."""


@dataclass
class Trace:
    """What tracing one call gives: the graph and the live tensors it binds."""

    graph: Graph
    state: dict[str, Tensor]  # state name -> the tensor it reads (and writes)
    grad_owners: dict[str, Tensor] = field(default_factory=dict)  # "p.grad" -> p
    notes: list[str] = field(default_factory=list)  # things a user should know
    # each state's array when the traced call first read it: its value before
    # the step (in-place ops rebind a tensor, they never write its old array)
    initial: dict[str, Any] = field(default_factory=dict)


def _where() -> str | None:
    src = user_source(3)
    return f"{src.file}:{src.line}" if src is not None else None


class Tracer:
    """The dispatch hook that records a Graph; see the module docstring."""

    def __init__(self) -> None:
        self.graph = Graph()
        self.values: dict[int, int] = {}  # tensor id -> value id
        self.state: dict[str, Tensor] = {}
        self.state_names: dict[int, str] = {}  # tensor id -> state name
        self.grad_owners: dict[str, Tensor] = {}
        self.notes: list[str] = []
        self.thread = threading.get_ident()
        self.counts: dict[str, int] = {}
        self.grad_at_start: dict[int, bool] = {}  # state tensor id -> .grad was None
        self.reset: set[int] = set()  # tensors whose .grad the step set to None
        self.initial: dict[str, Any] = {}

    # -- inputs -------------------------------------------------------------------------

    def add_inputs(self, args: tuple, kwargs: dict) -> Any:
        """Placeholders for every tensor in the call's arguments; returns their
        structure (tensors replaced by input numbers)."""
        return _structure((args, kwargs), self._input)

    def _input(self, t: Tensor | GuardedNumber) -> dict:
        if isinstance(t, GuardedNumber):
            raise TraceError("a compiled step's arguments must be tensors or plain data")
        index = len(self.graph.inputs)
        vid = self.graph.add_input(f"in{index}", t.shape, t.dtype)
        self.values[t.id] = vid
        self.graph.guards.append(
            Guard("shape", None, [list(t.shape), str(t.dtype), t.device], {"name": f"in{index}"})
        )
        return {"input": index}

    def _value(self, t: Tensor) -> int:
        vid = self.values.get(t.id)
        if vid is None:
            vid = self._capture(t)
        return vid

    def _capture(self, t: Tensor) -> int:
        """A tensor made before the step: state, named; a .grad is its owner's."""
        for name, owner in list(self.state.items()):
            if owner.grad is t:
                return self._state(f"{name}.grad", t, owner)
        return self._state(t.name or f"captured_{t.id}", t, None)

    def _state(self, name: str, t: Tensor, grad_of: Tensor | None) -> int:
        base, n = name, 1
        while name in self.state or name in self.grad_owners:
            n += 1
            name = f"{base}#{n}"
        vid = self.graph.add_state(name, t.shape, t.dtype)
        self.values[t.id] = vid
        self.initial[name] = t.data
        self.state_names[t.id] = name
        if grad_of is None:
            self.state[name] = t
            self.grad_at_start[t.id] = t.grad is None
        else:
            self.grad_owners[name] = grad_of
        facts = [list(t.shape), str(t.dtype), t.device]
        self.graph.guards.append(Guard("shape", None, facts, {"name": name}))
        return vid

    # -- the hook -------------------------------------------------------------------------

    def hook(self, kind: str, payload: Any) -> Any:
        if threading.get_ident() != self.thread:
            return payload[2] if kind == "read" else None
        if kind == "op":
            self._op(*payload)
        elif kind == "constant":
            self._constant(payload)
        elif kind == "leaf":
            self._leaf(*payload)
        elif kind == "read":
            return self._read(*payload)
        elif kind == "zero_grad":
            self.reset.add(payload.id)
        return None

    def _op(self, nid, opdef, inputs, attrs, result, side, value_id) -> None:
        ins = [self._value(t) for t in inputs]
        label = opdef.label if value_id is None else opdef.label_
        count = self.counts.get(label, 0)
        self.counts[label] = count + 1
        meta = {
            "name": label if count == 0 else f"{label}_{count}",
            "scope": modes.scope_path.get(),
            "phase": modes.phase_name.get(),
            "source": _where(),
            "origin": nid,
        }
        if value_id is None:
            outs = [(result.shape, result.dtype)]
            outs += [(a.shape, a.dtype) for _tid, a in side or ()]
            vids = self.graph.add_op(opdef.op, ins, attrs, outs, **meta)
            self.values[result.id] = vids[0]
            for (tid, _a), vid in zip(side or (), vids[1:], strict=True):
                self.values[tid] = vid
            return
        target = inputs[0]
        name = self.state_names.get(target.id)
        (vid,) = self.graph.add_op(
            opdef.op, ins, attrs, [(result.shape, result.dtype)], inplace=name, **meta
        )
        self.values[target.id] = vid  # the tensor now holds this value
        if name is not None:
            self.graph.writes[name] = vid

    def _constant(self, t: Tensor) -> None:
        self.values[t.id] = self.graph.add_constant(to_host(t.data).copy())

    def _leaf(self, t: Tensor, kind: str) -> None:
        if kind == "state":  # state a step makes on first use (dropout's seed)
            self._state(t.name or f"state_{t.id}", t, None)
            return
        self.values[t.id] = self.graph.add_constant(to_host(t.data).copy())
        if kind == "random":
            self.notes.append(
                f"random values made inside the step at {_where()} are baked into the "
                "graph as a constant; pass them in as an argument to draw new ones"
            )

    def _read(self, t: Tensor, kind: str, value: Any) -> Any:
        vid = self._value(t)
        source = _where()
        if kind == "item":
            return GuardedNumber.make(value, self, vid, source)
        array = np.asarray(value)
        if array.size > MAX_GUARDED_ARRAY:
            raise TraceError(
                f"the step reads {array.size} values of a tensor out as an array at "
                f"{source}; a compiled step cannot depend on them (compute with tensor "
                "ops, or read at most a few values)"
            )
        self.graph.guards.append(Guard("value", vid, array.tolist(), {"array": True}, source))
        return value

    def guard(self, guard: Guard) -> None:
        self.graph.guards.append(guard)

    # -- the end ----------------------------------------------------------------------------

    def finish(self, result: Any) -> Trace:
        g = self.graph
        tree = _structure(result, self._output)
        g.output_tree = tree
        read = {owner.id for owner in self.grad_owners.values()}
        for name, t in self.state.items():
            grad = t.grad
            if grad is not None and grad.id in self.values:
                vid = self.values[grad.id]
                if self.state_names.get(grad.id) != f"{name}.grad":  # made by this step
                    g.grads[name] = vid
            # backward sets a .grad that is None and adds to one that is not:
            # unless the step reset it, the graph holds only for the same case
            touched = name in g.grads or t.id in read
            if touched and t.id not in self.reset:
                expected = self.grad_at_start[t.id]
                g.guards.append(Guard("grad", None, expected, {"name": name}))
        return Trace(g, dict(self.state), dict(self.grad_owners), self.notes, self.initial)

    def _output(self, t: Tensor | GuardedNumber) -> dict:
        if isinstance(t, GuardedNumber):  # a number read from a value: read again each call
            self.graph.outputs.append(t.vid)
            return {"number": len(self.graph.outputs) - 1}
        self.graph.outputs.append(self._value(t))
        return {"output": len(self.graph.outputs) - 1}


def _structure(value: Any, leaf) -> Any:
    """``value`` as plain data, each Tensor (or number read from one) replaced
    by ``leaf(tensor)``."""
    if isinstance(value, Tensor | GuardedNumber):
        return leaf(value)
    if isinstance(value, tuple | list):
        return {"seq": [_structure(v, leaf) for v in value], "tuple": isinstance(value, tuple)}
    if isinstance(value, dict):
        return {"dict": [[str(k), _structure(v, leaf)] for k, v in value.items()]}
    if value is None or isinstance(value, bool | int | float | str):
        return {"plain": value}
    raise TraceError(f"a compiled step cannot take or return {type(value).__name__} values")


_COMPARE = {
    "__lt__": "<",
    "__le__": "<=",
    "__gt__": ">",
    "__ge__": ">=",
    "__eq__": "==",
    "__ne__": "!=",
}


class GuardedNumber(float):
    """A number read from a tensor while tracing. Comparing it records the
    decision as a guard; any other use (arithmetic, formatting) records its
    exact value."""

    __slots__ = ("value", "tracer", "vid", "source")

    @classmethod
    def make(cls, value: Any, tracer: Tracer, vid: int, source: str | None) -> Any:
        if isinstance(value, bool):  # a boolean tensor's item(): its truth is the decision
            tracer.guard(Guard("truth", vid, value, {}, source))
            return value
        n = cls(value)
        n.value, n.tracer, n.vid, n.source = value, tracer, vid, source
        return n

    def _compare(self, name: str, other: Any) -> bool:
        result = getattr(float(self.value), name)(other)
        if result is NotImplemented:
            return result
        detail = {"op": _COMPARE[name], "other": float(other)}
        self.tracer.guard(Guard("compare", self.vid, bool(result), detail, self.source))
        return result

    def __bool__(self) -> bool:
        result = bool(self.value)
        self.tracer.guard(Guard("truth", self.vid, result, {}, self.source))
        return result

    def _exact(self) -> float:
        self.tracer.guard(Guard("value", self.vid, float(self.value), {}, self.source))
        return float(self.value)

    def __hash__(self) -> int:
        return hash(self._exact())


for _name in _COMPARE:
    setattr(GuardedNumber, _name, lambda self, other, _n=_name: self._compare(_n, other))

_ARITHMETIC = (
    "__add__ __radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __rtruediv__ "
    "__floordiv__ __rfloordiv__ __mod__ __rmod__ __pow__ __rpow__ __neg__ __pos__ "
    "__abs__ __int__ __float__ __round__ __trunc__ __floor__ __ceil__ __format__ "
    "__repr__ __str__ __divmod__ __rdivmod__"
).split()


def _exact_then(name: str):
    def method(self, *args):
        return getattr(self._exact(), name)(*args)

    method.__name__ = name
    return method


for _name in _ARITHMETIC:
    setattr(GuardedNumber, _name, _exact_then(_name))


def trace(step, args: tuple, kwargs: dict) -> tuple[Any, Trace]:
    """Run ``step(*args, **kwargs)`` eagerly under a tracer; (its result, the trace)."""
    tracer = Tracer()
    tracer.graph.input_tree = tracer.add_inputs(args, kwargs)
    previous = dispatch.set_hook(tracer.hook)
    try:
        result = step(*args, **kwargs)
    finally:
        dispatch.set_hook(previous)
    return result, tracer.finish(result)
