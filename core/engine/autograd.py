"""Reverse-mode autodiff: ``backward`` walks the graph ``apply`` recorded and runs
each node's gradient rule. Rules are written with Tensor ops, so the backward
pass is itself made of registered ops: ``create_graph`` keeps a differentiable
graph of it, and a tracer records it like any other part of a step.

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
from typing import Any

from core.engine import modes
from core.engine.dispatch import Node, apply, constant, is_tensor
from core.engine.inplace import check_saved, write_count
from core.engine.ops import Op
from core.errors import GradError, ShapeError
from core.observe.bus import BUS
from core.observe.events import (
    BackwardEnded,
    BackwardStarted,
    GradAccumulated,
    OpBackward,
)
from core.observe.source import where
from core.observe.stats import summarize

_node_number = attrgetter("id")


def _topo_order(root: Node) -> list[Node]:
    """Nodes reachable from ``root``, each before the nodes that made its inputs
    (the order their gradient rules run in), ``root`` first.

    A node is numbered when it is made, after the nodes that made its inputs,
    so ordering the reachable nodes by number, newest first, is that order. A
    freed graph is refused here, before any rule runs.
    """
    seen = {root}
    stack = [root]
    while stack:
        node = stack.pop()
        if node.freed:
            raise GradError(
                f"backward: node {node.name} was already used by an earlier backward "
                f"whose graph was freed; pass retain_graph=True to the first backward{where()}"
            )
        for t in node.inputs:
            child = t._node
            if child is not None and child not in seen:
                seen.add(child)
                stack.append(child)
    return sorted(seen, key=_node_number, reverse=True)


def _leading_to(order: list[Node], wanted: set[int]) -> list[Node]:
    """The nodes of ``order`` from which a gradient reaches a ``wanted`` tensor."""
    useful: set[Node] = set()
    for node in reversed(order):  # inputs' producers first
        for t in node.inputs:
            if t.id in wanted or (t._node is not None and t._node in useful):
                useful.add(node)
                break
    return [n for n in order if n in useful]


def _seed(root: Any, gradient: Any) -> Any:
    """d root / d root (ones), or the caller's ``gradient``, checked."""
    if gradient is None:
        if root.data.size != 1:
            raise GradError(
                f"backward: the tensor has shape {root.shape}, not one element; pass a "
                f"gradient of that shape, e.g. y.backward(core.ones_like(y)){where()}"
            )
        if root.data.ndim == 0:
            return constant(1.0, like=root)
        return constant(root.data.dtype.type(1.0), like=root).expand(*root.shape)
    if not is_tensor(gradient):
        gradient = constant(gradient, like=root)
    if gradient.data.shape != root.data.shape:
        raise ShapeError(
            f"backward: gradient shape {gradient.shape} does not match the tensor's "
            f"shape {root.shape}{where()}"
        )
    return gradient


def backward(
    root: Any,
    gradient: Any = None,
    *,
    retain_graph: bool | None = None,
    create_graph: bool = False,
) -> None:
    """Reverse-mode autodiff from ``root`` into every leaf's ``.grad``; see
    ``Tensor.backward``."""
    if not root.requires_grad:
        raise GradError(
            "backward: this tensor does not require grad (no input had "
            f"requires_grad=True, or it was made under no_grad()){where()}"
        )
    start = perf_counter_ns()
    phase_token = modes.phase_name.set("backward")
    try:
        seed = _seed(root, gradient)
        leaves = _run(root, seed, retain_graph, create_graph, None)
        grad_token = modes.grad_enabled.set(create_graph)
        try:
            _accumulate(leaves, create_graph)
        finally:
            modes.grad_enabled.reset(grad_token)
    finally:
        modes.phase_name.reset(phase_token)
    if BUS.active:
        BUS.emit(BackwardEnded(root=root.id, duration_ns=perf_counter_ns() - start))


def _run(
    root: Any,
    seed: Any,
    retain_graph: bool | None,
    create_graph: bool,
    wanted: set[int] | None,
) -> dict[int, tuple[Any, Any]]:
    """Run the rules from ``root``; returns {tensor id: (tensor, gradient)} for
    the leaves (or, with ``wanted``, for those tensors only)."""
    if retain_graph is None:
        retain_graph = create_graph
    emit = BUS.active
    found: dict[int, tuple[Any, Any]] = {}
    if root._node is None:
        if emit:
            BUS.emit(BackwardStarted(root=root.id, nodes=()))
        if wanted is None or root.id in wanted:
            found[root.id] = (root, seed)
        return found
    order = _topo_order(root._node)
    if wanted is not None:
        order = _leading_to(order, wanted)
    if emit:
        BUS.emit(BackwardStarted(root=root.id, nodes=tuple(n.id for n in order)))
    if wanted is not None and root.id in wanted:
        found[root.id] = (root, seed)
    grads: dict[Node, Any] = {root._node: _slots(root._node, root, seed)}
    label_rules = BUS.want_backward_ops
    outer_rule = modes.rule_node.set(None) if label_rules else None
    phase_token = modes.phase_name.set("backward")
    grad_token = modes.grad_enabled.set(create_graph)
    writes = write_count()
    try:
        for node in order:
            g = grads.pop(node, None)
            if g is None:
                continue
            if node.epoch < writes:  # something was written in place since the node
                check_saved(node)
            t0 = perf_counter_ns() if emit else 0
            if label_rules:  # the backward's own ops name the node whose rule ran them
                modes.rule_node.set(node.id)
            rule = node.opdef.grad
            given = list(rule(node, *g) if type(g) is list else rule(node, g))
            for i, inp in enumerate(node.inputs):  # a rule gives one entry per input
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
                if wanted is not None and inp.id in wanted:
                    _found(found, inp, gi)
                if producer is not None:
                    prev = grads.get(producer)
                    if prev is None:
                        multi = producer.opdef.multi
                        grads[producer] = _slots(producer, inp, gi) if multi else gi
                    elif type(prev) is list:  # a multi-output node: one entry per output
                        slot = getattr(inp, "_slot", 0)
                        prev[slot] = gi if prev[slot] is None else prev[slot] + gi
                    else:
                        grads[producer] = prev + gi
                elif wanted is None:
                    prev = found.get(inp.id)
                    found[inp.id] = (inp, gi if prev is None else prev[1] + gi)
            if emit:
                _emit_backward(node, g, given, perf_counter_ns() - t0)
            if not retain_graph:
                node.freed = True
                node.side = None
    finally:
        modes.grad_enabled.reset(grad_token)
        modes.phase_name.reset(phase_token)
        if outer_rule is not None:
            modes.rule_node.reset(outer_rule)
    return found


def _found(found: dict, t: Any, g: Any) -> None:
    prev = found.get(t.id)
    found[t.id] = (t, g if prev is None else prev[1] + g)


def _slots(node: Node, t: Any, g: Any) -> Any:
    """The gradient entry of ``node`` holding ``g`` for its output ``t``: ``g``
    itself, or for a multi-output node a list with one place per output."""
    if len(node.opdef.outputs) == 1:
        return g
    entry = [None] * len(node.opdef.outputs)
    entry[getattr(t, "_slot", 0)] = g
    return entry


def _emit_backward(node: Node, g: Any, given: list, duration: int) -> None:
    if type(g) is list:  # a multi-output node: report its first output's gradient
        g = next((x for x in g if x is not None), None)
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


def _accumulate(leaves: dict[int, tuple[Any, Any]], create_graph: bool) -> None:
    """Each leaf's ``.grad`` takes its gradient: the gradient itself when it had
    none, else one ``accumulate_grad`` op adding it."""
    for leaf, g in leaves.values():
        if not create_graph and g._node is not None:
            g = apply(Op.DETACH, (g,))
        old = leaf._grad  # the slot behind Tensor.grad, read in this hot loop
        total = leaf._grad = g if old is None else apply(Op.ACCUMULATE_GRAD, (old, g))
        if BUS.active:
            BUS.emit(
                GradAccumulated(
                    tensor_id=leaf.id,
                    grad_id=total.id,
                    name=leaf.name or f"tensor_{leaf.id}",
                    stats=summarize(total.data) if BUS.want_stats else None,
                ),
                {total.id: total.data} if BUS.want_values else None,
            )


def grad(
    outputs: Any,
    inputs: Iterable[Any],
    grad_outputs: Any = None,
    *,
    retain_graph: bool | None = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> tuple[Any, ...]:
    """d(outputs)/d(inputs), as ``torch.autograd.grad``: only the rules on a path
    to ``inputs`` run, and no ``.grad`` anywhere is touched. An input the
    output does not depend on is an error, or gets None with ``allow_unused``.

    >>> import core
    >>> a = core.tensor(2.0, requires_grad=True)
    >>> b = core.tensor(3.0, requires_grad=True)
    >>> (ga,) = core.grad(a * b, [a])
    >>> ga.item(), b.grad is None
    (3.0, True)
    """
    inputs = tuple(inputs)
    if not outputs.requires_grad:
        raise GradError(f"grad: the output does not require grad{where()}")
    for t in inputs:
        if not t.requires_grad:
            raise GradError(f"grad: input {t.name or t.id} does not require grad{where()}")
    start = perf_counter_ns()
    with modes.phase("backward"):
        seed = _seed(outputs, grad_outputs)
    found = _run(outputs, seed, retain_graph, create_graph, {t.id for t in inputs})
    result = []
    for t in inputs:
        entry = found.get(t.id)
        if entry is None:
            if not allow_unused:
                raise GradError(
                    f"grad: the output does not depend on input {t.name or t.id}; pass "
                    f"allow_unused=True to get None for it{where()}"
                )
            result.append(None)
            continue
        g = entry[1]
        if not create_graph and g._node is not None:
            g = apply(Op.DETACH, (g,))
        result.append(g)
    if BUS.active:
        BUS.emit(BackwardEnded(root=outputs.id, duration_ns=perf_counter_ns() - start))
    return tuple(result)
