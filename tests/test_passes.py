"""Each compiler pass on small hand-built graphs: what it must change, what it
must leave, and that the interpreter gives the same values before and after."""

from __future__ import annotations

import numpy as np
import pytest

from core.deferred import codegen, fusion, memory, passes
from core.deferred.graph import Graph, Guard
from core.deferred.interpret import Interpreter
from core.engine.ops import Op

F32 = "float32"


def op(g: Graph, op_: Op, inputs, shape=(4,), attrs=None, dtype=F32, **meta) -> int:
    return g.add_op(op_, list(inputs), attrs or {}, [(shape, dtype)], **meta)[0]


def run(g: Graph, x: np.ndarray, state: dict | None = None) -> list[np.ndarray]:
    env = Interpreter(g).run(state or {}, [x])
    return [env[v] for v in g.outputs]


def same_values(before: Graph, after: Graph, x: np.ndarray, state: dict | None = None) -> None:
    for a, b in zip(run(before, x, state), run(after, x, state), strict=True):
        np.testing.assert_array_equal(a, b)


X = np.array([0.5, -1.0, 2.0, -0.0], np.float32)


def test_dce_removes_dead_ops_and_keeps_writes_and_guards() -> None:
    g = Graph()
    x = g.add_input("x", (4,), F32)
    w = g.add_state("w", (4,), F32)
    used = op(g, Op.EXP, [x])
    op(g, Op.TANH, [x])  # dead
    guarded = op(g, Op.SUM, [x], (), {"axis": None, "keepdims": False})
    update = op(g, Op.SUB, [w, x], inplace="w")
    g.guards.append(Guard("compare", guarded, True, {"op": ">", "other": 0.0}))
    g.writes["w"] = update
    g.outputs = [used]
    after, report = passes.dce(g)
    assert report.changes == 1 and [n.op for n in after.ops] == [Op.EXP, Op.SUM, Op.SUB]
    again, report2 = passes.dce(after)
    assert report2.changes == 0 and len(again.nodes) == len(after.nodes)


def test_cse_merges_same_op_inputs_and_attrs_only() -> None:
    g = Graph()
    x = g.add_input("x", (4,), F32)
    a = op(g, Op.TANH, [x])
    b = op(g, Op.TANH, [x])  # the same as a
    c = op(g, Op.LEAKY_RELU, [x], attrs={"slope": 0.1})
    d = op(g, Op.LEAKY_RELU, [x], attrs={"slope": 0.2})  # other attrs: kept
    s = op(g, Op.ADD, [a, b])
    t = op(g, Op.ADD, [c, d])
    g.outputs = [s, t]
    after, report = passes.cse(g)
    assert report.changes == 1
    assert [n.op for n in after.ops].count(Op.TANH) == 1
    assert [n.op for n in after.ops].count(Op.LEAKY_RELU) == 2
    same_values(g, after, X)


def test_fold_computes_constant_ops_once_and_leaves_big_ones() -> None:
    g = Graph()
    x = g.add_input("x", (4,), F32)
    two = g.add_constant(np.array(2.0, np.float32))
    three = g.add_constant(np.array(3.0, np.float32))
    six = op(g, Op.MUL, [two, three], ())
    big = g.add_constant(np.ones(passes.FOLD_LIMIT + 1, np.float32))
    doubled = op(g, Op.MUL, [big, big], (passes.FOLD_LIMIT + 1,))  # too big to keep folded
    y = op(g, Op.MUL, [x, six])
    g.outputs = [y, doubled]
    after, report = passes.fold(g)
    assert report.changes == 1
    assert [n.op for n in after.ops] == [Op.MUL, Op.MUL]
    assert after.constants[six].item() == 6.0
    same_values(g, after, X)


def test_fuse_joins_consecutive_same_shape_elementwise_runs() -> None:
    g = Graph()
    x = g.add_input("x", (4,), F32)
    half = g.add_constant(np.array(0.5, np.float32))
    a = op(g, Op.MUL, [x, half])
    b = op(g, Op.TANH, [a])
    c = op(g, Op.ADD, [b, x])
    total = op(g, Op.SUM, [c], (), {"axis": None, "keepdims": False})  # a reduction: not fused
    d = op(g, Op.EXP, [c])
    g.outputs = [total, d]
    after, report = fusion.fuse(g)
    kinds = [n.kind for n in after.nodes if n.kind in ("op", "fused")]
    assert kinds == ["fused", "op", "op"] and report.changes == 1
    fused = next(n for n in after.nodes if n.kind == "fused")
    assert fused.outputs == [c] and fused.inputs == [x]  # the scalar became a literal
    same_values(g, after, X)


def test_fuse_leaves_other_shapes_and_in_place_ops() -> None:
    g = Graph()
    x = g.add_input("x", (4,), F32)
    w = g.add_state("w", (4,), F32)
    a = op(g, Op.TANH, [x])
    b = op(g, Op.SUM_TO, [a], (1,), {"shape": (1,)})
    c = op(g, Op.SUB, [w, a], inplace="w")
    g.writes["w"] = c
    g.outputs = [b]
    after, report = fusion.fuse(g)
    assert report.changes == 0 and all(n.kind != "fused" for n in after.nodes)


def test_recompute_moves_a_producer_into_its_fused_readers() -> None:
    g = Graph()
    x = g.add_input("x", (4,), F32)
    a = op(g, Op.TANH, [x])
    b = op(g, Op.EXP, [a])  # fused producer: a, b
    s = op(g, Op.SUM, [x], (), {"axis": None, "keepdims": False})  # splits the runs
    c = op(g, Op.MUL, [b, a])
    d = op(g, Op.ADD, [c, x])  # fused reader of a and b
    g.outputs = [d, s]
    fused, _ = fusion.fuse(g)
    assert sum(n.kind == "fused" for n in fused.nodes) == 2
    after, report = fusion.recompute(fused)
    cleaned, _ = passes.dce(after)
    assert report.changes == 1 and sum(n.kind == "fused" for n in cleaned.nodes) == 1
    same_values(g, cleaned, X)


def test_plan_reuses_buffers_of_dead_values_and_never_outputs() -> None:
    g = Graph()
    x = g.add_input("x", (4,), F32)
    a = op(g, Op.TANH, [x])
    b = op(g, Op.EXP, [a])
    c = op(g, Op.NEG, [b])  # a is dead here: c takes a's buffer
    d = op(g, Op.EXP, [c])
    viewed = op(g, Op.TANH, [d])
    view = op(g, Op.RESHAPE, [viewed], (2, 2), {"shape": (2, 2)})
    g.outputs = [view, d]
    after, report = memory.plan(g)
    assert after.plan[a] == after.plan[c] and after.plan[b] != after.plan[a]
    assert d not in after.plan  # an output keeps its own array
    assert viewed not in after.plan  # a reshape may hand out a view of it
    program = codegen.generate(after)
    program.bind({}, {})
    from core.engine.dispatch import wrap

    first = [np.array(o) for o in program.run([wrap(X, "cpu")])]
    second = [np.array(o) for o in program.run([wrap(X, "cpu")])]
    for a_, b_, want in zip(first, second, run(g, X), strict=True):
        np.testing.assert_array_equal(a_, want)
        np.testing.assert_array_equal(b_, want)


@pytest.mark.parametrize("guard_after", [False, True])
def test_plan_updates_state_in_place_only_before_no_guard(guard_after: bool) -> None:
    g = Graph()
    x = g.add_input("x", (4,), F32)
    w = g.add_state("w", (4,), F32)
    update = op(g, Op.SUB, [w, x], inplace="w")
    g.writes["w"] = update
    total = op(g, Op.SUM, [x], (), {"axis": None, "keepdims": False})
    if guard_after:
        g.guards.append(Guard("compare", total, True, {"op": ">", "other": -100.0}))
    g.outputs = [total]
    after, _ = memory.plan(g)
    assert (after.plan.get(update) == "w") is (not guard_after)


@pytest.mark.parametrize("shape", [(4, 8), (64, 1024)], ids=["straight", "blocked"])
def test_fuse_takes_a_row_reduction_into_the_kernel(shape) -> None:
    g = Graph()
    x = g.add_input("x", shape, F32)
    a = op(g, Op.TANH, [x], shape)
    b = op(g, Op.MUL, [a, x], shape)
    rows = op(g, Op.MEAN, [b], (shape[0], 1), {"axis": (1,), "keepdims": True})
    g.outputs = [rows, a]
    after, report = fusion.fuse(g)
    (fused,) = [n for n in after.nodes if n.kind == "fused"]
    how = fused.attrs["reduce"][fused.outputs.index(rows)]
    assert report.changes == 1 and how["kind"] == "mean" and how["axis"] == [1]
    values = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    same_values(g, after, values)
    planned, _ = memory.plan(after)
    program = codegen.generate(planned)
    program.bind({}, {})
    from core.engine.dispatch import wrap

    got = program.run([wrap(values, "cpu")])
    for a_, want in zip(got, run(g, values), strict=True):
        np.testing.assert_array_equal(np.asarray(a_), want)


def test_a_reduction_over_the_first_axis_stays_out_of_the_kernel() -> None:
    g = Graph()
    x = g.add_input("x", (4, 8), F32)
    a = op(g, Op.TANH, [x], (4, 8))
    b = op(g, Op.EXP, [a], (4, 8))
    cols = op(g, Op.SUM, [b], (8,), {"axis": (0,), "keepdims": False})
    g.outputs = [cols]
    after, _ = fusion.fuse(g)
    assert [n.kind for n in after.nodes if n.kind in ("op", "fused")] == ["fused", "op"]
