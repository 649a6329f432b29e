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

from core.deferred.graph import Graph, Node, expr_from_json, expr_to_json
from core.engine import expr as E
from core.engine.ops import ELEMENTWISE, REGISTRY, Op

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


# -- elementwise fusion ---------------------------------------------------------------------

FUSABLE = ELEMENTWISE - {Op.CAST}


def fuse(graph: Graph) -> tuple[Graph, Report]:
    """Runs of consecutive elementwise nodes with one output shape (float or
    truth values) become one ``fused`` node: its inputs are the run's outside
    inputs (scalar constants are folded in as literals), its outputs the run's
    values used after it, each with its expression over the inputs. A run is
    consecutive in the node order, so every outside input is made before it
    and every use comes after it."""
    g = graph.copy()
    report = Report("fuse", _op_count(g), 0, 0)
    users = g.users()
    scalars = {
        n.outputs[0]: float(g.constants[n.outputs[0]])
        for n in g.nodes
        if n.kind == "constant"
        and g.constants[n.outputs[0]].shape == ()
        and g.constants[n.outputs[0]].dtype.kind == "f"
    }
    nodes: list[Node] = []
    run: list[Node] = []

    def close() -> None:
        # one big op is worth a kernel too: its expression runs in cached blocks
        alone = len(run) == 1 and run[0].op != Op.EXPAND and _size(g, run[0]) > LARGE
        if len(run) > 1 or alone:
            nodes.append(_fused_node(g, list(run), users, scalars))
            report.changes += 1
            names = ", ".join(m.name or m.op.label for m in run)
            report.details.append(f"fused {len(run)} ops ({names})")
        else:
            nodes.extend(run)
        run.clear()

    for n in g.nodes:
        if n.kind == "constant" and n.outputs[0] in scalars:
            nodes.append(n)  # a scalar constant never splits a run
            continue
        if run and _reduces_rows(g, run, n):  # the run's value, summed over trailing axes
            run.append(n)
            close()
            continue
        if _fusable(g, n) and run and _joins(g, run, n):
            run.append(n)
            continue
        close()
        if _fusable(g, n):
            run.append(n)
        else:
            nodes.append(n)
    close()
    g.nodes = nodes
    report.nodes_after = _op_count(g)
    return g, report


LARGE = 1 << 16  # elements above which a single elementwise op becomes a blocked kernel


def _size(g: Graph, n: Node) -> int:
    return int(np.prod(g.values[n.outputs[0]].shape))


def _fusable(g: Graph, n: Node) -> bool:
    if n.kind != "op" or n.inplace:
        return False
    if n.op == Op.EXPAND:  # a broadcast: in an expression it is implicit
        return g.values[n.inputs[0]].dtype == g.values[n.outputs[0]].dtype
    if n.op not in FUSABLE:
        return False
    return g.values[n.outputs[0]].dtype in ("float32", "float64", "bool")


REDUCTIONS = {Op.SUM: "sum", Op.MEAN: "mean"}


def _reduces_rows(g: Graph, run: list[Node], n: Node) -> bool:
    """A sum or mean over trailing axes (not the first) of a value the run
    makes: computed row block by row block, inside the run's kernel."""
    if n.kind != "op" or n.op not in REDUCTIONS or run[-1].op in REDUCTIONS:
        return False
    axis = n.attrs.get("axis")
    (source,) = n.inputs
    shape = g.values[run[-1].outputs[0]].shape
    if axis is None or g.values[source].shape != shape or len(shape) < 2:
        return False
    trailing = tuple(range(min(axis), len(shape)))
    made = {v for m in run for v in m.outputs}
    return source in made and tuple(axis) == trailing and min(axis) >= 1


def _joins(g: Graph, run: list[Node], n: Node) -> bool:
    return g.values[n.outputs[0]].shape == g.values[run[-1].outputs[0]].shape


def _expression(m: Node) -> E.Expr:
    if m.op == Op.EXPAND:
        return E.In(0)
    return REGISTRY[m.op].expr(m.attrs)


def _fused_node(
    g: Graph, run: list[Node], users: dict[int, list[Node]], scalars: dict[int, float]
) -> Node:
    members = {id(m) for m in run}
    inside = {v for m in run for v in m.outputs}
    inputs: list[int] = []
    trees: dict[int, E.Expr] = {}
    reduced: dict[int, dict] = {}  # an output -> how its tree's values are reduced
    for m in run:
        if m.op in REDUCTIONS:
            trees[m.outputs[0]] = trees[m.inputs[0]]
            kind = {"kind": REDUCTIONS[m.op], "axis": list(m.attrs["axis"])}
            reduced[m.outputs[0]] = kind | {"keepdims": bool(m.attrs["keepdims"])}
            continue
        args = []
        for v in m.inputs:
            if v in trees:
                args.append(trees[v])
            elif v in scalars:
                args.append(E.Lit(scalars[v]))
            else:
                if v not in inputs:
                    inputs.append(v)
                args.append(E.In(inputs.index(v)))
        trees[m.outputs[0]] = E.simplify(E.substitute(_expression(m), args))
    ends = g.live_ends()
    outputs = [
        v
        for v in sorted(inside)
        if v in ends or any(id(u) not in members for u in users.get(v, ()))
    ]
    last = run[-1]
    floats = [g.values[v].dtype for v in (*inputs, *outputs)]
    dtype = next((d for d in floats if d.startswith("float")), "float32")
    attrs = {
        "exprs": [expr_to_json(trees[v]) for v in outputs],
        "covers": [m.origin for m in run if m.origin is not None],
        "ops": [m.name or m.op.label for m in run],
        "dtype": dtype,
        "shape": list(g.values[run[0].outputs[0]].shape),  # the elementwise values'
    }
    if reduced:
        attrs["reduce"] = [reduced.get(v) for v in outputs]
    return Node(
        "fused",
        outputs,
        None,
        inputs,
        attrs,
        name=f"fused_{last.name or last.op.label}",
        scope=last.scope,
        phase=last.phase,
        source=last.source,
    )


# -- recomputation -----------------------------------------------------------------------------

RECOMPUTE_LIMIT = 64  # calls in a producer's expressions that a consumer may repeat


def recompute(graph: Graph) -> tuple[Graph, Report]:
    """A fused node whose values only other fused nodes read is computed again
    inside each of them instead of being kept: the saved activations of an
    elementwise chain (GELU's) never go to memory, and the backward kernel
    reads the chain's input once. Such producers become dead (``dce``)."""
    g = graph.copy()
    report = Report("recompute", _op_count(g), 0, 0)
    ends = g.live_ends()
    for producer in [n for n in g.nodes if n.kind == "fused"]:
        users = g.users()
        readers = {id(u): u for v in producer.outputs for u in users.get(v, ())}
        if not readers or any(v in ends for v in producer.outputs):
            continue
        if any(u.kind != "fused" for u in readers.values()) or "reduce" in producer.attrs:
            continue
        shape = tuple(producer.attrs["shape"])
        if any(tuple(u.attrs["shape"]) != shape for u in readers.values()):
            continue  # a scalar read by a big kernel is read once, not computed per element
        trees = {
            vid: expr_from_json(t)
            for vid, t in zip(producer.outputs, producer.attrs["exprs"], strict=True)
        }
        if sum(_calls(t) for t in trees.values()) > RECOMPUTE_LIMIT:
            continue
        for user in readers.values():
            _inline(user, producer, trees)
        report.changes += 1
        report.details.append(f"{producer.name} computed again where it is read")
    report.nodes_after = _op_count(g)
    return g, report


def _calls(e: E.Expr) -> int:
    return 1 + sum(_calls(a) for a in e.args) if isinstance(e, E.Call) else 0


def _inline(user: Node, producer: Node, trees: dict[int, E.Expr]) -> None:
    """Rewrite ``user`` to compute ``producer``'s values from its inputs."""
    inputs = [v for v in user.inputs if v not in trees]
    for v in producer.inputs:
        if v not in inputs:
            inputs.append(v)
    position = {v: i for i, v in enumerate(inputs)}
    moved = {
        vid: E.substitute(t, [E.In(position[v]) for v in producer.inputs])
        for vid, t in trees.items()
    }
    values = [moved[v] if v in moved else E.In(position[v]) for v in user.inputs]
    user.attrs["exprs"] = [
        expr_to_json(E.simplify(E.substitute(expr_from_json(t), values)))
        for t in user.attrs["exprs"]
    ]
    user.inputs = inputs
    user.attrs["covers"] = [*producer.attrs["covers"], *user.attrs["covers"]]
    user.attrs["ops"] = [*producer.attrs["ops"], *user.attrs["ops"]]


# -- the pipeline ---------------------------------------------------------------------------

PASSES = {"dce": dce, "cse": cse, "fold": fold, "fuse": fuse, "recompute": recompute}


def optimize(graph: Graph, names: tuple[str, ...] | list[str]) -> tuple[Graph, list[Report]]:
    """Run the named passes in order; each one's report, in order."""
    from core.deferred.memory import plan

    PASSES.setdefault("plan", plan)
    reports = []
    for name in names:
        if name not in PASSES:
            raise ValueError(f"unknown pass {name!r}; passes: {', '.join(PASSES)}")
        graph, report = PASSES[name](graph)
        report.graph = graph
        reports.append(report)
    return graph, reports
