"""Reading the Recording for the window (Qt-free): what the inspector shows for a
node at the cursor, which node and line an event belongs to, and the
finite-difference check of one recorded node."""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np

import core
from app.param_series import update_ratio_at
from core.debug.recording import Recording
from core.engine.ops import REGISTRY, Op
from core.engine.tensor import apply
from core.observe.events import (
    GradAccumulated,
    KernelRun,
    OpBackward,
    OpForward,
    ParameterUpdated,
    Source,
    Stats,
    TensorCreated,
)
from core.observe.stats import summarize
from widgets.data import NodeInfo
from widgets.graph_model import GraphModel, GraphNode

_OPS = {op.label: op for op in Op}


def _stats(value: np.ndarray | None, fallback: Stats | None) -> Stats | None:
    if fallback is not None:
        return fallback
    return summarize(value) if value is not None else None


def update_ratio(rec: Recording, tensor_id: int, at: int) -> tuple[float, Any] | None:
    """(|new - old| / |old|, the ParameterUpdated) of the last update of parameter
    ``tensor_id`` at or before event ``at``; None when there was none in the step
    or a value was not kept."""
    start = rec.steps[bisect.bisect_right(rec.steps, at) - 1] if rec.steps else 0
    for i in range(min(at, len(rec.events) - 1), start - 1, -1):
        event = rec.events[i]
        if type(event) is ParameterUpdated and event.tensor_id == tensor_id:
            ratio = update_ratio_at(rec, event, i)
            return None if ratio is None else (ratio, event)
    return None


def _update_text(rec: Recording, tensor_id: int, at: int) -> str:
    found = update_ratio(rec, tensor_id, at)
    if found is None:
        return ""
    ratio, event = found
    return f"|Δw| / |w| = {ratio:.3g} ({event.optimizer}, {event.name})"


def node_info(
    node: GraphNode, rec: Recording, at: int | None = None, parameter: int | None = None
) -> NodeInfo:
    """The node's value and gradient as of event ``at`` (default: the cursor);
    ``parameter``: the tensor id of the parameter an update node works for."""
    at = rec.position if at is None else at
    value = rec.value(node.tensor_id, at)
    grad = rec.grad_of(node.tensor_id, at)
    notes = []
    made_by = rec.events[node.event_index] if node.event_index < len(rec) else None
    kernel = made_by.kernel if type(made_by) is OpForward else None
    if value is None and node.tensor_id in rec.dropped:
        notes.append("value not kept: the recording's memory cap was reached")
    elif value is None and node.event_index > at:
        notes.append("not computed yet at the cursor")
    elif value is None and kernel is not None:
        notes.append(f"computed inside fused kernel {kernel}: this value is never stored")
    # the backward events carried the gradient's statistics (the graph node holds
    # them as of the cursor); summarize only what they lack
    grad_stats = _stats(grad, node.grad_stats) if grad is not None else None
    value_stats = node.stats if node.kind == "op" else None
    if node.kind == "parameter" and value is not None:
        value_stats = summarize(value)  # parameters change with every update
    return NodeInfo(
        node_id=node.node_id,
        title=node.label,
        kind=node.kind,
        op=node.op,
        attrs=tuple(node.attrs),
        scope=node.scope,
        source=node.source,
        shape=tuple(node.shape),
        dtype=node.dtype,
        device=_device(rec, node),
        value=value,
        value_stats=_stats(value, value_stats),
        grad=grad,
        grad_stats=grad_stats,
        note="; ".join(notes),
        update=_update_text(rec, parameter, at) if parameter is not None else "",
        kernel=kernel,
    )


def _device(rec: Recording, node: GraphNode) -> str:
    index = rec.producer.get(node.tensor_id)
    if index is None:
        return ""
    return rec.events[index].device


class CheckError(Exception):
    """The node cannot be checked; the message says why."""


def check_node(rec: Recording, node_id: int) -> core.GradcheckReport:
    """Run the op of recorded node ``node_id`` again in float64 on its recorded
    inputs and compare its gradient rule with central differences."""
    index = rec.nodes.get(node_id)
    if index is None:
        raise CheckError(f"node {node_id} is not in the recording")
    event: OpForward = rec.events[index]
    op = _OPS.get(event.op)
    if op is None or REGISTRY[op].grad is None:
        raise CheckError(f"{event.op} has no gradient to check")
    attrs = dict(event.attrs)
    for key, value in attrs.items():
        if isinstance(value, str) and value.startswith("<"):
            raise CheckError(f"{event.op}: attribute {key} was not recorded in full ({value})")
    if op is Op.GETITEM or op is Op.SCATTER_ADD:
        raise CheckError(f"{event.op}: its index was not recorded in full")
    inputs = []
    for tid in event.inputs:
        value = rec.value(tid, index)
        if value is None:
            raise CheckError(f"input {tid} of {event.op}_{node_id} was not kept by the recording")
        if value.dtype.kind == "f":
            inputs.append(core.tensor(value.astype(np.float64), requires_grad=True))
        else:
            inputs.append(core.tensor(value))
    if sum(t.numel() for t in inputs if t.requires_grad) > 20000:
        raise CheckError(
            f"{event.op}_{node_id} has too many elements for a finite-difference check"
        )
    with np.errstate(all="ignore"):
        return core.gradcheck(lambda *xs: apply(op, xs, _attrs(op, attrs)), inputs)


def _attrs(op: Op, attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes back from their plain (event) form; tuples stay tuples."""
    out = {}
    for key, value in attrs.items():
        out[key] = tuple(value) if isinstance(value, list) else value
    return out


def leaf_before(rec: Recording, tensor_id: int) -> tuple[Any, int] | None:
    """A tensor made before the shown step: its announcement, or the op that made
    it (data prepared in ``build``) standing in as an input leaf."""
    index = rec.producer.get(tensor_id)
    if index is None:
        return None
    event = rec.events[index]
    if type(event) is OpForward:
        event = TensorCreated(
            tensor_id=tensor_id,
            kind="input",
            name=f"{event.op}_{event.node_id}",
            shape=event.shape,
            dtype=event.dtype,
            device=event.device,
            requires_grad=event.requires_grad,
            scope=event.scope,
            stats=event.stats,
            source=event.source,
        )
    return event, index


def node_of(model: GraphModel, event: Any) -> int | None:
    """The graph node an event is about (its index in ``model.nodes``)."""
    kind = type(event)
    if kind is OpForward or kind is OpBackward:
        return model.by_node_id.get(event.node_id)
    if kind is GradAccumulated or kind is ParameterUpdated:
        return model.by_tensor.get(event.tensor_id)
    if kind is KernelRun:  # the node of the kernel's first output that is drawn
        for tid in event.outputs:
            node = model.by_tensor.get(tid)
            if node is not None:
                return node
    return None


def source_of(rec: Recording, event: Any) -> Source | None:
    """The user's line of an event (a backward op: that of its forward op)."""
    if type(event) is OpBackward:
        index = rec.nodes.get(event.node_id)
        if index is not None:
            return rec.events[index].source
    if type(event) is KernelRun:  # that of the op computing its first output
        for tid in event.outputs:
            index = rec.producer.get(tid)
            if index is not None:
                return getattr(rec.events[index], "source", None)
    return getattr(event, "source", None)


def last_op(events: list) -> int:
    """Index of the last op event (the last event when there is none)."""
    for i in range(len(events) - 1, -1, -1):
        if type(events[i]) in (OpForward, OpBackward, ParameterUpdated, KernelRun):
            return i
    return len(events) - 1
