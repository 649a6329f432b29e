"""The main window, driven as a user would: real engine, real widgets, offscreen."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import glob

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt

import core
from app import actions as A
from app.main_window import SAMPLES_DIR, MainWindow
from core.debug.session import Breakpoint
from core.observe.events import OpBackward, OpForward

SAMPLES = sorted(glob.glob(os.path.join(SAMPLES_DIR, "*.py")))
WAIT = 30_000  # ms


def sample(name: str) -> str:
    return os.path.join(SAMPLES_DIR, name)


def state(w: MainWindow) -> str:
    s = w.bridge.session
    return "idle" if s is None else s.state


def wait_done(qtbot, w: MainWindow) -> None:
    qtbot.waitUntil(lambda: state(w) in ("finished", "stopped", "errored"), timeout=WAIT)
    qtbot.waitUntil(lambda: w.status_phase.text().startswith(state(w)), timeout=WAIT)


def wait_paused(qtbot, w: MainWindow, before: int | None = None) -> None:
    def paused() -> bool:
        rec = w.recording
        grown = before is None or (rec is not None and len(rec) > before)
        return state(w) == "paused" and grown and w.status_phase.text().startswith("paused")

    qtbot.waitUntil(paused, timeout=WAIT)


def trigger(w: MainWindow, action_id: str) -> None:
    w.actions_by_id[action_id].trigger()


@pytest.mark.parametrize("path", SAMPLES, ids=os.path.basename)
def test_every_sample_opens_and_runs(qtbot, window, path):
    window.steps.setValue(3)
    assert window.open_program(path, then="run")
    wait_done(qtbot, window)
    assert state(window) == "finished", window.problems.toPlainText()
    assert window.graph.model.nodes, "the graph shows the last step"
    assert window.loss.data()[0].tolist() == [0, 1, 2]
    assert window.event_log.model().total() == len(window.recording)
    assert not window.banner.isVisible()


def test_nan_breakpoint_selects_the_node_and_names_it(qtbot, window):
    assert window.open_program(sample("exploding.py"), then="load")
    window.breakpoints.add_breakpoint(Breakpoint("nan"))
    trigger(window, A.RUN)
    wait_paused(qtbot, window)
    event = window.recording.current()
    assert type(event) is OpForward and not event.stats.finite
    label = window.graph.model.nodes[window.graph.model.by_node_id[event.node_id]].label
    assert str(event.node_id) not in label, "a stable name, not the engine id"
    assert window.selected_node_label() == label
    assert label in window.status_reason.text()
    assert "first NaN/Inf" in window.status_reason.text()
    assert "exploding.py:" in window.status_reason.text()
    info = window.inspector.node()
    assert info.title == label and info.value_stats.nan + info.value_stats.inf > 0
    assert window.source.highlighted_line() == event.source.line
    trigger(window, A.STOP)
    wait_done(qtbot, window)
    assert state(window) == "stopped"


def test_step_forward_and_back_inspector_matches_engine(qtbot, window):
    assert window.open_program(sample("mlp_moons.py"), then="load")
    window.breakpoints.add_breakpoint(Breakpoint("op", "tanh"))
    trigger(window, A.RUN)
    wait_paused(qtbot, window)
    rec = window.recording
    tanh = rec.current()
    assert tanh.op == "tanh" and window.selected_node_label() == "act.tanh"
    # the engine's numbers for this node: tanh of the recorded input
    expected = np.tanh(rec.value(tanh.inputs[0]))
    shown = window.inspector.node()
    np.testing.assert_array_equal(shown.value, expected)
    assert window.inspector.field_text("op") == "tanh"
    panel = window.inspector.value_panel
    assert float(panel.stats_text()["max"]) == pytest.approx(float(expected.max()), rel=1e-5)

    head = rec.position
    for _ in range(3):  # F11 three times: live steps through the next ops
        before = len(rec)
        qtbot.keyClick(window, Qt.Key.Key_F11)
        wait_paused(qtbot, window, before)
    assert rec.position == head + (len(rec) - 1 - head)
    later = rec.current()
    assert type(later) in (OpForward, OpBackward)
    for _ in range(len(rec) - 1 - head):  # Shift+F10 back to the tanh
        qtbot.keyClick(window, Qt.Key.Key_F10, Qt.KeyboardModifier.ShiftModifier)
    assert rec.position == head and rec.current() is tanh
    assert window.selected_node_label() == "act.tanh"
    np.testing.assert_array_equal(window.inspector.node().value, expected)
    assert window.status_cursor.text() == f"event {head + 1} of {len(rec)}"
    # forward again replays the recording: F10 lands on the next op at this depth
    qtbot.keyClick(window, Qt.Key.Key_F10)
    ops = [i for i in range(head + 1, len(rec)) if type(rec.events[i]) in (OpForward, OpBackward)]
    assert rec.position == ops[0] and rec.current().op == "linear"
    assert window.selected_node_label() == "fc2.linear"


def test_collapse_and_expand_a_module(qtbot, window):
    window.steps.setValue(2)
    assert window.open_program(sample("mlp_moons.py"), then="run")
    wait_done(qtbot, window)
    graph = window.graph
    drawn = int(graph.layout.drawn().sum())
    fc1 = [n.index for n in graph.model.nodes if n.scope == "model.fc1"]
    assert fc1 and "model.fc1" in graph.scope_rects()
    graph.toggle_scope("model.fc1")
    assert "model.fc1" in graph.collapsed
    assert int(graph.layout.drawn().sum()) == drawn - len(fc1) + 1
    graph.toggle_scope("model.fc1")
    assert "model.fc1" not in graph.collapsed
    assert int(graph.layout.drawn().sum()) == drawn


@pytest.mark.skipif(core.cuda.is_available(), reason="a GPU is present")
def test_gpu_choice_is_disabled_with_the_reason(window):
    model = window.device.model()
    assert not model.item(1).isEnabled()
    reason = core.cuda.unavailable_reason()
    assert reason in window.device.itemData(1, Qt.ItemDataRole.ToolTipRole)
    assert window.device.currentData() == "cpu"


def test_broken_program_shows_its_error_and_app_stays_usable(qtbot, window, tmp_path):
    window.steps.setValue(2)
    assert window.open_program(sample("neuron.py"), then="run")
    wait_done(qtbot, window)
    nodes_before = len(window.graph.model.nodes)
    bad = tmp_path / "broken.py"
    bad.write_text('"""Broken\n\nA syntax error.\n"""\ndef build(device):\n    return (\n')
    assert not window.open_program(str(bad), then="run")
    assert window.banner.isVisible()
    assert f"{bad}:" in window.problems.toPlainText()
    assert len(window.graph.model.nodes) == nodes_before, "the last good state stays"
    assert window.program.path == sample("neuron.py")

    raising = tmp_path / "raising.py"
    raising.write_text(
        '"""Raises\n\nFails in step 2.\n"""\nimport core\nfrom core.program import Run\n\n'
        "def build(device='cpu'):\n"
        "    w = core.tensor([1.0], requires_grad=True)\n"
        "    n = [0]\n"
        "    def step():\n"
        "        n[0] += 1\n"
        "        if n[0] == 2:\n"
        "            raise RuntimeError('boom')\n"
        "        return (w * w).sum()\n"
        "    return Run(step=step, steps=5, params={'w': w})\n"
    )
    assert window.open_program(str(raising), then="run")
    wait_done(qtbot, window)
    assert state(window) == "errored"
    assert window.banner.isVisible() and f"{raising}:14" in window.banner.text()
    assert "boom" in window.problems.toPlainText()
    assert window.graph.model.nodes, "the graph of the last step is still there"

    assert window.open_program(sample("neuron.py"), then="load")
    assert window.steps.value() == window.steps.minimum(), "another program: its own steps"
    window.steps.setValue(2)
    window.start_run()
    wait_done(qtbot, window)
    assert state(window) == "finished" and not window.banner.isVisible()


def test_saved_recording_reopens_with_the_same_graph(qtbot, window, tmp_path):
    window.steps.setValue(3)
    assert window.open_program(sample("mlp_moons.py"), then="run")
    wait_done(qtbot, window)
    graph = window.graph
    labels = [n.label for n in graph.model.nodes]
    edges = list(graph.model.edges)
    losses = window.loss.data()[1].tolist()
    path = str(tmp_path / "run.gsrec")
    saved = []
    window.save_recording(path, saved.append)
    qtbot.waitUntil(lambda: bool(saved), timeout=WAIT)
    assert not isinstance(saved[0], Exception)
    original = window.recording

    window.open_recording(path)
    qtbot.waitUntil(lambda: window.recording is not original, timeout=WAIT)
    assert [n.label for n in window.graph.model.nodes] == labels
    assert list(window.graph.model.edges) == edges
    assert window.loss.data()[1].tolist() == losses
    assert window.event_log.model().total() == len(original)
    assert path in window.recent_files()
    # no program is open: the Samples list no longer marks the one opened before,
    # nor does its description stay above the graph
    assert window.samples.list_widget().selectedItems() == []
    assert not window.about.isVisible()
    # the source shown is the text the recording holds, not the file named in it
    with open(sample("mlp_moons.py"), encoding="utf-8") as f:
        assert window.source.toPlainText() == f.read()


def test_a_read_only_recording_file_is_replaced_only_when_the_user_says_so(
    qtbot, window, tmp_path, monkeypatch
):
    window.steps.setValue(2)
    assert window.open_program(sample("neuron.py"), then="run")
    wait_done(qtbot, window)
    path = tmp_path / "kept.gsrec"
    path.write_bytes(b"an older file")
    path.chmod(0o444)
    answers = []

    def ask(answer: bool):
        def confirm(target: str) -> bool:
            answers.append(target)
            return answer

        return confirm

    for answer in (False, True):
        monkeypatch.setattr(window, "_confirm_replace", ask(answer))
        saved = []
        window.save_recording(str(path), saved.append)
        qtbot.waitUntil(lambda saved=saved: bool(saved), timeout=WAIT)
        if answer:
            assert not isinstance(saved[0], Exception) and path.read_bytes()[:2] == b"PK"
        else:
            assert getattr(saved[0], "read_only", False)
            assert path.read_bytes() == b"an older file"
            assert "read-only" in window.problems.toPlainText()
    assert answers == [str(path), str(path)]


def test_a_program_s_own_code_runs_in_the_run_and_its_notes_show(qtbot, window, tmp_path):
    """Opening a program reads it; its top-level code runs in the run's worker (an
    error there is the run's, with its line), and a note the run gives (a step
    that returns no loss) reaches the status bar and the Problems panel."""
    failing = tmp_path / "failing_import.py"
    failing.write_text(
        '"""Fails on import\n\nIts top level raises.\n"""\nraise ValueError("at import")\n'
    )
    assert window.open_program(str(failing), then="run")
    wait_done(qtbot, window)
    assert state(window) == "errored"
    assert f"{failing}:5" in window.banner.text() and "at import" in window.problems.toPlainText()

    quiet = tmp_path / "no_loss.py"
    quiet.write_text(
        '"""No loss\n\nIts step returns nothing.\n"""\n'
        "import core\nfrom core.program import Run\n\n"
        "def build(device='cpu'):\n"
        "    w = core.tensor([1.0], requires_grad=True)\n"
        "    def step():\n"
        "        (w * w).sum().backward()\n"
        "    return Run(step=step, steps=3, params={'w': w})\n"
    )
    assert window.open_program(str(quiet), then="run")
    wait_done(qtbot, window)
    assert state(window) == "finished"
    assert "returned None" in window.problems.toPlainText()


def test_corrupt_recording_is_a_clear_error(qtbot, window, tmp_path):
    bad = tmp_path / "bad.gsrec"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    window.open_recording(str(bad))
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=WAIT)
    assert str(bad) in window.problems.toPlainText()


def test_breakpoints_are_kept_per_program(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    first = MainWindow(settings=settings)
    qtbot.addWidget(first)
    assert first.open_program(sample("neuron.py"), then="load")
    first.breakpoints.add_breakpoint(Breakpoint("op", "tanh"))
    first.close()
    second = MainWindow(settings=settings)
    qtbot.addWidget(second)
    assert second.open_program(sample("neuron.py"), then="load")
    assert [(b.kind, b.value) for b in second.breakpoints.breakpoints()] == [("op", "tanh")]
    assert second.open_program(sample("thermometer.py"), then="load")
    assert second.breakpoints.breakpoints() == []
    second.close()


def test_graph_node_context_breakpoint_and_search(qtbot, window):
    window.steps.setValue(1)
    assert window.open_program(sample("neuron.py"), then="run")
    wait_done(qtbot, window)
    index = window.graph.search("tanh")
    assert index is not None and window.selected_node_label() == "tanh"
    node = window.graph.model.nodes[index]
    window.graph.sig_breakpoint_requested.emit("node", node.label)
    assert ("node", "tanh") in [(b.kind, b.value) for b in window.breakpoints.breakpoints()]


def test_check_gradient_of_a_node(qtbot, window):
    window.steps.setValue(1)
    assert window.open_program(sample("neuron.py"), then="run")
    wait_done(qtbot, window)
    index = window.graph.search("tanh")
    node_id = window.graph.model.nodes[index].node_id
    window.inspector.sig_check_gradient.emit(node_id)
    qtbot.waitUntil(lambda: "finite differences" in window.inspector.gradcheck_text(), timeout=WAIT)
    assert "matches" in window.inspector.gradcheck_text()


def test_source_line_click_selects_its_node(qtbot, window):
    window.steps.setValue(1)
    assert window.open_program(sample("neuron.py"), then="run")
    wait_done(qtbot, window)
    tanh = next(n for n in window.graph.model.nodes if n.op == "tanh")
    window.source.sig_line_clicked.emit(tanh.source.line)
    assert window.graph.model.nodes[window.graph.selected].source.line == tanh.source.line


def test_steps_set_after_a_program_opens_paused_apply_to_its_run(qtbot, window):
    """Opened paused (the program's own number of steps), the user types a
    number into Steps and presses F5: the run does that many steps."""
    assert window.open_program(sample("thermometer.py"))
    wait_paused(qtbot, window)
    window.steps.setFocus()
    window.steps.selectAll()
    qtbot.keyClicks(window.steps, "4")
    qtbot.keyClick(window.steps, Qt.Key.Key_Return)
    assert window.steps.value() == 4
    qtbot.keyClick(window, Qt.Key.Key_F5)
    wait_done(qtbot, window)
    assert state(window) == "finished"
    assert window.loss.data()[0].tolist() == [0, 1, 2, 3]


def test_samples_browser_opens_a_sample_paused_and_f5_runs_it(qtbot, window):
    window.steps.setValue(1)
    paths = [s[0] for s in window.samples.samples()]
    assert sample("neuron.py") in paths
    window.samples.sig_open.emit(sample("thermometer.py"))
    wait_paused(qtbot, window)
    assert window.program.path == sample("thermometer.py")
    assert "F5 runs" in window.status_reason.text()
    assert type(window.recording.current()).__name__ == "StepStarted"
    assert not window.graph.model.nodes, "paused before the first op"
    assert window.about.isVisible()
    assert window.about.text().endswith(window.program.description), "the docstring in full"
    qtbot.keyClick(window, Qt.Key.Key_F5)
    wait_done(qtbot, window)
    assert state(window) == "finished" and window.loss.data()[0].tolist() == [0]
