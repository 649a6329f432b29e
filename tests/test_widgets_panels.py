"""The side panels: inspector, loss plot, source view and scope stack, offscreen.

Each test gives a widget plain data and checks what it draws (the stats text,
the histogram and heatmap arrays behind the plots, the curve's points), its
empty state, and the signals a real mouse click or button press emits.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import QCoreApplication, QPoint, QPointF, Qt, QThreadPool  # noqa: E402
from PySide6.QtGui import QTextCursor  # noqa: E402
from PySide6.QtWidgets import QLabel  # noqa: E402

from core.observe.events import Source, Stats
from core.observe.stats import summarize  # noqa: E402
from widgets.data import WARNING_COLOR, NodeInfo, format_number, histogram  # noqa: E402
from widgets.inspector import ASYNC_THRESHOLD, EMPTY_TEXT, Inspector, TensorPanel  # noqa: E402
from widgets.loss_plot import REDRAW_MS, LossPlot  # noqa: E402
from widgets.scope_stack import ScopeStack  # noqa: E402
from widgets.source_view import EMPTY_TEXT as SOURCE_EMPTY_TEXT  # noqa: E402
from widgets.source_view import SourceView  # noqa: E402

pytestmark = [
    pytest.mark.qt_log_level_fail("WARNING"),
    pytest.mark.qt_log_ignore("propagateSizeHints"),  # the offscreen platform says this
]

FLOAT_STATS = ("min", "max", "mean", "std", "norm")
COUNT_STATS = ("nan", "inf", "size")


@pytest.fixture(autouse=True)
def _no_jobs_left_behind():
    yield
    QThreadPool.globalInstance().waitForDone()
    QCoreApplication.processEvents()


def node(value=None, grad=None, *, value_stats=None, grad_stats=None, node_id=7, **kw):
    """A NodeInfo for ``value`` and ``grad``, with their stats unless given."""
    if value is not None and value_stats is None:
        value_stats = summarize(value)
    if grad is not None and grad_stats is None:
        grad_stats = summarize(grad)
    shape = () if value is None else value.shape
    fields = dict(
        node_id=node_id,
        title="matmul_3",
        kind="op",
        op="matmul",
        attrs=(("transpose_b", False),),
        scope="model.fc1",
        source=Source("/home/user/samples/mlp.py", 23, "forward"),
        shape=shape,
        dtype="float32",
        device="cpu",
        value=value,
        value_stats=value_stats,
        grad=grad,
        grad_stats=grad_stats,
    )
    fields.update(kw)
    return NodeInfo(**fields)


def shown(qtbot, widget):
    qtbot.addWidget(widget)
    widget.resize(560, 600)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def assert_shows_stats(panel: TensorPanel, stats: Stats) -> None:
    text = panel.stats_text()
    for name in FLOAT_STATS:
        assert float(text[name]) == pytest.approx(getattr(stats, name), rel=1e-5), name
    for name in COUNT_STATS:
        assert int(text[name]) == getattr(stats, name), name


def finite_histogram(a: np.ndarray, bins: int):
    finite = a[np.isfinite(a)].astype(np.float64)
    return np.histogram(finite, bins=bins)


# -- inspector ---------------------------------------------------------------------


def test_inspector_empty_state(qtbot):
    inspector = shown(qtbot, Inspector())
    assert inspector.is_empty()
    visible = [label.text() for label in inspector.findChildren(QLabel) if label.isVisible()]
    assert visible == [EMPTY_TEXT]
    inspector.show_node(node(np.ones((2, 2), np.float32)))
    assert not inspector.is_empty()
    inspector.show_node(None)
    assert inspector.is_empty()


def test_inspector_header_shows_op_attrs_scope_and_source(qtbot):
    inspector = shown(qtbot, Inspector(node(np.ones(3, np.float32))))
    assert inspector.field_text("op") == "matmul"
    assert inspector.field_text("attributes") == "transpose_b=False"
    assert inspector.field_text("scope") == "model.fc1"
    assert inspector.field_text("source") == "mlp.py:23 in forward"


def test_inspector_source_of_a_compiled_kernel_names_the_line_only(qtbot):
    """A compiled step's kernels keep the user's line, not its function: no
    dangling "in"."""
    where = Source("/home/user/samples/mlp.py", 37, "")
    inspector = shown(qtbot, Inspector(node(np.ones(3, np.float32), source=where)))
    assert inspector.field_text("source") == "mlp.py:37"
    assert str(where) == "/home/user/samples/mlp.py:37"


def test_inspector_writes_an_index_as_python_does(qtbot):
    from core.engine import indexing

    spec, _arrays = indexing.encode((slice(None), slice(0, 48), None, np.array([1, 2])))
    inspector = shown(
        qtbot, Inspector(node(np.ones(3, np.float32), op="getitem", attrs=(("index", spec),)))
    )
    assert inspector.field_text("attributes") == "index=[:, 0:48, None, idx0]"


def test_inspector_shows_the_given_stats_not_recomputed_ones(qtbot):
    value = np.arange(12, dtype=np.float32).reshape(3, 4)
    given = Stats(min=-1.25, max=1e-7, mean=0.123456789, std=2.5, norm=1234567.0,
                  nan=0, inf=0, size=12)  # fmt: skip
    inspector = shown(qtbot, Inspector(node(value, value_stats=given)))
    assert_shows_stats(inspector.value_panel, given)
    assert inspector.value_panel.stat_label("mean").toolTip() == repr(given.mean)


def test_nan_and_inf_counts_are_highlighted(qtbot):
    grad = np.array([[1.0, np.nan, 2.0], [np.inf, -np.inf, 3.0]], np.float32)
    value = np.ones((2, 3), np.float32)
    inspector = shown(qtbot, Inspector(node(value, grad)))
    panel = inspector.grad_panel
    assert_shows_stats(panel, summarize(grad))
    assert panel.stats_text()["nan"] == "1" and panel.stats_text()["inf"] == "2"
    for name in ("nan", "inf"):
        label = panel.stat_label(name)
        assert label.property("warning") is True
        assert WARNING_COLOR in label.styleSheet()
    for name in ("nan", "inf"):
        assert inspector.value_panel.stat_label(name).property("warning") is False
        assert WARNING_COLOR not in inspector.value_panel.stat_label(name).styleSheet()
    assert "⚠" in inspector._tabs.tabText(1) and "⚠" not in inspector._tabs.tabText(0)
    assert "1 NaN, 2 Inf</b> not shown" in panel._hist_caption.text()
    np.testing.assert_array_equal(panel.heatmap_image(), grad)
    overlay = panel._bad_overlay.image  # warning-coloured cells over the heatmap
    np.testing.assert_array_equal(overlay[..., 3] == 255, ~np.isfinite(grad))


def test_stats_computed_when_not_given_and_tab_marked(qtbot):
    grad = np.array([1.0, np.nan, 3.0])
    inspector = shown(qtbot, Inspector(node(np.ones(3), grad, grad_stats=None)))
    assert_shows_stats(inspector.grad_panel, summarize(grad))
    assert "⚠" in inspector._tabs.tabText(1)


def test_histogram_counts_equal_numpy_over_finite_values(qtbot):
    rng = np.random.default_rng(0)
    value = rng.normal(size=(40, 50)).astype(np.float32)
    value[3, 7] = np.nan
    value[5, 1] = np.inf
    inspector = shown(qtbot, Inspector(node(value)))
    counts, edges = inspector.value_panel.histogram_data()
    want_counts, want_edges = finite_histogram(value, len(counts))
    np.testing.assert_array_equal(counts, want_counts)
    np.testing.assert_allclose(edges, want_edges)
    assert counts.sum() == value.size - 2


def test_heatmap_draws_the_2d_value(qtbot):
    value = np.arange(20, dtype=np.float32).reshape(4, 5)
    inspector = shown(qtbot, Inspector(node(value)))
    np.testing.assert_array_equal(inspector.value_panel.heatmap_image(), value)


def test_slice_chooser_picks_the_2d_slice_of_nd_data(qtbot):
    value = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    inspector = shown(qtbot, Inspector(node(value)))
    panel = inspector.value_panel
    assert panel.tiled(), "a 4-D weight opens as a grid of its filters"
    panel.set_tiled(False)
    np.testing.assert_array_equal(panel.heatmap_image(), value[0, 0])
    panel.set_slice((1, 2))
    assert panel.slice_index() == (1, 2)
    np.testing.assert_array_equal(panel.heatmap_image(), value[1, 2])
    panel._slice_spins[1].setValue(0)  # as the user turning the spin box
    np.testing.assert_array_equal(panel.heatmap_image(), value[1, 0])
    assert panel._slice_spins[0].maximum() == 1 and panel._slice_spins[1].maximum() == 2


def test_scalar_and_short_vector_show_their_values(qtbot):
    inspector = shown(qtbot, Inspector(node(np.array(0.731))))
    assert "0.731" in inspector.value_panel.values_text()
    assert inspector.value_panel.heatmap_image() is None
    vector = np.array([1.5, -2.0, 0.25])
    inspector.show_node(node(vector))
    panel = inspector.value_panel
    assert panel._values_caption.text() == "[1.5, -2, 0.25]"
    np.testing.assert_array_equal(panel._bars.opts["height"], vector)


def test_missing_value_shows_stats_and_the_note(qtbot):
    stats = Stats(0.0, 1.0, 0.5, 0.5, 3.0, 0, 0, 8)
    info = node(None, value_stats=stats, note="value not kept: memory cap")
    inspector = shown(qtbot, Inspector(info))
    assert_shows_stats(inspector.value_panel, stats)
    assert inspector.value_panel.histogram_data() is None
    assert "memory cap" in inspector.value_panel._hist_caption.text()
    assert "memory cap" in inspector._note.text()


def test_check_gradient_emits_node_id_and_shows_the_result(qtbot):
    value = np.ones((2, 2), np.float32)
    inspector = shown(qtbot, Inspector(node(value, value * 0.5, node_id=42)))
    button = inspector.check_button()
    assert button.isEnabled()
    with qtbot.waitSignal(inspector.sig_check_gradient) as blocker:
        qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert blocker.args == [42]
    inspector.show_gradcheck(41, 9.0, False, "another node")  # stale: ignored
    assert "another node" not in inspector.gradcheck_text()
    inspector.show_gradcheck(42, 1.5e-3, False, "relative error above 1e-4")
    text = inspector.gradcheck_text()
    assert format_number(1.5e-3) in text and "failed" in text and "above 1e-4" in text
    assert WARNING_COLOR in inspector._check_result.styleSheet()


def test_check_gradient_is_disabled_without_a_gradient(qtbot):
    inspector = shown(qtbot, Inspector(node(np.ones(3, np.float32))))
    assert not inspector.check_button().isEnabled()
    with qtbot.assertNotEmitted(inspector.sig_check_gradient):
        qtbot.mouseClick(inspector.check_button(), Qt.MouseButton.LeftButton)


def test_large_histogram_is_computed_off_the_gui_thread(qtbot):
    rng = np.random.default_rng(1)
    value = rng.normal(size=ASYNC_THRESHOLD + 1000).astype(np.float32)
    value[::997] = np.nan
    panel = shown(qtbot, TensorPanel())
    with qtbot.waitSignal(panel.sig_summary_ready, timeout=10_000):
        panel.show_tensor(value, None, device="cpu")
        assert panel.is_pending() and panel.histogram_data() is None
    assert_shows_stats(panel, summarize(value))  # no stats given: computed in the job
    counts, edges = panel.histogram_data()
    want_counts, want_edges = finite_histogram(value, len(counts))
    np.testing.assert_array_equal(counts, want_counts)
    np.testing.assert_allclose(edges, want_edges)


def test_stale_histogram_results_are_dropped(qtbot):
    big = np.random.default_rng(2).normal(size=ASYNC_THRESHOLD * 2)
    small = np.array([0.0, 1.0, 1.0, 2.0, 5.0])
    panel = shown(qtbot, TensorPanel())
    panel.show_tensor(big, summarize(big))
    panel.show_tensor(small, summarize(small))
    QThreadPool.globalInstance().waitForDone()
    QCoreApplication.processEvents()  # delivers the big array's (stale) result
    counts, edges = panel.histogram_data()
    np.testing.assert_array_equal(counts, histogram(small)[0])
    np.testing.assert_allclose(edges, histogram(small)[1])
    assert_shows_stats(panel, summarize(small))


# -- loss plot ---------------------------------------------------------------------


def test_loss_plot_empty_state_then_data(qtbot):
    plot = shown(qtbot, LossPlot())
    assert plot.is_empty()
    plot.set_losses([0, 1, 2], [3.0, 2.0, 1.0])
    assert not plot.is_empty()
    steps, losses = plot.curve_data()
    np.testing.assert_array_equal(steps, [0, 1, 2])
    np.testing.assert_array_equal(losses, [3.0, 2.0, 1.0])


def test_loss_plot_batches_appends(qtbot):
    plot = shown(qtbot, LossPlot([0], [1.0]))
    for step in range(1, 101):
        plot.append(step, 1.0 / step)
    assert len(plot.curve_data()[0]) == 1  # not redrawn per point
    qtbot.waitUntil(lambda: len(plot.curve_data()[0]) == 101, timeout=20 * REDRAW_MS)
    steps, losses = plot.data()
    np.testing.assert_array_equal(steps, np.arange(101))
    np.testing.assert_allclose(losses[1:], 1.0 / np.arange(1, 101))


def test_loss_plot_marks_nan_and_inf_at_the_top(qtbot):
    losses = np.linspace(2.0, 0.1, 50)
    losses[[20, 30]] = [np.nan, np.inf]
    plot = shown(qtbot, LossPlot(range(50), losses))
    np.testing.assert_array_equal(plot.bad_steps(), [20, 30])
    _, drawn = plot.curve_data()
    assert np.isnan(drawn[[20, 30]]).all()  # gaps in the line
    for log in (False, True):
        plot.set_log_y(log)
        assert plot.log_y() is log
        qtbot.waitUntil(lambda: plot._bad.data["y"][0] > plot._curve.dataBounds(1)[1])
        bottom, top = plot._plot.getViewBox().viewRange()[1]
        assert (plot._bad.data["y"] <= top).all()


def test_loss_plot_cursor_and_click(qtbot):
    plot = shown(qtbot, LossPlot(range(100), np.linspace(1.0, 0.0, 100)))
    plot.set_cursor_step(40)
    assert plot.cursor_step() == 40 and plot._cursor.isVisible()
    assert "step 40" in plot._readout.text()
    plot.set_cursor_step(None)
    assert plot.cursor_step() is None
    view = plot._plot.getViewBox()
    qtbot.waitUntil(lambda: view.viewRange()[0][1] >= 99)
    scene_pos = view.mapViewToScene(QPointF(63.2, 0.5))
    widget_pos = plot._plot_widget.mapFromScene(scene_pos)
    with qtbot.waitSignal(plot.sig_step_clicked) as blocker:
        qtbot.mouseClick(plot._plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=widget_pos)
    assert blocker.args == [63]


# -- source view -------------------------------------------------------------------

SOURCE = "\n".join(f"x{i} = {i}  # line {i + 1}" for i in range(200))


def line_center(view: SourceView, line: int) -> QPoint:
    cursor = QTextCursor(view.document().findBlockByNumber(line - 1))
    return view.cursorRect(cursor).center()


def test_source_view_empty_state(qtbot):
    view = shown(qtbot, SourceView())
    assert view.document().isEmpty()
    assert view.placeholderText() == SOURCE_EMPTY_TEXT
    with qtbot.assertNotEmitted(view.sig_line_clicked):
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(40, 40))


def test_source_view_highlights_and_scrolls_to_the_line(qtbot):
    view = shown(qtbot, SourceView("/tmp/model.py", SOURCE))
    assert view.isReadOnly() and view.path() == "/tmp/model.py"
    view.highlight_line(150)
    assert view.highlighted_line() == 150
    (selection,) = view.extraSelections()
    assert selection.cursor.blockNumber() == 149
    assert view.viewport().rect().contains(line_center(view, 150))
    view.highlight_line(None)
    assert view.extraSelections() == []
    view.mark_lines([3, 5, 3])
    assert view.marked_lines() == {3, 5}


def test_source_view_click_emits_the_line(qtbot):
    view = shown(qtbot, SourceView("/tmp/model.py", SOURCE))
    for line in (1, 12):
        with qtbot.waitSignal(view.sig_line_clicked) as blocker:
            qtbot.mouseClick(
                view.viewport(), Qt.MouseButton.LeftButton, pos=line_center(view, line)
            )
        assert blocker.args == [line]
    gutter_pos = QPoint(5, line_center(view, 7).y())
    with qtbot.waitSignal(view.sig_line_clicked) as blocker:
        qtbot.mouseClick(view._gutter, Qt.MouseButton.LeftButton, pos=gutter_pos)
    assert blocker.args == [7]


# -- scope stack -------------------------------------------------------------------


def test_scope_stack_empty_state(qtbot):
    stack = shown(qtbot, ScopeStack())
    assert stack.levels() == ["(top level)"]
    rect = stack.visualItemRect(stack.item(0))
    with qtbot.assertNotEmitted(stack.sig_scope_clicked):
        qtbot.mouseClick(stack.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_scope_stack_levels_and_click(qtbot):
    kinds = {"model": "Net", "model.fc1": "Linear"}
    stack = shown(qtbot, ScopeStack("model.fc1", kinds))
    assert stack.levels() == ["model.fc1 (Linear)", "model (Net)"]
    stack.set_scope("model.block.fc1", {"model": "Net"})
    assert stack.levels() == ["model.block.fc1", "model.block", "model (Net)"]
    rect = stack.visualItemRect(stack.item(1))
    with qtbot.waitSignal(stack.sig_scope_clicked) as blocker:
        qtbot.mouseClick(stack.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert blocker.args == ["model.block"]
    stack.set_scope("", kinds)
    assert stack.levels() == ["(top level)"]
