"""Memory planning: which values the generated code writes into buffers it
keeps from call to call, and which state it updates in place.

A value gets a buffer when the kernel making it can write into one (a fused
kernel, an elementwise op, a plain matmul) and it never leaves the step (not
an output, a state or ``.grad`` write). Buffers are reused: a value takes the
buffer of one that is dead by then, of the same shape and dtype. A value any
op might return a view of (reshape, expand, slices...) keeps its own array,
and so does a 0-d one (NumPy answers a scalar, which cannot be written into).

A state write (a parameter's update) is made into the state's own array
when the old value has no reader after it and no guard is checked after it:
a call that fails a guard has still written nothing.

>>> from core.engine.ops import Op
>>> from core.deferred.graph import Graph
>>> g = Graph()
>>> x = g.add_input("x", (4,), "float32")
>>> a = g.add_op(Op.TANH, [x], {}, [((4,), "float32")])[0]
>>> b = g.add_op(Op.EXP, [a], {}, [((4,), "float32")])[0]
>>> c = g.add_op(Op.NEG, [b], {}, [((4,), "float32")])[0]
>>> g.outputs = [c]
>>> g2, report = plan(g)
>>> g2.plan == {a: 0, b: 1}, report.changes
(True, 2)
"""

from __future__ import annotations

from core.deferred.graph import Graph, Node
from core.deferred.lower import accepts_out
from core.deferred.passes import Report, _op_count
from core.engine.ops import ELEMENTWISE, Op

# Readers that never hand back a view of an input: a buffer read only by them
# may be reused once they ran.
COPYING = ELEMENTWISE | {
    Op.MATMUL,
    Op.LINEAR,
    Op.MSE_LOSS,
    Op.MSE_LOSS_BACKWARD,
    Op.CROSS_ENTROPY,
    Op.CROSS_ENTROPY_BACKWARD,
    Op.SOFTMAX,
    Op.LOG_SOFTMAX,
    Op.LAYER_NORM,
    Op.SUM,
    Op.MEAN,
    Op.MAX,
    Op.MIN,
    Op.VAR,
    Op.ONE_HOT,
}


def _copying(n: Node) -> bool:
    return n.kind == "fused" or (n.kind == "op" and n.op in COPYING and n.op != Op.CAST)


def plan(graph: Graph) -> tuple[Graph, Report]:
    g = graph.copy()
    report = Report("plan", _op_count(g), _op_count(g), 0)
    users = g.users()
    position = {id(n): i for i, n in enumerate(g.nodes)}
    last_use = {vid: max((position[id(u)] for u in us), default=-1) for vid, us in users.items()}
    ends = set(g.outputs) | set(g.writes.values()) | set(g.grads.values())
    guarded_after = _last_guard_position(g, position)
    free: dict[tuple, list[int]] = {}
    slots: dict[int, tuple] = {}
    holding: dict[int, int] = {}  # value id -> slot, while the value lives
    g.plan = {}
    for i, n in enumerate(g.nodes):
        for vid, slot in list(holding.items()):  # values dead before this node
            if last_use[vid] < i:
                free.setdefault(slots[slot], []).append(slot)
                del holding[vid]
        if n.kind not in ("op", "fused") or not accepts_out(g, n):
            continue
        if any(g.values[v].shape == () for v in (*n.inputs, *n.outputs)):
            continue  # a 0-d result may be a NumPy scalar, which takes no out=
        if n.inplace and _in_place(g, n, i, last_use, guarded_after):
            g.plan[n.outputs[0]] = n.inplace
            report.changes += 1
            report.details.append(f"{n.name} updates {n.inplace} in its own array")
            continue
        for vid in n.outputs:
            if vid in ends or not all(_copying(u) for u in users.get(vid, ())):
                continue
            key = (g.values[vid].shape, g.values[vid].dtype)
            pool = free.get(key)
            slot = pool.pop() if pool else len(slots)
            slots[slot] = key
            holding[vid] = slot
            g.plan[vid] = slot
            report.changes += 1
    g.slots = {slot: key for slot, key in slots.items()}
    report.details.append(f"{len(slots)} buffers for {len(g.plan)} values")
    return g, report


def _last_guard_position(g: Graph, position: dict[int, int]) -> int:
    """Where the last data-dependent guard is checked (-1: none)."""
    guarded = {guard.value for guard in g.guards if guard.value is not None}
    last = -1
    for n in g.nodes:
        if guarded.intersection(n.outputs):
            last = max(last, position[id(n)])
    return last


def _in_place(g: Graph, n: Node, i: int, last_use: dict, guarded_after: int) -> bool:
    """The update may write the state's own array: its old value is read by
    nothing after this node, and no guard comes after it."""
    if i < guarded_after or not n.inputs:
        return False
    old = n.inputs[0]
    state = next((m for m in g.nodes if m.kind == "state" and m.outputs[0] == old), None)
    if state is None or state.name != n.inplace:
        return False
    if g.values[old].shape != g.values[n.outputs[0]].shape:
        return False
    return last_use.get(old, -1) <= i and old not in g.outputs
