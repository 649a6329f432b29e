"""Fusion passes: ``fuse`` makes runs of consecutive elementwise ops (and a
row reduction ending one) into ``fused`` nodes carrying an expression per
output; ``recompute`` computes a fused producer again inside its fused
readers instead of keeping its values.

>>> from core.engine.ops import Op
>>> from core.deferred.graph import Graph
>>> g = Graph()
>>> x = g.add_input("x", (4,), "float32")
>>> a = g.add_op(Op.TANH, [x], {}, [((4,), "float32")])[0]
>>> b = g.add_op(Op.EXP, [a], {}, [((4,), "float32")])[0]
>>> g.outputs = [b]
>>> fused, report = fuse(g)
>>> [n.kind for n in fused.nodes], report.changes
(['input', 'fused'], 1)
"""

from __future__ import annotations

import numpy as np

from core.deferred.graph import Graph, Node, expr_from_json, expr_to_json
from core.deferred.passes import Report, _op_count
from core.engine import expr as E
from core.engine.ops import ELEMENTWISE, REGISTRY, Op

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
