"""The debugger a newcomer trusts (issue 12), driven with real keys on real samples:
paused start, stable names and node breakpoints in every step, Find, stepping
forward through a reopened recording, restart after an edit, update boxes and
the update-to-weight ratio, reused module calls, and the status bar."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QMessageBox

from app import actions as A
from app.main_window import SAMPLES_DIR, MainWindow
from core.debug.naming import UPDATE_SCOPE
from core.debug.session import Breakpoint
from core.observe.events import OpBackward, OpForward, ParameterUpdated, StepStarted

WAIT = 30_000  # ms


def sample(name: str) -> str:
    return os.path.join(SAMPLES_DIR, name)


def state(w: MainWindow) -> str:
    s = w.bridge.session
    return "idle" if s is None else s.state


def wait_state(qtbot, w: MainWindow, *states: str, grown_from: int | None = None) -> None:
    def reached() -> bool:
        rec = w.recording
        grown = grown_from is None or (rec is not None and len(rec) > grown_from)
        return state(w) in states and grown and w.status_phase.text().startswith(state(w))

    qtbot.waitUntil(reached, timeout=WAIT)


def test_a_program_opens_paused_before_its_first_op_and_f11_steps_into_it(qtbot, window):
    assert window.open_path(sample("mlp_moons.py"))
    wait_state(qtbot, window, "paused")
    assert type(window.recording.current()) is StepStarted
    assert "F5 runs" in window.status_reason.text() and "F11" in window.status_reason.text()
    assert window.actions_by_id[A.STEP_INTO].isEnabled()
    reasons = [window.status_reason.text()]
    while not window.graph.model.nodes and len(reasons) < 5:
        qtbot.keyClick(window, Qt.Key.Key_F11)
        qtbot.waitUntil(lambda: window.status_reason.text() not in ("", reasons[-1]), timeout=WAIT)
        reasons.append(window.status_reason.text())
    reasons = reasons[1:]
    assert reasons == [
        "step: entering model (MLP)",
        "step: entering model.fc1 (Linear)",
        "step: fc1.linear ran",
    ]


def test_node_names_are_stable_and_a_node_breakpoint_fires_in_every_step(qtbot, window):
    window.steps.setValue(3)
    assert window.open_program(sample("mlp_moons.py"), then="run")
    wait_state(qtbot, window, "finished")
    names = [n.label for n in window.graph.model.nodes if n.kind == "op"]
    assert names[:4] == ["fc1.linear", "act.tanh", "fc2.linear", "cross_entropy"]
    assert not any(str(n.node_id) in n.label for n in window.graph.model.nodes if n.node_id)

    window.breakpoints.add_breakpoint(Breakpoint("node", "act.tanh"))
    window.start_run()
    seen = []
    for _ in range(3):
        wait_state(qtbot, window, "paused")
        event = window.recording.current()
        seen.append((window.bridge.session.step_index, type(event), event.op))
        assert window.selected_node_label() == "act.tanh"
        assert "act.tanh" in window.status_reason.text()
        before = len(window.recording)
        qtbot.keyClick(window, Qt.Key.Key_F5)
        wait_state(qtbot, window, "paused", "finished", grown_from=before)
        if state(window) == "paused":
            assert type(window.recording.current()) is OpBackward  # its backward, same step
            qtbot.keyClick(window, Qt.Key.Key_F5)
    assert [s[0] for s in seen] == [0, 1, 2] and all(s[1] is OpForward for s in seen)


def test_find_zooms_to_the_node_it_finds(qtbot, window):
    window.steps.setValue(1)
    assert window.open_program(sample("attention.py"), then="run")
    wait_state(qtbot, window, "finished")
    qtbot.waitUntil(lambda: not window.graph.busy, timeout=WAIT)
    window.graph.fit()
    assert window.graph.transform().m11() < 0.8, "a big graph at fit is small"
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(window.search.hasFocus, timeout=WAIT)
    assert "model.head" in window.graph.collapsed
    qtbot.keyClicks(window.search, "head.linear")
    qtbot.keyClick(window.search, Qt.Key.Key_Return)
    assert window.selected_node_label() == "head.linear"
    assert "model.head" not in window.graph.collapsed, "its box opens to show it"
    assert window.graph.layout.drawn()[window.graph.selected]
    assert window.graph.transform().m11() >= 0.8
    x, y = window.graph.layout.positions()[1][window.graph.selected]
    seen = window.graph.mapFromScene(QPointF(x, y))
    assert window.graph.viewport().rect().adjusted(40, 20, -40, -20).contains(seen)


def test_a_reopened_recording_steps_forward_with_the_same_keys(qtbot, window, tmp_path):
    window.steps.setValue(2)
    assert window.open_program(sample("mlp_moons.py"), then="run")
    wait_state(qtbot, window, "finished")
    path = str(tmp_path / "run.gsrec")
    saved = []
    window.save_recording(path, saved.append)
    qtbot.waitUntil(lambda: bool(saved), timeout=WAIT)

    window.open_recording(path)
    qtbot.waitUntil(lambda: window.program is None and window.recording is not None, timeout=WAIT)
    rec = window.recording
    head = len(rec) - 1
    start = rec.steps[1]
    assert window.status_phase.text() == "recording"
    window.seek(start)  # the start of the last step, as many Shift+F10 would
    assert window.status_phase.text() == "recording · forward"
    for action_id in (A.RUN, A.STEP_OVER, A.STEP_INTO, A.STEP_OUT):
        assert window.actions_by_id[action_id].isEnabled(), action_id
    qtbot.keyClick(window, Qt.Key.Key_F11)
    assert type(rec.current()) in (OpForward,) or rec.current().__class__.__name__ == "ModuleEnter"
    qtbot.keyClick(window, Qt.Key.Key_F10)
    assert type(rec.current()) is OpForward and rec.position > start
    first = rec.position
    qtbot.keyClick(window, Qt.Key.Key_F10, Qt.KeyboardModifier.ShiftModifier)
    assert rec.position == first - 1
    window.breakpoints.add_breakpoint(Breakpoint("op", "cross_entropy"))
    qtbot.keyClick(window, Qt.Key.Key_F5)
    assert rec.current().op == "cross_entropy" and window.selected_node_label() == "cross_entropy"
    qtbot.keyClick(window, Qt.Key.Key_F5)
    assert rec.position == head and "end of the recording" in window.status_reason.text()


def test_stepping_through_the_update_keeps_a_node_at_the_cursor(qtbot, window):
    window.steps.setValue(2)
    assert window.open_program(sample("mlp_moons.py"), then="run")
    wait_state(qtbot, window, "finished")
    rec = window.recording
    updates = [i for i, e in enumerate(rec.events) if type(e) is OpForward and e.phase == "update"]
    for index in updates[-5:]:
        window.seek(index)
        node = window.graph.current
        assert node is not None
        assert window.graph.model.nodes[node].scope.startswith(UPDATE_SCOPE + ".")
        assert window.status_phase.text().endswith("update")
    done = next(i for i in range(len(rec) - 1, 0, -1) if type(rec.events[i]) is ParameterUpdated)
    window.seek(done)
    info = window.inspector.node()
    assert info.kind == "parameter" and info.update.startswith("|Δw| / |w| = ")
    assert "Adam" in window.inspector.field_text("update")


def test_each_call_of_a_reused_module_is_its_own_box(qtbot, window):
    window.steps.setValue(1)
    assert window.open_program(sample("cnn_digits.py"), then="run")
    wait_state(qtbot, window, "finished")
    qtbot.waitUntil(lambda: not window.graph.busy, timeout=WAIT)
    graph = window.graph
    boxes = graph.scope_rects()
    assert {"model.relu", "model.relu_1", "model.pool", "model.pool_1"} <= set(boxes)
    by_name = {n.label: n for n in graph.model.nodes}
    xy = graph.layout.positions()[1]
    relu = graph.scope_boxes()["model.relu"].path
    for name in ("conv2.conv2d", "conv2.weight", "relu_1.relu"):
        x, y = xy[by_name[name].index]
        assert not relu.contains(QPointF(x, y)), f"{name} is drawn inside the first relu's box"
    x, y = xy[by_name["relu.relu"].index]
    assert relu.contains(QPointF(x, y))
    for name in ("conv1.weight", "conv2.weight", "fc.weight"):
        module = "model." + name.split(".")[0]
        assert by_name[name].scope == module, "a parameter sits in its module's box"


def test_restart_reads_an_edited_program_and_an_edit_is_noticed(qtbot, window, tmp_path):
    path = tmp_path / "prog.py"
    text = (
        '"""Edited\n\nA program edited while open.\n"""\nimport core\n'
        "from core.program import Run\n\n"
        "def build(device='cpu'):\n"
        "    w = core.tensor([1.0], requires_grad=True)\n"
        "    def step():\n"
        "        return (w * {k}).sum()\n"
        "    return Run(step=step, steps=2, params={{'w': w}})\n"
    )
    path.write_text(text.format(k=2.0))
    assert window.open_program(str(path), then="run")
    wait_state(qtbot, window, "finished")
    assert window.loss.data()[1].tolist() == [2.0, 2.0]
    path.write_text(text.format(k=5.0))
    qtbot.waitUntil(window.changed_note.isVisible, timeout=WAIT)
    assert "changed on disk" in window.changed_note.text()
    qtbot.keyClick(
        window,
        Qt.Key.Key_F5,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    wait_state(qtbot, window, "finished")
    qtbot.waitUntil(lambda: window.loss.data()[1].tolist() == [5.0, 5.0], timeout=WAIT)
    assert not window.changed_note.isVisible()


def test_status_bar_phase_and_text_follow_the_cursor_back(qtbot, window):
    window.steps.setValue(3)
    assert window.open_program(sample("mlp_moons.py"), then="load")
    window.breakpoints.add_breakpoint(Breakpoint("step", 1))
    window.start_run()
    wait_state(qtbot, window, "paused")
    assert "breakpoint" in window.status_reason.text()
    rec = window.recording
    backward_end = max(i for i, e in enumerate(rec.events) if type(e).__name__ == "BackwardEnded")
    window.seek(backward_end)
    assert window.status_phase.text() == "paused · backward"
    assert window.status_reason.text() == "backward ended", "the old reason is gone"
    qtbot.keyClick(window, Qt.Key.Key_F10, Qt.KeyboardModifier.ShiftModifier)
    assert window.status_reason.text().startswith("gradient added into")
    window.seek(backward_end + 3)
    assert window.status_phase.text() == "paused · update"


def test_a_big_graph_opens_with_inner_modules_collapsed_and_legible_at_fit(qtbot, window):
    window.steps.setValue(2)
    assert window.open_program(sample("attention.py"), then="run")
    wait_state(qtbot, window, "finished")
    qtbot.waitUntil(lambda: not window.graph.busy, timeout=WAIT)
    graph = window.graph
    assert {"model.block", "model.tokens", UPDATE_SCOPE} <= set(graph.collapsed)
    assert "model" not in graph.collapsed, "the top level stays open"
    graph.fit()
    on_screen = graph.transform().m11() * 34.0  # a node's height in pixels
    assert on_screen >= 13, "names are drawn at fit (at least 8 px text)"
    scale = graph.transform().m11()
    graph.toggle_scope("model.block")  # as a double-click on its title does
    assert "model.block" not in graph.collapsed and "model.block" in graph.expanded
    assert "model.block.attn" in graph.collapsed, "inner modules of it stay boxes"
    assert graph.transform().m11() == pytest.approx(scale), "expanding keeps the zoom"
    assert window.samples.list_widget().currentItem().text().startswith("Attention")


def test_per_parameter_gradient_norms_and_update_ratios_are_plotted(qtbot, window):
    window.steps.setValue(3)
    window.docks["params"].raise_()
    assert window.open_program(sample("mlp_moons.py"), then="run")
    wait_state(qtbot, window, "finished")
    plot = window.params
    names = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    qtbot.waitUntil(lambda: set(plot.curve_names()) == names, timeout=WAIT)
    steps, norms = plot.curve_data("fc1.weight")
    assert steps.tolist() == [0, 1, 2] and (norms > 0).all()
    plot._metric.setCurrentText("update / weight")
    steps, ratios = plot.curve_data("fc2.weight")
    assert steps.tolist() == [0, 1, 2] and ((ratios > 1e-5) & (ratios < 1)).all()
    rec = window.recording
    window.seek(rec.steps[1])
    assert plot._cursor.isVisible() and plot._cursor.value() == 1


def test_desktop_habits_arrow_keys_go_to_source_reset_layout_and_help(qtbot, window):
    assert not window.docks["samples"].visibleRegion().isEmpty(), "the samples first"
    window.steps.setValue(1)
    assert window.open_program(sample("mlp_moons.py"), then="run")
    wait_state(qtbot, window, "finished")
    graph = window.graph
    graph.select(graph.model.by_name["act.tanh"], emit=True)
    graph.setFocus()
    qtbot.keyClick(graph, Qt.Key.Key_Right)
    assert window.selected_node_label() == "fc2.linear"
    qtbot.keyClick(graph, Qt.Key.Key_Left)
    assert window.selected_node_label() == "act.tanh"
    assert window.inspector.node().title == "act.tanh"
    node = graph.model.nodes[graph.selected]
    graph.sig_go_to_source.emit(node.index)
    assert window.source.highlighted_line() == node.source.line
    assert not window.docks["source"].visibleRegion().isEmpty()
    window.docks["inspector"].setFloating(True)
    window.docks["events"].close()
    window.actions_by_id[A.RESET_LAYOUT].trigger()
    assert not window.docks["inspector"].isFloating() and window.docks["events"].isVisible()
    window.actions_by_id[A.HELP_KEYS].trigger()
    pages = [w for w in window.findChildren(QMessageBox) if w.isVisible()]
    assert pages and "Shift+F5" in pages[-1].text() and "Step Back" in pages[-1].text()
    pages[-1].close()


def test_a_panel_behind_another_tab_is_not_redrawn_until_its_tab_is_chosen(qtbot, window):
    window.steps.setValue(4)
    assert window.open_program(sample("mlp_moons.py"), then="run")
    wait_state(qtbot, window, "finished")
    assert not window.on_screen("loss") and not window.on_screen("params")
    assert window.params.curve_names() == [], "no work for a hidden panel"
    window.docks["loss"].raise_()
    qtbot.waitUntil(lambda: window.loss.curve_data()[0] is not None, timeout=WAIT)
    assert window.loss.curve_data()[0].tolist() == [0, 1, 2, 3]
    window.docks["params"].raise_()
    qtbot.waitUntil(lambda: len(window.params.curve_names()) == 4, timeout=WAIT)


def test_restart_after_an_edit_that_breaks_the_program_keeps_the_last_good_one(
    qtbot, window, tmp_path
):
    path = tmp_path / "prog.py"
    path.write_text(
        '"""Fine\n\nRuns.\n"""\nimport core\nfrom core.program import Run\n\n'
        "def build(device='cpu'):\n"
        "    w = core.tensor([1.0], requires_grad=True)\n"
        "    return Run(step=lambda: (w * 2.0).sum(), steps=1, params={'w': w})\n"
    )
    assert window.open_program(str(path), then="run")
    wait_state(qtbot, window, "finished")
    path.write_text('"""Broken\n\nNo longer parses.\n"""\ndef build(device):\n    return (\n')
    qtbot.waitUntil(window.changed_note.isVisible, timeout=WAIT)
    window.actions_by_id[A.RESTART].trigger()
    assert window.banner.isVisible() and f"{path}:" in window.problems.toPlainText()
    assert window.program.title == "Fine", "the program loaded before stays"
    assert window.actions_by_id[A.RESTART].isEnabled()


def test_step_keys_pressed_while_a_step_is_under_way_are_not_lost(qtbot, window):
    assert window.open_path(sample("mlp_moons.py"))
    wait_state(qtbot, window, "paused")
    for _ in range(3):  # faster than the steps arrive: the later presses wait their turn
        qtbot.keyClick(window, Qt.Key.Key_F11)
    qtbot.waitUntil(
        lambda: (
            window.status_reason.text() == "step: fc1.linear ran"
            and state(window) == "paused"
            and not window._queued_steps
        ),
        timeout=WAIT,
    )
    assert window.selected_node_label() == "fc1.linear", "three steps: model, fc1, its op"
