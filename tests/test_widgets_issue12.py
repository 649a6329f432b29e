"""Panel bugs found by trying the app (issue 12): a histogram of one huge constant,
all-Inf statistics, plot axes without an SI scale, event-log numbers kept whole,
the breakpoint field's width, and why a leaf has no gradient check."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from core.observe.events import OpForward  # noqa: E402
from core.observe.stats import summarize  # noqa: E402
from widgets.breakpoints import BreakpointsPanel  # noqa: E402
from widgets.data import NodeInfo, histogram  # noqa: E402
from widgets.event_log import COL_TIME, EventLog  # noqa: E402
from widgets.inspector import Inspector, TensorPanel  # noqa: E402
from widgets.loss_plot import LossPlot  # noqa: E402

pytestmark = [pytest.mark.qt_log_ignore("propagateSizeHints")]


def shown(qtbot, widget, size=(560, 600)):
    qtbot.addWidget(widget)
    widget.resize(*size)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


@pytest.mark.parametrize("value", [1e16, -3e38, 0.0, 7.5])
def test_histogram_of_a_huge_constant_is_one_bin(qtbot, value):
    a = np.full(5, value, np.float32)
    counts, edges = histogram(a)
    assert counts.tolist() == [5] and edges[0] <= float(a[0]) <= edges[-1]
    panel = shown(qtbot, TensorPanel())
    panel.show_tensor(a, summarize(a))
    assert panel.histogram_data() is not None


def test_all_inf_statistics_say_no_finite_values_and_count_the_infs(qtbot):
    a = np.full((3, 2), np.inf, np.float32)
    panel = shown(qtbot, TensorPanel())
    panel.show_tensor(a, summarize(a))
    text = panel.stats_text()
    assert "no finite values" in panel._header.text()
    assert all(text[k] == "—" for k in ("min", "max", "mean", "std", "norm"))
    assert text["inf"] == "6" and text["nan"] == "0"


def test_loss_axis_shows_plain_numbers_without_a_scale_factor(qtbot):
    plot = shown(qtbot, LossPlot([0, 1, 2], [3e27, 8e27, 1e28]))
    axis = plot._plot.getAxis("left")
    assert not axis.autoSIPrefix
    assert "x1e" not in axis.labelString() and "(x" not in axis.labelString()
    plot.set_log_y(True)
    assert "(x" not in axis.labelString()


def test_event_log_keeps_numbers_whole(qtbot):
    event = OpForward(
        1, "linear", (), 2, (), (64, 10), "float32", "cpu", 7_775_700, "model.fc1", "forward", True
    )
    log = shown(qtbot, EventLog([event]), (900, 300))
    log.extend()
    view = log.view()
    assert view.textElideMode() == Qt.TextElideMode.ElideRight
    text = log.model().data(log.model().index(0, COL_TIME))
    assert view.columnWidth(COL_TIME) > view.fontMetrics().horizontalAdvance(text) + 8


def test_breakpoint_value_field_keeps_its_width_in_a_narrow_dock(qtbot):
    panel = shown(qtbot, BreakpointsPanel(), (220, 300))
    field = panel._value
    assert field.width() >= field.fontMetrics().horizontalAdvance("a node name") + 8


def test_a_parameter_with_a_gradient_says_why_it_has_no_check(qtbot):
    w = np.ones((2, 2), np.float32)
    info = NodeInfo(
        None,
        "fc1.weight",
        "parameter",
        "",
        (),
        "model.fc1",
        None,
        (2, 2),
        "float32",
        "cpu",
        w,
        summarize(w),
        w,
        summarize(w),
    )
    inspector = shown(qtbot, Inspector())
    inspector.show_node(info)
    assert not inspector.check_button().isEnabled()
    assert "leaf" in inspector.gradcheck_text() and "No gradient" not in inspector.gradcheck_text()


def test_a_conv_weight_shows_all_its_filters_as_tiles(qtbot):
    weight = np.arange(8 * 9, dtype=np.float32).reshape(8, 1, 3, 3)
    panel = shown(qtbot, TensorPanel(), (430, 420))
    panel.show_tensor(weight, summarize(weight))
    assert panel.tiled()
    image = panel.heatmap_image()
    assert image.shape == (7, 15)  # two rows of four 3x3 tiles, one cell apart
    np.testing.assert_array_equal(image[0:3, 0:3], weight[0, 0])
    np.testing.assert_array_equal(image[4:7, 12:15], weight[7, 0])
    assert np.isnan(image[3]).all() and np.isnan(image[:, 3]).all()
    assert panel._tile_index(5, 13) == (7, 0, 1, 1)
    plot = panel._values_stack.currentWidget()
    assert plot.height() >= 100, "the filters are big enough to see in a docked inspector"


def test_a_one_element_vector_is_shown_as_its_value(qtbot):
    panel = shown(qtbot, TensorPanel())
    a = np.array([0.25], np.float32)
    panel.show_tensor(a, summarize(a))
    assert panel.values_text() == "value = 0.25"


def test_a_batch_of_activations_opens_as_a_slice_not_as_tiles(qtbot):
    a = np.zeros((32, 8, 8, 8), np.float32)
    panel = shown(qtbot, TensorPanel(), (430, 420))
    panel.show_tensor(a, summarize(a))
    assert not panel.tiled() and panel.heatmap_image().shape == (8, 8)
    panel.set_tiled(True)
    assert panel.heatmap_image().shape == (32 * 9 - 1, 8 * 9 - 1)
    w = np.zeros((8, 1, 3, 3), np.float32)
    panel.show_tensor(w, summarize(w))
    assert panel.tiled(), "the next weight opens as tiles again"


def test_a_tensor_value_is_copied_and_saved_as_npy(qtbot, tmp_path):
    from PySide6.QtGui import QGuiApplication

    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    panel = shown(qtbot, TensorPanel())
    panel.show_tensor(a, summarize(a))
    text = panel.copy_values()
    assert QGuiApplication.clipboard().text() == text and "[3., 4., 5.]" in text
    path = tmp_path / "v.npy"
    panel.save_values(str(path))
    np.testing.assert_array_equal(np.load(path), a)
    panel.show_tensor(None, summarize(a), shape=(2, 3), dtype="float32")
    with pytest.raises(OSError, match="not kept"):
        panel.save_values(str(path))


def test_the_inspector_keeps_its_width_whatever_it_shows(qtbot):
    short = NodeInfo(
        7,
        "tanh",
        "op",
        "tanh",
        (),
        "",
        None,
        (2,),
        "float32",
        "cpu",
        np.ones(2, np.float32),
        summarize(np.ones(2, np.float32)),
        None,
        None,
    )
    long_value = np.full((3, 4), -123456.789, np.float32)
    long = NodeInfo(
        8,
        "block.attn.query.linear_12",
        "op",
        "linear",
        (("transpose", True),),
        "model.block.attn.query_with_a_long_name",
        None,
        (3, 4),
        "float32",
        "cpu",
        long_value,
        summarize(long_value),
        long_value,
        summarize(long_value),
        note="value not kept: the recording's memory cap was reached " * 3,
    )
    inspector = shown(qtbot, Inspector(), (400, 600))
    widths = []
    for info in (short, long, short):
        inspector.show_node(info)
        widths.append(inspector.minimumSizeHint().width())
    inspector._tabs.setCurrentIndex(1)
    widths.append(inspector.minimumSizeHint().width())
    assert max(widths) <= 400 and len(set(widths)) == 1, widths
