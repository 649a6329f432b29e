"""A compiled step as events the graph view draws: each traced op a node (the
forward, the backward's own ops and the optimizer's updates), each fused
kernel a box around the ops it covers (the box is the node's scope), and the
values named as ``KernelRun`` events name them, so a recording of a compiled
run shows each kernel's outputs at its nodes.

>>> import core
>>> from core.debug import program as programs
>>> run = programs.load("samples/neuron.py").build("cpu")
>>> compiled = core.compile(run.step)
>>> _ = compiled(); _ = compiled()
>>> events = graph_events(compiled.latest)
>>> boxes = {e.scope for e in events if type(e).__name__ == "OpForward" and e.scope}
>>> any(box.startswith("kernel ") for box in boxes)
True
"""

from __future__ import annotations

from core.deferred.api import Compiled
from core.deferred.codegen import value_id
from core.deferred.narrate import kernel_box, value_aliases
from core.observe.events import OpForward, TensorCreated


def graph_events(
    entry: Compiled, *, compiled: bool = True, names: dict[str, str] | None = None
) -> list:
    """TensorCreated for the step's inputs, state and constants, then one
    OpForward per traced op that a kernel computes, in the traced order, a
    fused kernel's ops in its box. ``compiled=False``: the step as traced,
    every op in its module's scope (the eager side of a comparison). Node ids
    are the traced ops' (their eager node ids), the same on both sides.
    ``names``: display names of state (a parameter the trace saw only as data
    its step captured is ``captured_N`` there; the program calls it ``w``)."""
    names = names or {}
    traced = entry.trace.graph
    kernel_of: dict[int, tuple[int, str, int]] = {}
    for kernel in entry.program.kernels:
        for origin in kernel.covers:
            kernel_of.setdefault(origin, (kernel.index, kernel.name, len(kernel.covers)))
    alias = value_aliases(traced, entry.merged) if compiled else {}
    events: list = []
    folded = [v for v in entry.graph.constants if v not in traced.constants] if compiled else []
    for vid in folded:  # values a pass computed once: constants of the compiled graph
        value = traced.values[vid]
        events.append(
            TensorCreated(
                value_id(vid),
                "constant",
                f"folded_{vid}",
                value.shape,
                value.dtype,
                entry.bound.device,
                False,
                "",
            )
        )
    for node in traced.nodes:
        if node.kind in ("input", "state", "constant"):
            value = traced.values[node.outputs[0]]
            kind = node.kind
            if kind == "state":  # a parameter; else an optimizer's state or captured data
                live = entry.trace.state.get(node.name)
                kind = "parameter" if live is not None and live.requires_grad else "input"
            events.append(
                TensorCreated(
                    tensor_id=value_id(value.id),
                    kind=kind,
                    name=names.get(node.name, node.name) or f"constant_{value.id}",
                    shape=value.shape,
                    dtype=value.dtype,
                    device=entry.bound.device,
                    requires_grad=False,
                    scope="",
                )
            )
            continue
        if node.kind != "op" or (compiled and node.origin not in kernel_of):
            continue  # removed by a pass: no kernel computes it
        index, name, covered = kernel_of.get(node.origin, (0, "", 1))
        if not compiled:
            covered = 1  # no boxes: the module's scope
        out = traced.values[node.outputs[0]]
        writes = None
        if node.inplace:
            state = next(n for n in traced.state if n.name == node.inplace)
            writes = value_id(state.outputs[0])
        events.append(
            OpForward(
                node_id=node.origin,
                op=node.op.label + ("_" if node.inplace else ""),
                inputs=tuple(value_id(alias.get(v, v)) for v in node.inputs),
                output=value_id(out.id),
                attrs=tuple(node.attrs.items()),
                shape=out.shape,
                dtype=out.dtype,
                device=entry.bound.device,
                duration_ns=0,
                scope=kernel_box(index, name) if covered > 1 else node.scope,
                phase=node.phase,
                requires_grad=False,
                side_outputs=tuple(value_id(v) for v in node.outputs[1:]),
                writes=writes,
                kernel=index if compiled else None,
            )
        )
    return events
