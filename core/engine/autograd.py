"""Reverse-mode autodiff: ``backward`` walks the graph ``apply`` recorded and runs
each node's gradient rule (written with Tensor ops, so ``create_graph`` builds a
differentiable graph of the backward pass itself).

>>> import core
>>> x = core.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
>>> (g,) = core.grad((x * x * x).sum(), [x], create_graph=True)
>>> g.numpy().tolist()
[3.0, 12.0]
>>> g.sum().backward()
>>> x.grad.numpy().tolist()
[6.0, 12.0]
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter
from time import perf_counter_ns

from core.device import xp_for
from core.engine.ops import Op
from core.engine.tensor import Node, Tensor, _grad_enabled, _phase, _quiet, _where, _wrap, apply
from core.errors import GradError, ShapeError
from core.observe.bus import BUS
from core.observe.events import BackwardEnded, BackwardStarted, GradAccumulated, OpBackward
from core.observe.stats import summarize


def _topo_order(root: Node) -> list[Node]:
    """Nodes reachable from ``root``, each before the nodes that made its inputs
    (the order their gradient rules run in), ``root`` first.

    A node is numbered when it is made, after the nodes that made its inputs,
    so ordering the reachable nodes by number, newest first, is that order.
    """
    seen = {root}
    stack = [root]
    while stack:
        node = stack.pop()
        if node.freed:
            raise GradError(
                f"backward: node {node.name} was already used by an earlier backward "
                "whose graph was freed; pass retain_graph=True to the first backward"
                f"{_where()}"
            )
        for t in node.inputs:
            child = t._node
            if child is not None and child not in seen:
                seen.add(child)
                stack.append(child)
    return sorted(seen, key=_node_number, reverse=True)


_node_number = attrgetter("id")


def backward(
    root: Tensor,
    gradient: Tensor | None = None,
    *,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> None:
    """Reverse-mode autodiff from ``root``; see ``Tensor.backward``."""
    if retain_graph is None:
        retain_graph = create_graph
    if not root.requires_grad:
        raise GradError(
            "backward: this tensor does not require grad (no input had "
            f"requires_grad=True, or it was made under no_grad()){_where()}"
        )
    if gradient is None:
        if root.data.size != 1:
            raise GradError(
                f"backward: the tensor has shape {root.shape}, not one element; pass a "
                f"gradient of that shape, e.g. y.backward(core.ones_like(y)){_where()}"
            )
        xp = xp_for(root.device)
        one = xp.array(1, dtype=root.data.dtype)  # d root / d root (np.ones is slower)
        if root.data.ndim:
            one = one.reshape(root.data.shape)
        gradient = _wrap(one, root.device, False)
    elif not isinstance(gradient, Tensor):
        gradient = Tensor(gradient, dtype=root.dtype, device=root.device)
    if gradient.data.shape != root.data.shape:
        raise ShapeError(
            f"backward: gradient shape {gradient.shape} does not match the tensor's "
            f"shape {root.shape}{_where()}"
        )
    emit = BUS.active
    start = perf_counter_ns()
    if root._node is None:
        if emit:
            BUS.emit(BackwardStarted(root=root.id, nodes=()))
        _flush_leaves({root.id: (root, gradient)}, create_graph, emit)
        if emit:
            BUS.emit(BackwardEnded(root=root.id, duration_ns=perf_counter_ns() - start))
        return
    order = _topo_order(root._node)  # raises before any rule runs on a freed graph
    if emit:
        BUS.emit(BackwardStarted(root=root.id, nodes=tuple(n.id for n in order)))
    grads: dict[Node, Tensor] = {root._node: gradient}  # incoming gradient per node
    leaves: dict[int, tuple[Tensor, Tensor]] = {}
    grad_token = _grad_enabled.set(create_graph)
    phase_token = _phase.set("backward")
    quiet_token = _quiet.set(not create_graph)
    try:
        for node in order:
            g = grads.pop(node, None)
            if g is None:
                continue
            t0 = perf_counter_ns() if emit else 0
            given = list(node.opdef.grad(node, g))  # one gradient (or None) per input
            for i, inp in enumerate(node.inputs):
                gi = given[i]
                if gi is None:
                    continue
                if not inp.requires_grad:
                    given[i] = None  # as the event reports it
                    continue
                shape = inp.data.shape
                if gi.data.shape != shape:  # broadcast: sum back to the input
                    gi = given[i] = apply(Op.SUM_TO, (gi,), {"shape": shape})
                producer = inp._node
                if producer is None:
                    prev = leaves.get(inp.id)
                    leaves[inp.id] = (inp, gi if prev is None else prev[1] + gi)
                else:
                    prev_g = grads.get(producer)
                    grads[producer] = gi if prev_g is None else prev_g + gi
            if emit:
                _emit_backward(node, g, given, perf_counter_ns() - t0)
            if not retain_graph:
                node.freed = True
                node.saved = None
        _flush_leaves(leaves, create_graph, emit)
    finally:
        _quiet.reset(quiet_token)
        _phase.reset(phase_token)
        _grad_enabled.reset(grad_token)
    if emit:
        BUS.emit(BackwardEnded(root=root.id, duration_ns=perf_counter_ns() - start))


def _emit_backward(node: Node, g: Tensor, given: list, duration: int) -> None:
    stats = out_stats = None
    if BUS.want_stats:
        stats = tuple([None if gi is None else summarize(gi.data) for gi in given])
        out_stats = summarize(g.data)
    arrays = None
    if BUS.want_values:
        arrays = {g.id: g.data}
        arrays.update((gi.id, gi.data) for gi in given if gi is not None)
    BUS.emit(
        OpBackward(
            node_id=node.id,
            op=node.opdef.label,
            grad_output=g.id,
            grad_inputs=tuple([None if gi is None else gi.id for gi in given]),
            inputs=tuple([t.id for t in node.inputs]),
            duration_ns=duration,
            stats=stats,
            grad_output_stats=out_stats,
        ),
        arrays,
    )


def _flush_leaves(leaves: dict, create_graph: bool, emit: bool) -> None:
    for leaf, g in leaves.values():
        if not create_graph:
            g = _wrap(g.data, g.device, False) if g._node is not None else g
        leaf.grad = g if leaf.grad is None else leaf.grad + g
        if emit:
            BUS.emit(
                GradAccumulated(
                    tensor_id=leaf.id,
                    grad_id=leaf.grad.id,
                    name=leaf.name or f"tensor_{leaf.id}",
                    stats=summarize(leaf.grad.data) if BUS.want_stats else None,
                ),
                {leaf.grad.id: leaf.grad.data} if BUS.want_values else None,
            )


def grad(
    outputs: Tensor,
    inputs: Iterable[Tensor],
    grad_outputs: Tensor | None = None,
    *,
    create_graph: bool = False,
) -> tuple[Tensor | None, ...]:
    """d(outputs)/d(inputs) without touching any ``.grad`` (as ``torch.autograd.grad``)."""
    inputs = tuple(inputs)
    saved = [(t.grad, t.requires_grad) for t in inputs]
    for t in inputs:
        t.grad = None
    try:
        backward(outputs, grad_outputs, retain_graph=True, create_graph=create_graph)
        return tuple(t.grad for t in inputs)
    finally:
        for t, (g, _rg) in zip(inputs, saved):
            t.grad = g
