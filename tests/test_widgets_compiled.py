"""The profile and compare views on real data from the real engine."""

from __future__ import annotations

import os

import pytest

import core
from core.debug.compare import compare
from core.debug.profile import profile_matrix
from widgets.compare_view import CompareView
from widgets.profile_view import ProfileView

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOONS = os.path.join(REPO, "samples", "mlp_moons.py")


@pytest.fixture(scope="module")
def runs():
    return profile_matrix(MOONS, ("cpu", "cuda"), ("eager", "compiled"), steps=3, warmup=2)


@pytest.fixture(scope="module")
def comparison():
    return compare(MOONS, steps=3)


def test_profile_view_shows_the_matrix_and_why_a_gpu_run_is_missing(qtbot, runs) -> None:
    view = ProfileView()
    qtbot.addWidget(view)
    assert view._stack.currentIndex() == 0  # the empty state first
    view.set_runs(runs)
    assert view._matrix.rowCount() == 4
    assert view._matrix.item(0, 0).text() == "eager on cpu"
    assert float(view._matrix.item(1, 1).text()) > 0
    if not core.cuda.is_available():
        assert view._matrix.item(2, 1).text() == "unavailable"
        assert view._matrix.item(2, 2).text() == core.cuda.unavailable_reason()
    assert view._first.count() == sum(not r.unavailable for r in runs)
    bars = [i for i in view._bars.getPlotItem().items if type(i).__name__ == "BarGraphItem"]
    assert len(bars) == 2  # the two chosen runs side by side


def test_profile_view_progress_and_cancel(qtbot) -> None:
    view = ProfileView()
    qtbot.addWidget(view)
    view.show()
    view.set_progress(3, 10, "eager on cpu: timing")
    assert view._busy.isVisible() and view._progress.value() == 3
    with qtbot.waitSignal(view.sig_cancel, timeout=1000):
        view._cancel.click()
    view.set_progress(10, 10, "done")
    assert not view._busy.isVisible()


def test_compare_view_maps_ops_and_kernels_both_ways(qtbot, comparison) -> None:
    view = CompareView(comparison)
    qtbot.addWidget(view)
    assert view._ops.count() == len(comparison.entry.trace.graph.ops)
    name = os.path.basename(comparison.program)
    assert view._summary.text() == (
        f"{name}: {comparison.steps} steps, eager and compiled agree; 1 graph traced"
    )
    assert view._kernels.count() == len(comparison.entry.program.kernels)
    linear = next(n for n in comparison.entry.trace.graph.ops if n.op.label == "linear")
    with qtbot.waitSignal(view.sig_kernel_selected, timeout=1000) as signal:
        view.select_op(linear.origin)
    kernel = signal.args[0]
    assert view.selected_kernels() == [kernel]
    assert "computed by kernel" in view._where.text()
    view._kernels.setCurrentRow(kernel)
    assert view._kernels.item(kernel).text() == f"{kernel}: linear  (1 op)"
    fused = next(k for k in comparison.entry.program.kernels if len(k.covers) > 1)
    assert view._kernels.item(fused.index).text().endswith(f"({len(fused.covers)} ops)")
    covered = set(comparison.entry.program.kernels[kernel].covers)
    assert linear.origin in covered and set(view.selected_ops()) == covered
    assert view._passes.topLevelItemCount() == len(comparison.entry.reports)
    assert view._agreement.item(0, 4).text() == "yes"


def test_every_eager_node_of_the_compare_graph_maps_to_one_kernel_or_a_pass(
    qtbot, comparison
) -> None:
    """Selecting each eager op of mlp_moons in the eager graph selects exactly one
    kernel (drawn in the compiled graph) or names the pass that removed it."""
    view = CompareView(comparison)
    qtbot.addWidget(view)
    eager, compiled = view.eager_graph, view.compiled_graph
    ops = [n for n in eager.model.nodes if n.kind == "op"]
    assert len(ops) == len(comparison.entry.trace.graph.ops)
    removed = 0
    for node in ops:
        eager.select(node.index, emit=True)
        kernels = view.selected_kernels()
        if kernels:
            assert len(kernels) == 1
            kernel = comparison.entry.program.kernels[kernels[0]]
            assert node.node_id in kernel.covers
            drawn = compiled.model.nodes[compiled.selected]
            assert drawn.node_id == node.node_id
            if len(kernel.covers) > 1:
                assert drawn.scope == f"kernel {kernel.index}: {kernel.name}"
        else:
            removed += 1
            assert view._where.text().startswith(("removed by the", "the same as node"))
    assert removed == len(ops) - len(compiled.model.by_node_id)
