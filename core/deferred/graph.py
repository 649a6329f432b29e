"""The deferred compiler's IR: a flat list of nodes over SSA values.

A ``Graph`` is one traced training step. Its values are defined once, by

- an input of the step (``input``): an array the caller passes each call;
- state (``state``): a tensor that lives across calls, named (a parameter,
  an optimizer slot, a ``.grad``, data a step reads from its closure);
- a constant (``constant``): a value baked in when the step was traced;
- an op (``op``): one primitive of the op registry, with plain attrs.

State is written only at the end of a step (``writes``: state name -> the
value it takes), so a call whose guards fail leaves everything as it was.
Each node keeps the source line, module scope and phase it was traced in.

>>> g = Graph()
>>> x = g.add_input("x", (2,), "float32")
>>> w = g.add_state("w", (2,), "float32")
>>> y = g.add_op(Op.MUL, [x, w], {}, [((2,), "float32")])[0]
>>> g.writes["w"] = y
>>> g.outputs = [y]
>>> print(g)
graph(%x: float32[2]) state(%w: float32[2]) {
  %3 = mul(%x, %w)
  w <- %3
  return %3
}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from core.engine import expr as E
from core.engine.ops import Op

KINDS = ("input", "state", "constant", "op", "fused")


@dataclass
class Value:
    """One SSA value: what defines it and its static type."""

    id: int
    shape: tuple[int, ...]
    dtype: str
    name: str  # display name: an input's or state's name, else "" (shown as %id)

    def ref(self) -> str:
        return f"%{self.name}" if self.name else f"%{self.id}"

    def type_text(self) -> str:
        return f"{self.dtype}[{','.join(str(s) for s in self.shape)}]"


@dataclass
class Node:
    """One definition: an input, a state read, a constant or an op."""

    kind: str  # one of KINDS ("fused": elementwise ops as one kernel, see passes)
    outputs: list[int]  # value ids it defines
    op: Op | None = None  # for "op"
    inputs: list[int] = field(default_factory=list)  # value ids it reads
    attrs: dict[str, Any] = field(default_factory=dict)  # plain data
    name: str = ""  # inputs and state: their name; ops: a readable node name
    scope: str = ""  # module path when traced ("model.fc1")
    phase: str = "forward"  # "forward", "backward" or "update"
    source: str | None = None  # "file:line" of the user's code
    origin: int | None = None  # the eager node id it was traced from
    inplace: str | None = None  # an in-place op: the state name it updates


@dataclass
class Guard:
    """A fact the graph was specialized to, checked on every call."""

    kind: str  # "compare", "truth", "value", "shape", "grad"
    value: int | None  # the value it reads (None: an input's or state's facts)
    expected: Any  # what tracing saw (plain data)
    detail: dict[str, Any] = field(default_factory=dict)  # op/other for "compare"
    source: str | None = None  # where the user's code decided

    def describe(self) -> str:
        where = f" at {self.source}" if self.source else ""
        if self.kind == "compare":
            op, other = self.detail["op"], self.detail["other"]
            return f"%{self.value} {op} {other!r} was {self.expected}{where}"
        if self.kind == "truth":
            return f"bool(%{self.value}) was {self.expected}{where}"
        if self.kind == "value":
            return f"%{self.value} was {self.expected!r}{where}"
        return f"{self.detail.get('name', '')} {self.kind} {self.expected!r}{where}"


class Graph:
    """A traced step: values, nodes in order, state writes, outputs, guards."""

    def __init__(self) -> None:
        self.values: dict[int, Value] = {}
        self.nodes: list[Node] = []
        self.constants: dict[int, Any] = {}  # value id -> host array
        self.writes: dict[str, int] = {}  # state name -> its value after the step
        self.grads: dict[str, int] = {}  # state name -> the value its .grad takes
        self.outputs: list[int] = []
        self.output_tree: Any = None  # the step's return structure (see tracer)
        self.input_tree: Any = None  # the step's arguments' structure
        self.guards: list[Guard] = []
        # the memory plan (core.deferred.memory): value id -> buffer slot, or the
        # name of the state whose own array it is written into; slot -> (shape, dtype)
        self.plan: dict[int, int | str] = {}
        self.slots: dict[int, tuple] = {}
        self._next = 1

    # -- building ------------------------------------------------------------------

    def new_value(self, shape: tuple, dtype: Any, name: str = "") -> int:
        vid = self._next
        self._next += 1
        self.values[vid] = Value(vid, tuple(int(s) for s in shape), str(dtype), name)
        return vid

    def add_input(self, name: str, shape: tuple, dtype: Any) -> int:
        vid = self.new_value(shape, dtype, name)
        self.nodes.append(Node("input", [vid], name=name))
        return vid

    def add_state(self, name: str, shape: tuple, dtype: Any) -> int:
        vid = self.new_value(shape, dtype, name)
        self.nodes.append(Node("state", [vid], name=name))
        return vid

    def add_constant(self, array: Any) -> int:
        vid = self.new_value(array.shape, array.dtype)
        self.constants[vid] = array
        self.nodes.append(Node("constant", [vid]))
        return vid

    def add_op(
        self, op: Op, inputs: list[int], attrs: dict, outputs: list[tuple], **meta: Any
    ) -> list[int]:
        vids = [self.new_value(shape, dtype) for shape, dtype in outputs]
        self.nodes.append(Node("op", vids, op, list(inputs), dict(attrs), **meta))
        return vids

    # -- reading -------------------------------------------------------------------

    @property
    def inputs(self) -> list[Node]:
        return [n for n in self.nodes if n.kind == "input"]

    @property
    def state(self) -> list[Node]:
        return [n for n in self.nodes if n.kind == "state"]

    @property
    def ops(self) -> list[Node]:
        return [n for n in self.nodes if n.kind == "op"]

    def producers(self) -> dict[int, Node]:
        return {vid: n for n in self.nodes for vid in n.outputs}

    def users(self) -> dict[int, list[Node]]:
        out: dict[int, list[Node]] = {vid: [] for vid in self.values}
        for n in self.nodes:
            for vid in n.inputs:
                out[vid].append(n)
        return out

    def live_ends(self) -> set[int]:
        """Values the step hands out: outputs, state writes, .grad writes, guards."""
        ends = set(self.outputs) | set(self.writes.values()) | set(self.grads.values())
        return ends | {g.value for g in self.guards if g.value is not None}

    def copy(self) -> Graph:
        other = Graph()
        other.values = {k: Value(v.id, v.shape, v.dtype, v.name) for k, v in self.values.items()}
        other.nodes = [
            Node(
                n.kind,
                list(n.outputs),
                n.op,
                list(n.inputs),
                dict(n.attrs),
                n.name,
                n.scope,
                n.phase,
                n.source,
                n.origin,
                n.inplace,
            )
            for n in self.nodes
        ]
        other.constants = dict(self.constants)
        other.writes = dict(self.writes)
        other.grads = dict(self.grads)
        other.outputs = list(self.outputs)
        other.output_tree = self.output_tree
        other.input_tree = self.input_tree
        other.guards = list(self.guards)
        other.plan = dict(self.plan)
        other.slots = dict(self.slots)
        other._next = self._next
        return other

    # -- text ----------------------------------------------------------------------

    def node_text(self, n: Node) -> str:
        ref = lambda vid: self.values[vid].ref()  # noqa: E731
        outs = ", ".join(ref(v) for v in n.outputs)
        if n.kind == "constant":
            array = self.constants[n.outputs[0]]
            shown = array.item() if array.size == 1 else self.values[n.outputs[0]].type_text()
            return f"{outs} = constant {shown!r}"
        args = ", ".join(ref(v) for v in n.inputs)
        if n.kind == "fused":
            return f"{outs} = fused[{', '.join(n.attrs['ops'])}]({args})"
        attrs = "".join(f", {k}={v!r}" for k, v in n.attrs.items())
        label = n.op.label if n.op is not None else n.kind
        if n.inplace:
            label += "_"
        return f"{outs} = {label}({args}{attrs})"

    def __str__(self) -> str:
        typed = lambda n: f"%{n.name}: {self.values[n.outputs[0]].type_text()}"  # noqa: E731
        heads = ", ".join(typed(n) for n in self.inputs)
        state = ", ".join(typed(n) for n in self.state)
        lines = [f"graph({heads}) state({state}) {{"]
        for n in self.nodes:
            if n.kind in ("input", "state"):
                continue
            lines.append("  " + self.node_text(n))
        for name, vid in self.writes.items():
            lines.append(f"  {name} <- {self.values[vid].ref()}")
        for name, vid in self.grads.items():
            lines.append(f"  {name}.grad <- {self.values[vid].ref()}")
        outs = ", ".join(self.values[v].ref() for v in self.outputs)
        lines.append(f"  return {outs}")
        lines.append("}")
        return "\n".join(lines)

    def annotated(self) -> str:
        """The text form with each op's phase, scope and source line."""
        lines = []
        for n in self.nodes:
            if n.kind not in ("op", "fused"):
                continue
            where = "  ".join(x for x in (n.phase, n.scope, n.source or "") if x)
            lines.append(f"{self.node_text(n):60s}  # {where}")
        return "\n".join(lines)

    # -- JSON ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Plain data (constants by value id; their arrays go beside, in .npy)."""
        return {
            "values": [[v.id, list(v.shape), v.dtype, v.name] for v in self.values.values()],
            "nodes": [_node_json(n) for n in self.nodes],
            "writes": self.writes,
            "grads": self.grads,
            "outputs": self.outputs,
            "output_tree": self.output_tree,
            "input_tree": self.input_tree,
            "plan": [[vid, where] for vid, where in self.plan.items()],
            "slots": [[slot, list(shape), dtype] for slot, (shape, dtype) in self.slots.items()],
            "guards": [
                {"kind": g.kind, "value": g.value, "expected": g.expected}
                | {"detail": g.detail, "source": g.source}
                for g in self.guards
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], constants: dict[int, Any]) -> Graph:
        g = cls()
        for vid, shape, dtype, name in data["values"]:
            g.values[int(vid)] = Value(int(vid), tuple(int(s) for s in shape), str(dtype), name)
        g._next = max(g.values, default=0) + 1
        g.nodes = [_node_from_json(n) for n in data["nodes"]]
        g.constants = dict(constants)
        g.writes = {str(k): int(v) for k, v in data["writes"].items()}
        g.grads = {str(k): int(v) for k, v in data["grads"].items()}
        g.outputs = [int(v) for v in data["outputs"]]
        g.output_tree = data["output_tree"]
        g.input_tree = data["input_tree"]
        g.plan = {int(vid): where for vid, where in data.get("plan", [])}
        g.slots = {int(k): (tuple(shape), dtype) for k, shape, dtype in data.get("slots", [])}
        g.guards = [
            Guard(x["kind"], x["value"], x["expected"], x.get("detail", {}), x.get("source"))
            for x in data["guards"]
        ]
        return g


def _node_json(n: Node) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": n.kind, "outputs": n.outputs}
    if n.op is not None:
        out["op"] = n.op.name
    for key in ("inputs", "attrs", "name", "scope", "source", "origin", "inplace"):
        value = getattr(n, key)
        if value:
            out[key] = _plain(value)
    out["phase"] = n.phase
    return out


def _node_from_json(data: dict[str, Any]) -> Node:
    op = data.get("op")
    return Node(
        data["kind"],
        [int(v) for v in data["outputs"]],
        Op[op] if op is not None else None,
        [int(v) for v in data.get("inputs", [])],
        _attrs_in(data.get("attrs", {})),
        data.get("name", ""),
        data.get("scope", ""),
        data.get("phase", "forward"),
        data.get("source"),
        data.get("origin"),
        data.get("inplace"),
    )


def _plain(value: Any) -> Any:
    """Attrs to JSON: tuples become lists (restored by ``_attrs_in``)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _attrs_in(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: _tuples(v) for k, v in attrs.items()}


def _tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


def dumps(graph: Graph) -> str:
    return json.dumps(graph.to_json(), allow_nan=True)


def expr_to_json(e: E.Expr) -> Any:
    if isinstance(e, E.In):
        return ["in", e.index]
    if isinstance(e, E.Lit):
        return ["lit", e.value]
    return ["call", e.fn, [expr_to_json(a) for a in e.args]]


def expr_from_json(data: Any) -> E.Expr:
    if data[0] == "in":
        return E.In(int(data[1]))
    if data[0] == "lit":
        return E.Lit(float(data[1]))
    return E.Call(str(data[1]), tuple(expr_from_json(a) for a in data[2]))
