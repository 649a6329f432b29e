"""In-place ops and the version check: ``apply_`` runs an op in place, and
``check_saved`` (called by a backward) refuses or repairs a node whose saved
values were written since it was made.

A write outside the autograd graph rebinds the tensor's array (never writing
into it) and stamps the tensor; a write inside the graph (gradients
recorded, an input that requires grad) is an ordinary node on the old value,
and the tensor object takes the new value, the new node and the new value's
id, keeping the old value for the nodes that took it before.

>>> import core
>>> x = core.tensor([1.0, 2.0], requires_grad=True)
>>> y = x * 3.0
>>> _ = y.add_(1.0)           # in the graph
>>> y.sum().backward()
>>> x.grad.tolist(), y.tolist()
([3.0, 3.0], [4.0, 7.0])
"""

from __future__ import annotations

import weakref
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

import numpy as np

from core.device import synchronize, xp_for
from core.engine import dispatch as D
from core.engine.dispatch import Node, _check_inputs, _emit_forward, _op_error, apply
from core.engine.modes import grad_enabled as _grad_enabled
from core.engine.modes import phase_name as _phase
from core.engine.ops import REGISTRY, Op, OpDef
from core.errors import GradError, ShapeError
from core.observe.bus import BUS
from core.observe.source import where

if TYPE_CHECKING:
    from core.engine.tensor import Tensor

_EMPTY: dict[str, Any] = {}


def apply_(op: Op, target: Tensor, others: tuple[Tensor, ...], attrs: dict = _EMPTY) -> int:
    """Run ``op(target, *others)`` in place: ``target`` takes the result.

    Outside the autograd graph (optimizer state, parameters under
    ``no_grad``, tensors nothing requires grad of) the tensor keeps its id and
    object; its new value gets a fresh id (the ``output`` of the event, whose
    ``writes`` names the tensor), which is returned. In place means for the
    tensor, not its array: the engine never writes into an array it has
    handed out, so views and recorded values of the old value are unchanged.

    While gradients are recorded and the op involves a tensor that requires
    grad, the write is part of the graph, as in PyTorch: the op runs as an
    ordinary node on the old value, and the tensor object takes the new value
    and the new node (and the new value's id). A leaf that requires grad
    cannot be written so. Either way the tensor's version moves on; a
    write in the graph keeps the old value for the nodes that took it, one
    outside does not, and a backward refuses a node that would read the new
    value instead (see ``check_saved``).
    """
    opdef = REGISTRY[op]
    if _grad_enabled.get() and opdef.grad is not None:
        if target.requires_grad or any(t.requires_grad for t in others):
            return _apply_in_graph(opdef, target, others, attrs)
    inputs = (target, *others)
    device = target.device
    data = target.data
    for t in others:
        if t.device != device or (opdef.same_dtype and t.data.dtype is not data.dtype):
            _check_inputs(opdef, inputs)
    xp = np if device == "cpu" else xp_for(device)
    emit = BUS.active and (BUS.want_backward_ops or _phase.get() != "backward")
    if emit:
        if BUS.want_sync and device != "cpu":
            synchronize(device)
        start = perf_counter_ns()
    try:
        if len(others) == 1:  # the common case (an update's step), without a list
            out = opdef.forward(xp, data, others[0].data, **attrs)
        else:
            out = opdef.forward(xp, data, *[t.data for t in others], **attrs)
    except (ValueError, IndexError, TypeError, ZeroDivisionError) as exc:
        raise _op_error(opdef, inputs, attrs, exc) from None
    if opdef.multi:
        out = out[0]
    if out.shape != data.shape or out.dtype is not data.dtype:
        _refuse_shape(opdef, target, out)
    nid = next(D._node_ids)
    value_id = next(D._tensor_ids)
    if D._hook is not None:  # before the write: the hook may still read the old value
        D._hook("op", (nid, opdef, inputs, attrs, target, None, value_id))
    target.data = out
    writes = D._writes = D._writes + 1
    if not writes & 0xFFFFF:
        _forget_old_writes()
    _written[target.id] = (writes, opdef.label_)
    if target._node is not None and getattr(target, "_replaced", None):
        target._replaced.append((writes, None))  # this old value is gone
    if emit:
        _emit_forward(nid, opdef, opdef.label_, inputs, attrs, target, None, value_id, start)
    return value_id


# Each write stamps the tensor it wrote with the count of writes so far
# (``dispatch._writes``, which a new node's ``epoch`` takes), so one comparison
# tells a write after a save. Stamps live here, by tensor id, for the few
# tensors ever written: the ops that make the rest pay nothing for them.
_written: dict[int, tuple[int, str]] = {}  # tensor id -> (stamp, the in-place op's label)


def version(t: Tensor) -> int:
    """The stamp of the last in-place write to ``t`` (0: never written)."""
    entry = _written.get(t.id)
    return 0 if entry is None else entry[0]


def _forget_old_writes() -> None:
    """Drop the stamps of writes long past (a node older than a million
    writes with a value written since would go unchecked)."""
    horizon = D._writes - (1 << 20)
    for tid in [tid for tid, (stamp, _label) in _written.items() if stamp < horizon]:
        del _written[tid]


def _apply_in_graph(opdef: OpDef, target: Tensor, others: tuple, attrs: dict) -> int:
    """An in-place op recorded in the graph (see ``apply_``)."""
    if target.requires_grad and target._node is None:
        raise GradError(
            f"{opdef.label_}: a leaf tensor that requires grad cannot be changed in place "
            f"while gradients are recorded; wrap the update in core.no_grad() or use "
            f"{opdef.label}(){where()}"
        )
    old = D._new_tensor(D._Tensor)  # the old value, as the nodes that made and read it know it
    for slot in ("data", "device", "requires_grad", "_grad", "_node", "id", "name"):
        # (not ``_replaced``: nodes that took ``old`` itself are newer than its writes)
        setattr(old, slot, getattr(target, slot))
    if old._node is not None and old._node._out() is target:
        old._node._out = weakref.ref(old)
    D._writes += 1  # before the node: its epoch counts this write
    result = apply(opdef.op, (old, *others), attrs)
    if result.data.shape != old.data.shape or result.data.dtype is not old.data.dtype:
        _refuse_shape(opdef, old, result.data)
    target.data = result.data
    target.requires_grad = result.requires_grad
    target._node = result._node
    target.id = result.id
    # the old value, for nodes that took the tensor before this write
    target._replaced = [*(getattr(target, "_replaced", None) or ()), (D._writes, old)]
    if result._node is not None:
        result._node._out = weakref.ref(target)
    _written[target.id] = (D._writes, opdef.label_)
    return result.id


def check_saved(node: Node) -> None:
    """Before ``node``'s gradient rule runs: inputs written in place after the
    node took them are replaced by the values it took, where the write kept
    them (a write in the graph does); where it did not (a write under
    ``no_grad``), a rule that reads the value is refused, as PyTorch refuses
    it ("modified by an inplace operation"), and so is one that reads an
    output written since."""
    opdef = node.opdef
    inputs = node.inputs
    fixed = None
    for i, t in enumerate(inputs):
        if version(t) <= node.epoch:
            continue
        taken = _value_taken(t, node.epoch)
        if taken is not None:
            fixed = fixed or list(inputs)
            fixed[i] = taken
        elif opdef.saved_from <= i < opdef.saved_to:
            _refuse_modified(node, f"input {i}", t)
    if fixed is not None:
        node.inputs = tuple(fixed)
    if opdef.saves_output:
        out = node._out()
        if out is not None and version(out) > node.epoch:
            _refuse_modified(node, "the output", out)


def _value_taken(t: Tensor, epoch: int) -> Tensor | None:
    """The tensor holding ``t``'s value as it was at ``epoch`` (the first write
    after it kept the old value), or None when that value is gone."""
    for stamp, old in getattr(t, "_replaced", None) or ():
        if stamp > epoch:
            return old
    return None


def write_count() -> int:
    """How many in-place writes the engine has made (see ``check_saved``)."""
    return D._writes


def _refuse_modified(node: Node, which: str, t: Tensor) -> None:
    by = _written.get(t.id, (0, "an in-place op"))[1]
    raise GradError(
        f"backward: one of the values needed for gradient computation has been modified "
        f"by an in-place operation: {which} of {node.name} (shape {tuple(t.shape)}, "
        f"{t.dtype}) was written by {by} after {node.name} saved it; use the "
        f"out-of-place op, or .clone() the tensor before writing it{where()}"
    )


def _refuse_shape(opdef: OpDef, target: Tensor, out: Any) -> None:
    raise ShapeError(
        f"{opdef.label_}: the result has shape {tuple(out.shape)} and dtype {out.dtype}, "
        f"the tensor written has {tuple(target.shape)} and {target.dtype}{where()}"
    )
