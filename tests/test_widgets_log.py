"""Widgets: the event log (real engine events, filters, a million rows, cursor sync),
the breakpoints panel (add, validate, remove, enable, JSON) and the samples browser.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import doctest
import time

import pytest
from helpers_data import MLP, next_line
from PySide6.QtCore import Qt

import core
import core.functional as F
import widgets.breakpoints
from core import optim
from core.debug.session import BREAKPOINT_KINDS, Breakpoint
from core.observe.bus import BUS
from core.observe.events import OpBackward, OpForward, ParameterUpdated, StepStarted
from widgets.breakpoints import BreakpointsPanel, from_json, parse_value, to_json
from widgets.event_log import COLUMNS, EventLog, EventLogModel
from widgets.samples import SamplesBrowser, scan_samples

# The offscreen platform cannot raise windows, grab the keyboard or propagate size hints;
# it says so as a warning. Any other Qt warning still fails a test where the run asks it to.
pytestmark = pytest.mark.qt_log_ignore(r"^This plugin does not support")

HERE = os.path.abspath(__file__)
ROOT = os.path.dirname(os.path.dirname(HERE))
COL = {name: i for i, name in enumerate(COLUMNS)}


@pytest.fixture(scope="module")
def step_events():
    """The events of one real training step, with sources; and the line of the loss."""
    core.manual_seed(0)
    model = MLP()
    opt = optim.SGD(model.parameters(), lr=0.1)
    seen = []
    unsubscribe = BUS.subscribe(seen.append, source=True)
    try:
        BUS.emit(StepStarted(step=0))
        x = core.randn(4, 2)
        y = core.randn(4, 1)
        loss_line = next_line()
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    finally:
        unsubscribe()
    return seen, loss_line


def cell(model, row: int, column: str) -> str:
    return model.data(model.index(row, COL[column]))


def shown(model) -> list[int]:
    return [model.event_index(row) for row in range(model.rowCount())]


def make_log(qtbot, events=None) -> EventLog:
    log = EventLog(events)
    qtbot.addWidget(log)
    log.resize(900, 400)
    log.show()
    qtbot.waitExposed(log)
    return log


# -- event log ------------------------------------------------------------------------


def test_log_shows_the_cells_of_real_engine_events(qtbot, step_events):
    events, loss_line = step_events
    live = []
    log = make_log(qtbot, live)
    assert "No events yet" in log.empty_message()
    live.extend(events)
    with qtbot.waitSignal(log.model().rowsInserted):
        assert log.extend(len(events)) == len(events)
    model = log.model()
    assert log.empty_message() == ""
    assert model.rowCount() == model.total() == len(events)

    # the layer's last forward op, whatever the engine makes of nn.Linear: its output is 4x8
    i = max(i for i, e in enumerate(events) if isinstance(e, OpForward) and e.scope == "model.fc1")
    op = events[i]
    assert cell(model, i, "#") == str(i)
    assert cell(model, i, "phase") == "forward"
    assert cell(model, i, "kind") == "OpForward"
    assert cell(model, i, "op / name") == op.op
    assert cell(model, i, "node") == str(op.node_id)
    assert cell(model, i, "shape") == "4×8"
    assert cell(model, i, "scope") == "model.fc1"
    assert cell(model, i, "time (µs)") == f"{op.duration_ns / 1000:,.1f}"
    assert cell(model, i, "source") == f"{os.path.basename(op.source.file)}:{op.source.line}"

    loss_row = next(i for i, e in enumerate(events) if getattr(e, "op", "") == "mse_loss")
    assert cell(model, loss_row, "source") == f"test_widgets_log.py:{loss_line}"
    assert cell(model, loss_row, "shape") == "scalar"

    back = next(
        i for i, e in enumerate(events) if isinstance(e, OpBackward) and e.node_id == op.node_id
    )
    assert cell(model, back, "phase") == "backward"
    assert cell(model, back, "scope") == "model.fc1"  # taken from its forward node
    assert cell(model, back, "source") == cell(model, i, "source")
    upd = next(i for i, e in enumerate(events) if isinstance(e, ParameterUpdated))
    assert (cell(model, upd, "phase"), cell(model, upd, "op / name")) == ("update", "fc1.weight")
    assert cell(model, 0, "kind") == "StepStarted"
    assert cell(model, 0, "phase") == "other"


def test_log_filters_by_phase_and_op_and_keeps_filtering_new_events(qtbot, step_events):
    events, _ = step_events
    live = list(events)
    log = make_log(qtbot, live)
    model = log.model()

    log._phase_boxes["forward"].setChecked(False)  # as a user unticks it
    log._phase_boxes["update"].setChecked(False)
    log._phase_boxes["other"].setChecked(False)
    phases = {cell(model, r, "phase") for r in range(model.rowCount())}
    assert phases == {"backward"}
    expected = [
        i
        for i, e in enumerate(events)
        if type(e).__name__ in ("BackwardStarted", "OpBackward", "GradAccumulated", "BackwardEnded")
    ]
    assert shown(model) == expected

    log.set_filter(None, "MSE_Lo")
    assert log._op_edit.text() == "MSE_Lo"
    losses = [i for i, e in enumerate(events) if getattr(e, "op", None) == "mse_loss"]
    assert shown(model) == losses and len(losses) == 2  # forward and backward
    assert model.row_of(losses[1]) == 1
    assert model.row_of(0) is None

    live.extend(events[:5] + [events[losses[0]]])  # a live batch: only the loss shows
    with qtbot.waitSignal(model.rowsInserted) as inserted:
        assert log.extend(6) == 1
    assert inserted.args[1:] == [2, 2]
    assert model.event_index(2) == len(live) - 1
    assert log._count_label.text() == f"3 of {len(live)} events"

    log.set_filter(None, "no such op")
    assert model.rowCount() == 0
    assert "No event matches the filter" in log.empty_message()
    log.set_filter(None, "")
    assert shown(model) == list(range(len(live)))


def synthetic_op(op: str, phase: str, scope: str = "") -> OpForward:
    return OpForward(
        3,
        op,
        inputs=(1, 2),
        output=4,
        attrs=(),
        shape=(64, 32),
        dtype="float32",
        device="cpu",
        duration_ns=1500,
        scope=scope,
        phase=phase,
        requires_grad=phase == "forward",
    )


def test_log_handles_a_million_events(qtbot):
    fwd = synthetic_op("matmul", "forward", scope="model.fc1")
    upd = synthetic_op("sub", "update")
    bwd = OpBackward(
        3, "matmul", grad_output=5, grad_inputs=(6, None), inputs=(1, 2), duration_ns=2500
    )
    live = []
    log = make_log(qtbot, live)
    model = log.model()
    t0 = time.perf_counter()
    live.extend([fwd, fwd, bwd, upd] * 225_000)
    log.extend(len(live))
    for _ in range(100):  # then live batches, as the app's 30 Hz timer feeds them
        live.extend([fwd, fwd, bwd, upd] * 250)
        log.extend(1000)
    t1 = time.perf_counter()
    assert model.rowCount() == model.total() == 1_000_000

    log.set_filter({"backward"}, "")
    assert model.rowCount() == 250_000
    assert model.event_index(249_999) == 999_998
    log.set_filter({"forward", "update"}, "su")
    assert model.rowCount() == 250_000 and model.event_index(0) == 3
    live.extend([upd, fwd] * 500)
    log.extend(1000)
    assert model.rowCount() == 250_500
    t2 = time.perf_counter()

    log.set_cursor(777_777)  # filtered out (a matmul): the nearest shown row before it
    view = log.view()
    assert view.currentIndex().row() == model.row_of(777_775) == 194_443
    first = view.rowAt(0)
    texts = [cell(model, row, name) for row in range(first, first + 30) for name in COLUMNS]
    assert texts.count("sub") == 30 and texts.count("update") == 30
    t3 = time.perf_counter()
    print(f"\n1M events: extend {t1 - t0:.2f}s, filters {t2 - t1:.2f}s, view {t3 - t2:.3f}s")


def test_set_cursor_is_quiet_and_clicks_send_the_event_index(qtbot, step_events):
    events, _ = step_events
    log = make_log(qtbot, list(events))
    view = log.view()
    model = log.model()
    with qtbot.assertNotEmitted(log.sig_event_selected):
        log.set_cursor(10)
        qtbot.wait(1)  # deliver anything queued, still nothing may come
    assert view.currentIndex().row() == 10 and log.cursor() == 10
    assert [i.row() for i in view.selectionModel().selectedRows()] == [10]

    moves = []
    log.sig_event_selected.connect(moves.append)
    log.sig_event_selected.connect(log.set_cursor)  # the app echoes the cursor back: no loop
    rect = view.visualRect(model.index(14, 3))
    with qtbot.waitSignal(log.sig_event_selected) as chosen:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert chosen.args == [14]
    assert moves == [14] and log.cursor() == 14
    qtbot.keyClick(view, Qt.Key.Key_Down)
    assert moves == [14, 15]
    assert not log.follow()  # the user looks back: the log stops jumping to the end

    log.set_filter({"backward"}, "")
    assert log.cursor() == 15  # filtered out: the cursor stays, no signal
    back = [i for i, e in enumerate(events) if isinstance(e, OpBackward)]
    row = model.row_of(back[2])
    rect = view.visualRect(model.index(row, 0))
    with qtbot.waitSignal(log.sig_event_selected) as chosen:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert chosen.args == [back[2]]  # the event index, not the row
    assert moves == [14, 15, back[2]]


def test_a_live_log_draws_its_newest_rows_from_a_copy_without_python(
    qtbot, step_events, monkeypatch
):
    """While a run goes on the newest rows come from a Qt-held copy: drawing them
    calls no Python (beside a running model each call waits for the GIL); the copy
    keeps the rows it has, and leaving it (scroll up, click) goes to the whole log."""
    calls = []
    original = EventLogModel.data
    monkeypatch.setattr(EventLogModel, "data", lambda *a: calls.append(1) or original(*a))
    events, _ = step_events
    live = list(events) * 4
    log = make_log(qtbot, live)
    model = log.model()
    log.set_live(True)
    assert log.tail_shown()
    tail = log.tail_events()
    assert tail == list(range(len(live) - len(tail), len(live))) and len(tail) >= 32
    copy = log._tail_view.model()
    for row in (0, len(tail) - 1):  # every column as the lazy model formats it
        assert [copy.item(row, c).text() for c in range(len(COLUMNS))] == [
            original(model, model.index(model.row_of(tail[row]), c)) for c in range(len(COLUMNS))
        ]
    calls.clear()
    log._tail_view.viewport().grab()
    assert calls == []  # the copy drew itself
    log.view().viewport().grab()
    assert calls  # the lazy table asks Python for every cell it draws

    first_item = copy.item(len(tail) - 1, 0)
    live.extend(events[:5])
    log.extend()
    assert log.tail_events() == tail[5:] + list(range(len(live) - 5, len(live)))
    assert copy.item(len(tail) - 6, 0) is first_item  # rows already there are kept

    log.set_filter({"backward"}, "")  # the copy shows the filtered rows too
    backward = shown(model)
    assert len(backward) < len(live) and log.tail_events() == backward[-len(log.tail_events()) :]
    log.set_filter(None, "")

    view = log._tail_view
    row = len(log.tail_events()) - 3
    chosen_event = log.tail_events()[row]
    rect = view.visualRect(copy.index(row, 3))
    with qtbot.waitSignal(log.sig_event_selected) as chosen:
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert chosen.args == [chosen_event]
    assert not log.follow() and not log.tail_shown()
    assert log.view().currentIndex().row() == model.row_of(chosen_event)

    log.set_follow(True)
    assert log.tail_shown()
    log._tail_view.verticalScrollBar().triggerAction(
        log._tail_view.verticalScrollBar().SliderAction.SliderPageStepSub
    )
    assert not log.follow() and not log.tail_shown()  # scrolled up: the whole log
    log.set_follow(True)
    log.set_live(False)  # paused or ended: the whole log, at its end
    assert not log.tail_shown() and log.tail_events() == []
    bottom = log.view().rowAt(log.view().viewport().height() - 2)
    assert bottom in (model.rowCount() - 1, -1)


def test_model_reset_starts_a_new_run():
    model = EventLogModel([StepStarted(0), StepStarted(1)])
    assert model.rowCount() == 2
    model.set_filter({"backward"})
    model.reset([StepStarted(5)])
    assert model.rowCount() == 0 and model.total() == 1
    model.set_filter(None, "")
    assert model.data(model.index(0, COL["op / name"])) == "step 5"


# -- breakpoints ------------------------------------------------------------------------


def make_panel(qtbot, bps=None) -> BreakpointsPanel:
    panel = BreakpointsPanel(bps)
    qtbot.addWidget(panel)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def add_via_ui(qtbot, panel, kind: str, text: str) -> None:
    panel._kind.setCurrentIndex(BREAKPOINT_KINDS.index(kind))
    panel._value.clear()
    qtbot.keyClicks(panel._value, text)
    qtbot.mouseClick(panel._add, Qt.MouseButton.LeftButton)


def test_breakpoints_add_validate_enable_remove(qtbot):
    panel = make_panel(qtbot)
    assert panel.empty_message().startswith("No breakpoints. Add one")
    changes = []
    panel.sig_breakpoints_changed.connect(changes.append)

    add_via_ui(qtbot, panel, "op", "MatMul")
    assert [(b.kind, b.value) for b in changes[-1]] == [("op", "matmul")]
    assert panel.empty_message() == "" and panel.message() == ""

    add_via_ui(qtbot, panel, "node", "fc1 linear")
    assert "as the graph shows it" in panel.message() and len(changes) == 1
    add_via_ui(qtbot, panel, "grad_norm", "-3")
    assert "positive" in panel.message() and len(changes) == 1
    add_via_ui(qtbot, panel, "op", "matmull")
    assert "not an op" in panel.message() and len(changes) == 1
    add_via_ui(qtbot, panel, "node", "block.mlp.0.linear_1")
    assert panel.message() == ""
    add_via_ui(qtbot, panel, "nan", "")
    assert not panel._value.isEnabled()
    add_via_ui(qtbot, panel, "grad_norm", "1e3")
    assert [(b.kind, b.value) for b in panel.breakpoints()] == [
        ("op", "matmul"),
        ("node", "block.mlp.0.linear_1"),
        ("nan", None),
        ("grad_norm", 1000.0),
    ]
    assert len(changes) == 4

    check = panel._table.item(1, 0)
    with qtbot.waitSignal(panel.sig_breakpoints_changed) as changed:
        check.setCheckState(Qt.CheckState.Unchecked)  # as a click on the box does
    assert [b.enabled for b in changed.args[0]] == [True, False, True, True]

    panel._table.selectRow(0)
    with qtbot.waitSignal(panel.sig_breakpoints_changed) as changed:
        qtbot.keyClick(panel._table, Qt.Key.Key_Delete)
    assert [b.kind for b in changed.args[0]] == ["node", "nan", "grad_norm"]
    with qtbot.waitSignal(panel.sig_breakpoints_changed):
        qtbot.mouseClick(panel._remove, Qt.MouseButton.LeftButton)
    assert [b.kind for b in panel.breakpoints()] == ["nan", "grad_norm"]

    assert panel.add_breakpoint(Breakpoint("node", 12, enabled=False))  # from a graph menu
    assert not panel.add_breakpoint(Breakpoint("nan"))  # already there and enabled
    assert "Already there" in panel.message()
    with qtbot.assertNotEmitted(panel.sig_breakpoints_changed):
        panel.set_breakpoints([])
    assert panel.breakpoints() == [] and panel.empty_message()


def test_breakpoints_json_round_trip_and_garbage():
    bps = [
        Breakpoint("op", "matmul"),
        Breakpoint("node", 7, enabled=False),
        Breakpoint("module", "model.fc1"),
        Breakpoint("nan"),
        Breakpoint("grad_norm", 2.5),
    ]
    again = from_json(to_json(bps))
    assert [(b.kind, b.value, b.enabled) for b in again] == [
        (b.kind, b.value, b.enabled) for b in bps
    ]
    for garbage in ("", "{", "null", "42", '{"kind": "op"}', None, b"\xff\xfe", "[[[["):
        assert from_json(garbage) == []
    mixed = (
        '[1, "op", {"kind": "bogus"}, {"kind": "node", "value": "x y"},'
        ' {"kind": "node", "value": true}, {"kind": "grad_norm", "value": Infinity},'
        ' {"kind": "op", "value": "matmul", "enabled": false}]'
    )
    assert [(b.kind, b.value, b.enabled) for b in from_json(mixed)] == [("op", "matmul", False)]
    with pytest.raises(ValueError, match="module"):
        parse_value("module", "model fc1")
    assert doctest.testmod(widgets.breakpoints).failed == 0


# -- samples ------------------------------------------------------------------------------


def test_samples_scan_without_running_and_open(qtbot, tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "a_line.py").write_text(
        f'"""A line\n\nFits a line\nby gradient descent.\n"""\nopen({str(marker)!r}, "w")\n'
    )
    (tmp_path / "b_mlp.py").write_text('"""Two moons\n\nAn MLP."""\nimport no_such_module\n')
    (tmp_path / "broken.py").write_text('"""Never parsed\n"""\ndef (:\n')
    (tmp_path / "_helper.py").write_text('"""Not a sample"""\n')
    (tmp_path / "notes.txt").write_text("not python")
    samples = scan_samples(tmp_path)
    assert [(os.path.basename(p), t, d) for p, t, d in samples] == [
        ("a_line.py", "A line", "Fits a line by gradient descent."),
        ("b_mlp.py", "Two moons", "An MLP."),
        ("broken.py", "broken.py", ""),
    ]
    assert not marker.exists()

    browser = SamplesBrowser(samples, str(tmp_path))
    qtbot.addWidget(browser)
    browser.show()
    qtbot.waitExposed(browser)
    view = browser.list_widget()
    assert view.count() == 3 and view.item(0).text() == "A line"
    assert "Fits a line" in view.item(0).toolTip()
    rect = view.visualItemRect(view.item(1))
    with qtbot.waitSignal(browser.sig_open) as opened:  # a double-click: press, release, double
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert opened.args == [samples[1][0]]
    view.setCurrentRow(2)
    with qtbot.waitSignal(browser.sig_open) as opened:
        qtbot.keyClick(view, Qt.Key.Key_Return)
    assert opened.args == [samples[2][0]]

    empty = tmp_path / "empty"
    empty.mkdir()
    browser.load_folder(str(empty))
    assert browser.empty_message() == f"No samples found in {empty}"


def test_the_shipped_samples_all_have_titles():
    samples = scan_samples(os.path.join(ROOT, "samples"))
    assert len(samples) >= 5
    for path, title, description in samples:
        assert title != os.path.basename(path) and description, path
