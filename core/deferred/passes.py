"""Graph -> Graph passes. Each returns the new graph and a ``Report`` of what it
rewrote, so a viewer can replay a pass without running it again.

- ``dce``: drop ops whose values nobody uses (outputs, state and ``.grad``
  writes and guards are used);
- ``cse``: one node for ops with the same op, inputs and attributes, and one
  constant per distinct small value;
- ``fold``: run ops whose inputs are all constants now, once;
- ``fuse``: consecutive elementwise ops over one shape become one ``fused``
  node carrying an expression per output (``core.engine.expr``), which the
  code generator runs as one kernel.

>>> from core.engine.ops import Op
>>> from core.deferred.graph import Graph
>>> g = Graph()
>>> x = g.add_input("x", (4,), "float32")
>>> a = g.add_op(Op.EXP, [x], {}, [((4,), "float32")])[0]
>>> b = g.add_op(Op.TANH, [x], {}, [((4,), "float32")])[0]  # never used
>>> g.outputs = [a]
>>> g2, report = dce(g)
>>> report.changes, [n.op.label for n in g2.ops]
(1, ['exp'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.deferred.graph import Graph, Node
from core.engine.ops import REGISTRY

DEFAULT = ("dce", "cse", "fold", "dce", "fuse", "recompute", "dce", "plan")
FOLD_LIMIT = 1 << 16  # elements: bigger constant results are computed each call instead


@dataclass
class Report:
    """What one pass did."""

    name: str
    nodes_before: int  # op nodes before
    nodes_after: int  # and after
    changes: int  # rewrites made
    details: list[str] = field(default_factory=list)  # one line per rewrite
    removed: list[int] = field(default_factory=list)  # eager node ids (origins) removed
    merged: dict[int, int] = field(default_factory=dict)  # origin -> origin it now shares
    graph: Graph | None = None  # the graph after the pass (before it: the previous one's)

    def __str__(self) -> str:
        return (
            f"{self.name}: {self.nodes_before} -> {self.nodes_after} op nodes, "
            f"{self.changes} rewrite{'s' if self.changes != 1 else ''}"
        )


def _op_count(g: Graph) -> int:
    return sum(1 for n in g.nodes if n.kind in ("op", "fused"))


def _replace_uses(g: Graph, mapping: dict[int, int]) -> None:
    def resolve(vid: int) -> int:
        while vid in mapping:
            vid = mapping[vid]
        return vid

    for n in g.nodes:
        n.inputs = [resolve(v) for v in n.inputs]
    g.writes = {k: resolve(v) for k, v in g.writes.items()}
    g.grads = {k: resolve(v) for k, v in g.grads.items()}
    g.outputs = [resolve(v) for v in g.outputs]
    for guard in g.guards:
        if guard.value is not None:
            guard.value = resolve(guard.value)


# -- dead code ---------------------------------------------------------------------------


def dce(graph: Graph) -> tuple[Graph, Report]:
    g = graph.copy()
    before = _op_count(g)
    live = set(g.live_ends())
    kept: list[Node] = []
    report = Report("dce", before, before, 0)
    for n in reversed(g.nodes):
        if n.kind in ("op", "fused", "constant") and not live.intersection(n.outputs):
            report.changes += 1
            if n.kind != "constant":
                report.details.append(f"removed {g.node_text(n)}")
                report.removed.extend(_origins(n))
            for vid in n.outputs:
                g.values.pop(vid, None)
                g.constants.pop(vid, None)
            continue
        live.update(n.inputs)
        kept.append(n)
    g.nodes = kept[::-1]
    report.nodes_after = _op_count(g)
    return g, report


def _origins(n: Node) -> list[int]:
    if n.kind == "fused":
        return list(n.attrs["covers"])
    return [n.origin] if n.origin is not None else []


# -- common subexpressions ----------------------------------------------------------------


def cse(graph: Graph) -> tuple[Graph, Report]:
    g = graph.copy()
    report = Report("cse", _op_count(g), 0, 0)
    seen: dict[Any, Node] = {}
    mapping: dict[int, int] = {}
    kept: list[Node] = []
    for n in g.nodes:
        n.inputs = [mapping.get(v, v) for v in n.inputs]
        key = _key(g, n)
        if key is not None and key in seen:
            first = seen[key]
            if n.kind == "op":
                report.details.append(f"{g.node_text(n)} is {g.node_text(first)}")
                if n.origin is not None and first.origin is not None:
                    report.merged[n.origin] = first.origin
            for old, new in zip(n.outputs, first.outputs, strict=True):
                mapping[old] = new
                g.values.pop(old, None)
                g.constants.pop(old, None)
            report.changes += 1
            continue
        if key is not None:
            seen[key] = n
        kept.append(n)
    g.nodes = kept
    _replace_uses(g, mapping)
    report.nodes_after = _op_count(g)
    return g, report


def _key(g: Graph, n: Node) -> Any:
    if n.kind == "constant":
        array = g.constants[n.outputs[0]]
        if array.size > 64:
            return None
        return ("constant", array.dtype.str, array.shape, array.tobytes())
    if n.kind != "op" or n.inplace:
        return None
    try:
        attrs = tuple(sorted(n.attrs.items()))
        hash(attrs)
    except TypeError:
        return None
    return (n.op, tuple(n.inputs), attrs)


# -- constant folding ---------------------------------------------------------------------


def fold(graph: Graph) -> tuple[Graph, Report]:
    g = graph.copy()
    report = Report("fold", _op_count(g), 0, 0)
    producers = g.producers()
    nodes: list[Node] = []
    for n in g.nodes:
        if (
            n.kind == "op"
            and not n.inplace
            and n.inputs
            and all(producers[v].kind == "constant" for v in n.inputs)
        ):
            out_size = sum(int(np.prod(g.values[v].shape)) for v in n.outputs)
            if out_size <= FOLD_LIMIT:
                opdef = REGISTRY[n.op]
                with np.errstate(all="ignore"):
                    result = opdef.forward(np, *[g.constants[v] for v in n.inputs], **n.attrs)
                results = list(result) if opdef.multi else [result]
                replacement = []
                for vid, array in zip(n.outputs, results, strict=True):
                    g.constants[vid] = np.array(array)
                    constant = Node("constant", [vid])
                    replacement.append(constant)
                    producers[vid] = constant
                nodes.extend(replacement)
                report.changes += 1
                report.details.append(f"computed {g.node_text(n)} once")
                if n.origin is not None:
                    report.removed.append(n.origin)
                continue
        nodes.append(n)
    g.nodes = nodes
    report.nodes_after = _op_count(g)
    return g, report


# -- the pipeline ---------------------------------------------------------------------------

PASSES = {"dce": dce, "cse": cse, "fold": fold}


def optimize(graph: Graph, names: tuple[str, ...] | list[str]) -> tuple[Graph, list[Report]]:
    """Run the named passes in order; each one's report, in order."""
    from core.deferred.fusion import fuse, recompute  # they build on this module
    from core.deferred.memory import plan

    PASSES.update({"fuse": fuse, "recompute": recompute, "plan": plan})
    reports = []
    for name in names:
        if name not in PASSES:
            raise ValueError(f"unknown pass {name!r}; passes: {', '.join(PASSES)}")
        graph, report = PASSES[name](graph)
        report.graph = graph
        reports.append(report)
    return graph, reports
