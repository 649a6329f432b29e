"""The reference interpreter: run a Graph node by node with the registry's own
forwards (as ``jax.core.eval_jaxpr``). Generated code is checked against it,
and the debugger steps through a graph with it, one node at a time
(``Interpreter.run_node`` is the override point).

>>> import numpy as np
>>> from core.engine.ops import Op
>>> from core.deferred.graph import Graph
>>> g = Graph()
>>> x = g.add_input("x", (2,), "float32")
>>> y = g.add_op(Op.TANH, [x], {}, [((2,), "float32")])[0]
>>> g.outputs = [y]
>>> env = Interpreter(g).run({}, [np.zeros(2, np.float32)])
>>> env[y].tolist()
[0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from core.deferred.graph import Graph, Guard, Node
from core.engine import expr as E
from core.engine.ops import REGISTRY
from core.errors import GradstepError


class GuardFailed(GradstepError):
    """A call's data took another path than the traced one."""

    def __init__(self, guard: Guard, seen: Any) -> None:
        super().__init__(f"guard failed: {guard.describe()}; this call gave {seen!r}")
        self.guard = guard
        self.seen = seen


def check_guard(guard: Guard, array: Any) -> None:
    """Raise ``GuardFailed`` when ``array`` (the guarded value) breaks ``guard``."""
    if guard.kind == "compare":
        value = float(array.reshape(()).item() if hasattr(array, "reshape") else array)
        ok = _COMPARISONS[guard.detail["op"]](value, guard.detail["other"]) == guard.expected
    elif guard.kind == "truth":
        value = bool(array.reshape(()).item())
        ok = value == guard.expected
    else:  # "value": the exact number or array the trace saw
        value = array.reshape(()).item() if array.size == 1 and not guard.detail else array.tolist()
        ok = value == guard.expected
    if not ok:
        raise GuardFailed(guard, value)


_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def value_guards(graph: Graph) -> dict[int, list[Guard]]:
    """The guards on computed values, by the value they read."""
    out: dict[int, list[Guard]] = {}
    for g in graph.guards:
        if g.value is not None:
            out.setdefault(g.value, []).append(g)
    return out


class Interpreter:
    """Runs a graph; subclass and override ``run_node`` to watch or replace nodes."""

    def __init__(self, graph: Graph, xp: Any = np, constants: dict[int, Any] | None = None):
        self.graph = graph
        self.xp = xp
        self.constants = graph.constants if constants is None else constants
        self.guards = value_guards(graph)

    def run(self, state: dict[str, Any], inputs: Sequence[Any]) -> dict[int, Any]:
        """Every value of the graph, from the state arrays and input arrays."""
        env: dict[int, Any] = {}
        position = 0
        for node in self.graph.nodes:
            if node.kind == "input":
                env[node.outputs[0]] = inputs[position]
                position += 1
            elif node.kind == "state":
                env[node.outputs[0]] = state[node.name]
            elif node.kind == "constant":
                env[node.outputs[0]] = self.constants[node.outputs[0]]
            else:
                results = self.run_node(node, [env[v] for v in node.inputs])
                for vid, array in zip(node.outputs, results, strict=True):
                    env[vid] = array
            for vid in node.outputs:
                for guard in self.guards.get(vid, ()):
                    check_guard(guard, env[vid])
        return env

    def run_node(self, node: Node, arrays: list[Any]) -> list[Any]:
        """One node's outputs (a list, one array per output)."""
        if node.kind == "fused":
            return self.run_fused(node, arrays)
        opdef = REGISTRY[node.op]
        with np.errstate(all="ignore"):
            out = opdef.forward(self.xp, *arrays, **node.attrs)
        return list(out) if opdef.multi else [out]

    def run_fused(self, node: Node, arrays: list[Any]) -> list[Any]:
        from core.deferred.graph import expr_from_json

        out = []
        reduce = node.attrs.get("reduce") or [None] * len(node.outputs)
        shape = tuple(node.attrs["shape"])
        for vid, tree, how in zip(node.outputs, node.attrs["exprs"], reduce, strict=True):
            value = self.graph.values[vid]
            with np.errstate(all="ignore"):
                result = E.evaluate(expr_from_json(tree), arrays, self.xp, node.attrs["dtype"])
                result = self.xp.broadcast_to(result, shape)
                if how is not None:
                    result = reduce_rows(self.xp, result, how)
            out.append(self.xp.asarray(result).astype(value.dtype, copy=False))
        return out


def reduce_rows(xp: Any, values: Any, how: dict) -> Any:
    """A fused kernel's sum or mean, as the SUM and MEAN forwards compute it."""
    axis, keepdims = tuple(how["axis"]), how["keepdims"]
    if how["kind"] == "mean":
        return xp.mean(values, axis=axis, keepdims=keepdims)
    return xp.sum(values, axis=axis, keepdims=keepdims)
