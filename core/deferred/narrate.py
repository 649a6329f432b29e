"""A compiled call told as the debugger's events, for subscribers that ask for
them (``BUS.subscribe(..., kernel_ops=True)``: a Session, a Recording).

Before each kernel's ``KernelRun`` comes one ``OpForward`` per traced op the
kernel covers, with ``kernel`` set to the kernel's index; a fused kernel's ops
share the scope ``"kernel <k>: <name>"``, which the graph view draws as a box
around them. Value ids are fresh for each call (``VALUE_ID_BASE`` upwards,
apart from the engine's tensor ids; node ids are the engine's), except where a
value is a live tensor: an input of the step, and a parameter or optimizer
slot, whose new value an in-place op ``writes``.
At the end of the call come ``GradAccumulated`` for each ``.grad`` the step
wrote and ``ParameterUpdated`` for each parameter, as an eager step has.

So a recording of a compiled run reads like an eager one: the graph grows
kernel by kernel, each kernel's outputs have their values and statistics (a
value inside a fused kernel is never made, so it has none), and parameters,
gradients and update curves work as they do eagerly.

>>> import core
>>> from core.debug.recording import Recording
>>> from core.debug import program as programs
>>> run = programs.load("samples/neuron.py").build("cpu")
>>> compiled = core.compile(run.step)
>>> _ = compiled()  # traced (eager)
>>> rec = Recording()
>>> with rec.attach():
...     _ = compiled()
>>> kernels = [e for e in rec.events if type(e).__name__ == "KernelRun"]
>>> ops = [e for e in rec.events if type(e).__name__ == "OpForward"]
>>> len(kernels) == len(compiled.latest.program.kernels), {e.kernel is not None for e in ops}
(True, {True})
>>> all(rec.has_value(i) for k in kernels for i in k.outputs)
True
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from core.deferred.codegen import VALUE_ID_BASE, Kernel
from core.deferred.graph import Graph, Node
from core.engine.dispatch import new_node_id
from core.observe.bus import BUS
from core.observe.events import (
    GradAccumulated,
    OpForward,
    ParameterUpdated,
    Source,
    TensorCreated,
)
from core.observe.stats import summarize

STRIDE = 1 << 24  # ids one narrated call may use (a graph has far fewer values)
_calls = itertools.count(1)
_calls_lock = threading.Lock()


KERNEL_SCOPE = "kernel "  # how the box of a fused kernel's ops begins


def kernel_box(index: int, name: str) -> str:
    """The scope (box title) of the ops a fused kernel covers."""
    return f"{KERNEL_SCOPE}{index}: {name}"


def source_of(where: str | None) -> Source | None:
    """A traced ``"file:line"`` as the events' Source."""
    if not where:
        return None
    path, _, line = where.rpartition(":")
    return Source(path, int(line), "") if line.isdigit() else None


def value_aliases(traced: Graph, merged: dict[int, int]) -> dict[int, int]:
    """Value id -> the value standing for it: a value whose op common-
    subexpression elimination merged (``merged``: origin -> origin kept) is
    its twin's."""
    by_origin = {n.origin: n for n in traced.nodes if n.kind == "op"}
    aliases: dict[int, int] = {}
    for old, new in merged.items():
        while new in merged:
            new = merged[new]
        a, b = by_origin.get(old), by_origin.get(new)
        if a is not None and b is not None:
            aliases.update(zip(a.outputs, b.outputs, strict=False))
    return aliases


class Narrator:
    """Tells one compiled graph's calls as events; see the module docstring.

    Built once per graph (``Compiled.narrator``); ``begin`` starts a call and
    ``kernel`` is called by the generated code after each kernel."""

    def __init__(
        self,
        traced: Graph,
        optimized: Graph,
        merged: dict[int, int],
        kernels: list[Kernel],
        state: dict[str, Any],
        grad_owners: dict[str, Any],
        device: str,
    ) -> None:
        self.traced = traced
        self.kernels = kernels
        self.device = device
        covering: dict[int, int] = {}
        for kernel in kernels:
            for origin in kernel.covers:
                covering.setdefault(origin, kernel.index)
        self.ops: list[list[Node]] = [[] for _ in kernels]
        for node in traced.nodes:
            if node.kind == "op" and node.origin in covering:
                self.ops[covering[node.origin]].append(node)
        self.scopes = [
            kernel_box(k.index, k.name) if len(self.ops[k.index]) > 1 else None for k in kernels
        ]
        self.inputs = [n.outputs[0] for n in traced.inputs]
        self.state = state
        self.grad_owners = grad_owners
        self.state_values = {n.outputs[0]: n.name for n in traced.state}
        self.state_by_name = {n.name: n.outputs[0] for n in traced.state}
        # constants the graph view names: the traced ones, and those a pass made
        self.constants: dict[int, Any] = {**traced.constants, **optimized.constants}
        self.aliases = value_aliases(traced, merged)
        self.writes = dict(traced.writes)  # state name -> value id
        self.grads = dict(traced.grads)  # parameter name -> its gradient's value id
        self.ids: dict[int, int] = {}  # this call: value id -> event id
        self.base = 0
        self.arrays: dict[int, Any] = {}  # this call: value id -> array, when kept

    # -- one call ---------------------------------------------------------------------

    def begin(self, inputs: list[Any]) -> None:
        """A call starts: name its values, announce its constants."""
        with _calls_lock:
            call = next(_calls)
        self.base = VALUE_ID_BASE + call * STRIDE
        ids: dict[int, int] = {}
        for vid, tensor in zip(self.inputs, inputs, strict=False):
            ids[vid] = tensor.id
        for vid, name in self.state_values.items():
            tensor = self._state_tensor(name)
            if tensor is not None:
                ids[vid] = tensor.id
        self.ids = ids
        self.arrays = {}
        values = BUS.want_values
        stats = BUS.want_stats
        for vid, array in self.constants.items():
            info = self.traced.values.get(vid)
            shape = tuple(info.shape) if info is not None else tuple(array.shape)
            dtype = info.dtype if info is not None else str(array.dtype)
            tid = self.id_of(vid)
            event = TensorCreated(
                tensor_id=tid,
                kind="constant",
                name=f"constant_{vid}",
                shape=shape,
                dtype=dtype,
                device=self.device,
                requires_grad=False,
                scope="",
                stats=summarize(array) if stats else None,
            )
            BUS.emit(event, {tid: array} if values else None)

    def _state_tensor(self, name: str) -> Any:
        owner = self.grad_owners.get(name)
        if owner is not None:
            return owner.grad
        return self.state.get(name)

    def id_of(self, vid: int) -> int:
        vid = self.aliases.get(vid, vid)
        tid = self.ids.get(vid)
        return self.base + vid if tid is None else tid

    def kernel(self, k: int, arrays: tuple[Any, ...]) -> tuple[int, ...]:
        """Kernel ``k`` ran and wrote ``arrays``: its ops' events; returns the
        ids of its outputs (for its KernelRun)."""
        kernel = self.kernels[k]
        by_value = dict(zip(kernel.outputs, arrays, strict=True))
        self.arrays.update(by_value)
        stats = BUS.want_stats
        values = BUS.want_values
        scope = self.scopes[k]
        for node in self.ops[k]:
            out = node.outputs[0]
            info = self.traced.values[out]
            writes = None
            if node.inplace:
                tensor = self.state.get(node.inplace)
                writes = tensor.id if tensor is not None else None
            array = by_value.get(out)
            event = OpForward(
                node_id=new_node_id(),
                op=node.op.label + ("_" if node.inplace else ""),
                inputs=tuple(self.id_of(v) for v in node.inputs),
                output=self.id_of(out),
                attrs=tuple(node.attrs.items()),
                shape=tuple(info.shape),
                dtype=info.dtype,
                device=self.device,
                duration_ns=0,
                scope=scope or node.scope,
                phase=node.phase,
                requires_grad=False,
                stats=summarize(array) if stats and array is not None else None,
                source=source_of(node.source),
                side_outputs=tuple(self.id_of(v) for v in node.outputs[1:]),
                writes=writes,
                kernel=k,
            )
            BUS.emit(event, {event.output: array} if values and array is not None else None)
        return tuple(self.id_of(v) for v in kernel.outputs)

    def end(self) -> None:
        """The call wrote its state: each ``.grad`` and each parameter's new value."""
        stats = BUS.want_stats
        for name, vid in self.grads.items():
            tensor = self.state.get(name)
            if tensor is None:
                continue
            array = self.arrays.get(vid)
            BUS.emit(
                GradAccumulated(
                    tensor_id=tensor.id,
                    grad_id=self.id_of(vid),
                    name=name,
                    stats=summarize(array) if stats and array is not None else None,
                )
            )
        for name, vid in self.writes.items():
            tensor = self.state.get(name)
            if tensor is None or not tensor.requires_grad:
                continue  # an optimizer's slot or counter: no curve of its own
            array = self.arrays.get(vid)
            BUS.emit(
                ParameterUpdated(
                    tensor_id=tensor.id,
                    name=name,
                    optimizer="compiled",
                    value_id=self.id_of(vid),
                    stats=summarize(array) if stats and array is not None else None,
                )
            )
        self.arrays = {}


def run_told(bound: Any, narrator: Narrator, leaves: list) -> Any:
    """One call of ``bound``'s generated code, told kernel by kernel (op by op)
    to the bus by ``narrator``."""
    program = bound.program
    narrator.begin(leaves)
    program.narration.narrator = narrator
    try:
        result = bound.run(leaves)
    finally:
        program.narration.narrator = None
    narrator.end()
    return result
